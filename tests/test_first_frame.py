"""The first-frame editing stage (datasets/editors/, experiments/first_frame.py): masks by difference, unchanged edits refused,
tiny stand-ins of the real diffusers pipelines seeded and deterministic, missing weights in one line naming the key,
a folder of user images, the content-hash cache and what each sample records."""

import json

import numpy as np
import pytest

from videoshop_bench.datasets.schema import SampleError
from videoshop_bench.datasets.synthetic import SyntheticDataset
from videoshop_bench.datasets.editors.base import EditedFrame, EditorFailed, EditRequest, finish_edit, mask_by_difference
from videoshop_bench.datasets.editors.registry import EDITORS, build_editor
from videoshop_bench.experiments.errors import ConfigError
from videoshop_bench.experiments.first_frame import FirstFrameStage
from videoshop.loading import MissingWeightsError
from videoshop.video_io import write_image

TINY = dict(weights="tiny", device="cpu", options={"num_inference_steps": 2})


def _source(h=64, w=96, seed=0):
    return (np.random.RandomState(seed).rand(h, w, 3) * 255).astype(np.uint8)


def test_mask_by_difference_threshold_and_unchanged_edit_fails():
    src = np.full((8, 8, 3), 100, np.uint8)
    ed = src.copy()
    ed[2:4, 2:5, 1] = 100 + 25  # over the threshold of 24 in one channel
    ed[6, 6, 0] = 100 + 24  # exactly the threshold: not edited
    mask = mask_by_difference(src, ed, 24)
    assert mask.sum() == 6 and mask[2:4, 2:5].all() and not mask[6, 6]
    req = EditRequest("s", src, "x", 0)
    done = finish_edit(req, EditedFrame(ed, None))
    assert done.mask_source == "difference" and (done.mask == mask).all() and done.info["mask_threshold"] == 24
    with pytest.raises(EditorFailed, match="unchanged"):
        finish_edit(req, EditedFrame(src.copy(), None))
    ed[4:8, 4:8] = 220
    big = np.repeat(np.repeat(ed, 2, 0), 2, 1)  # an editor working at another size: brought back to the source's
    back = finish_edit(req, EditedFrame(big, None))
    assert back.image.shape == src.shape and back.mask[5:7, 5:7].all()


@pytest.mark.parametrize("name", ["instruct_pix2pix", "flux_kontext",
                                  pytest.param("qwen_image_edit", marks=pytest.mark.slow)])  # ~5 s per tiny edit
def test_tiny_editor_is_the_real_pipeline_seeded_and_deterministic(name, one_thread):
    editor = build_editor(name, **TINY)
    assert type(editor.pipe).__name__ == editor.pipeline_class.rpartition(".")[2]
    src = _source()
    a, b = (editor.edit(EditRequest("s", src, "make the square red", 7)) for _ in range(2))
    c = editor.edit(EditRequest("s", src, "make the square red", 8))
    done = finish_edit(EditRequest("s", src, "make the square red", 7), a)
    assert done.image.shape == src.shape and done.image.dtype == np.uint8
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, c.image)
    assert editor.describe()["options"]["num_inference_steps"] == 2  # entry defaults under the given options
    assert set(EDITORS.get(name).options) <= set(editor.describe()["options"])


def test_tiny_qwen_image_edit_is_the_real_pipeline_with_qwen_vision_tokens():
    """Qwen-Image-Edit's stand-in: the released pipeline class, a Qwen2.5-VL whose image-token id is the tokenizer's
    (the processor expands <|image_pad|> into the vision tokens the model fills). Its edit: the slow test above
    (the pipeline VAE-encodes the input at about 1 MP whatever its size: ~5-20 s per edit here)."""
    editor = build_editor("qwen_image_edit", **TINY)
    pipe = editor.pipe
    assert type(pipe).__name__ == "QwenImageEditPipeline" and editor.describe()["options"]["true_cfg_scale"] == 4.0
    tok = pipe.tokenizer
    assert len(tok("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>hi")["input_ids"]) == 11  # 1 + 5 + 3 + 2
    assert pipe.processor.image_token_id == pipe.text_encoder.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")


@pytest.mark.parametrize("name", ["instruct_pix2pix", "magicbrush", "flux_kontext", "qwen_image_edit"])
def test_missing_weights_are_one_line_naming_the_key(name, tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        build_editor(name, weights="pretrained", device="cpu", allow_download=False)
    msg = str(e.value)
    assert "\n" not in msg and f"first_frame.hub_id={EDITORS.get(name).hub_id}" in msg and "first_frame.path" in msg
    with pytest.raises(MissingWeightsError, match=r"first_frame.path=.* holds no model_index.json"):
        build_editor(name, weights="pretrained", path=str(tmp_path), device="cpu")


def test_folder_editor_reads_images_and_masks_and_names_a_missing_file(tmp_path):
    src = _source(32, 48)
    ed = src.copy()
    ed[4:12, 4:20] = (250, 10, 10)
    write_image(tmp_path / "a.png", np.repeat(np.repeat(ed, 2, 0), 2, 1))  # twice the size: resized back
    write_image(tmp_path / "b.jpg", ed)
    own = np.zeros((32, 48), bool)
    own[0:16, 0:24] = True
    write_image(tmp_path / "b_mask.png", own)
    write_image(tmp_path / "c.png", ed[:, :16])  # another aspect ratio
    editor = build_editor("folder", folder=str(tmp_path))
    a = finish_edit(EditRequest("a", src, "", 0), editor.edit(EditRequest("a", src, "", 0)))
    assert a.image.shape == src.shape and a.mask_source == "difference" and a.mask[4:12, 4:20].mean() > 0.9
    b = finish_edit(EditRequest("b", src, "", 0), editor.edit(EditRequest("b", src, "", 0)))
    assert b.mask_source == "folder" and (b.mask == own).all() and b.info["file"].endswith("b.jpg")
    with pytest.raises(EditorFailed) as e:
        editor.edit(EditRequest("zzz", src, "", 0))
    assert str(tmp_path / "zzz.png") in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(EditorFailed, match="aspect ratio"):
        editor.edit(EditRequest("c", src, "", 0))
    with pytest.raises(ConfigError, match="first_frame.folder"):
        FirstFrameStage(editor="folder", folder=None)
    with pytest.raises(ConfigError, match="first_frame.editor=photoshop: unknown first-frame editor"):
        FirstFrameStage(editor="photoshop")


def test_stage_caches_by_content_and_records_what_made_the_frame(tmp_path, one_thread):
    ds = SyntheticDataset(num_samples=1, num_frames=4, height=64, width=64)
    sample = ds.load(ds.sample_ids()[0])
    stage = FirstFrameStage(editor="instruct_pix2pix", seed=3, cache_dir=str(tmp_path), num_inference_steps=2,
                            weights="tiny", device="cpu")
    first, notes = stage.apply(sample)
    again, _ = FirstFrameStage(editor="instruct_pix2pix", seed=3, cache_dir=str(tmp_path), num_inference_steps=2,
                               weights="tiny", device="cpu").apply(sample)
    rec = first.meta["first_frame"]
    assert rec["editor"] == "instruct_pix2pix" and rec["prompt"] == sample.instruction and not rec["cached"]
    assert rec["weights"] == "tiny" and "revision" in rec and rec["mask_source"] == "difference"
    assert again.meta["first_frame"]["cached"] and np.array_equal(first.edited_image, again.edited_image)
    assert np.array_equal(first.edit_mask, again.edit_mask) and not np.array_equal(first.edited_image, sample.edited_image)
    other, _ = FirstFrameStage(editor="instruct_pix2pix", seed=4, cache_dir=str(tmp_path), num_inference_steps=2,
                               weights="tiny", device="cpu").apply(sample)
    assert not other.meta["first_frame"]["cached"] and other.meta["first_frame"]["seed"] != rec["seed"]
    assert len(list((tmp_path / "first_frame").iterdir())) == 2 and "instruct_pix2pix" in notes[0]
    none = FirstFrameStage(editor="none")
    assert none.apply(sample)[0] is sample  # the default changes nothing
    sample.meta["edited_first_frame"] = "missing"  # a benchmark built with dataset.build.first_frames=editor
    with pytest.raises(SampleError, match=r"first_frame \(none\): .* set first_frame.editor") as e:
        none.apply(sample)
    assert "\n" not in str(e.value)
    info = json.loads((next((tmp_path / "first_frame").iterdir()) / "info.json").read_text())
    assert info["mask_source"] == "difference"


def test_another_editors_frame_drops_the_datasets_ground_truth_with_the_reason(tmp_path, one_thread):
    """The synthetic world's ground truth shows its own edit: with another editor's frame 0, PSNR/SSIM to it are
    skipped with the reason, and the edit regions come from the editor's mask, not the dataset's masks."""
    from videoshop_bench.eval.fidelity import GroundTruthFidelity
    from videoshop_bench.eval.tracking import MaskTracker
    from videoshop_bench.experiments.scoring import score_sample

    ds = SyntheticDataset(num_samples=1, num_frames=4, height=64, width=64)
    sample = ds.load(ds.sample_ids()[0])
    assert sample.gt_edited_video is not None and sample.gt_masks is not None
    stage = FirstFrameStage(editor="instruct_pix2pix", num_inference_steps=2, weights="tiny", device="cpu")
    edited, notes = stage.apply(sample)
    rec = edited.meta["first_frame"]
    assert edited.gt_edited_video is None and edited.gt_masks is None
    assert rec["ground_truth"] == "dropped" and "difference edit mask" in rec["region_masks"]
    assert any("ground truth video and masks dropped" in n for n in notes)
    s = score_sample({"gt": GroundTruthFidelity()}, edited, sample.gt_edited_video, True)
    assert not s.values and set(s.skipped) == set(GroundTruthFidelity.names)
    assert all("first_frame.editor=instruct_pix2pix" in why and "; " not in why for why in s.skipped.values())
    regions = MaskTracker(tracker="gt_or_flow").track(edited, sample.gt_edited_video)  # no gt masks: the editor's
    assert np.array_equal(regions[0], edited.edit_mask) and not np.array_equal(regions[0], sample.gt_masks[0])
    # a user's file that IS the dataset's edited frame (lossless): the ground truth still describes it, kept
    write_image(tmp_path / f"{sample.sample_id}.png", sample.edited_image)
    same, _ = FirstFrameStage(editor="folder", folder=str(tmp_path)).apply(sample)
    assert same.gt_edited_video is sample.gt_edited_video and same.meta["first_frame"]["ground_truth"].startswith("kept")
