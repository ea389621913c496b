"""V2VBench's frame metrics against independent references on the same input (tiny seeded models, offline).

The references preprocess with PIL + numpy (short side bicubic, centre crop, mean/std), run the model's forward
directly and compute cosines / MLP outputs in numpy, so the metric code path (processor, batching, memo, clamping,
scaling) is checked against V2VBench's formulas, not against itself.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.backbones import MissingWeightsError
from videoshop_bench.eval.base import MetricInputError
from videoshop_bench.eval.hf_backbones import (IMAGENET_MEAN, IMAGENET_STD, clip_bpe_vocab, load_aesthetic, load_dinov2,
                               load_hf_clip, offline_clip_tokenizer)
from videoshop_bench.eval.v2vbench import (AestheticScore, CLIPConsistency, CLIPTextAlignment, DINOConsistency, PickScore,
                           consecutive_cosine, edit_prompt, v2vbench_frames)

CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
KW = dict(backbone="tiny", device="cpu")


def _video(seed, t=5, h=40, w=56):
    """A smooth video (a moving gradient plus noise), so consecutive frames are similar but not identical."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = [np.stack([(xx * 4 + 9 * i) % 256, (yy * 5 + 3 * i) % 256, (xx + yy + 20 * i) % 256], -1)
              for i in range(t)]
    v = np.stack(frames).astype(np.int32) + rng.integers(-20, 20, (t, h, w, 3))
    return np.clip(v, 0, 255).astype(np.uint8)


def _sample(target_prompt="a red square sliding over a striped wall", instruction="make the square red"):
    return Sample("s", _video(0), _video(1)[0], instruction=instruction, target_prompt=target_prompt)


def reference_pixels(frames, short, crop, mean, std):
    """PIL bicubic resize of the short side to ``short``, centre crop ``crop``, /255, (x - mean) / std."""
    out = []
    for f in frames:
        im = Image.fromarray(f)
        w, h = im.size
        s = short / min(w, h)
        nw, nh = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
        im = im.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - crop) // 2, (nh - crop) // 2
        a = np.asarray(im.crop((left, top, left + crop, top + crop)), np.float32) / 255.0
        out.append(((a - np.array(mean, np.float32)) / np.array(std, np.float32)).transpose(2, 0, 1))
        assert s > 0
    return torch.from_numpy(np.stack(out))


def np_consecutive_clamped(f):
    f = f / np.linalg.norm(f, axis=-1, keepdims=True)
    return float(np.mean([max(0.0, float(f[i] @ f[i - 1])) for i in range(1, len(f))]))


def test_frame_selection_and_formulas():
    v = _video(3, t=24)
    assert len(v2vbench_frames(v)) == 24 and len(v2vbench_frames(v, 3)) == 8  # ViCLIP's stride 3 on 24 frames
    np.testing.assert_array_equal(v2vbench_frames(v, 3), v[[0, 3, 6, 9, 12, 15, 18, 21]])
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [-1.0, 0.1]])
    # cos: 0, 0, ~0.995 -> clamped mean; unclamped the same (no negatives); with a negative pair the clamp bites
    assert consecutive_cosine(f) == pytest.approx(np_consecutive_clamped(f.numpy()))
    g = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    assert consecutive_cosine(g) == 0.0 and consecutive_cosine(g, clamp_negative=False) == -1.0
    s = _sample(target_prompt=None)
    assert edit_prompt(s, ("target_prompt", "instruction")) == ("make the square red", "instruction")
    assert edit_prompt(s, ("target_prompt",)) == (None, None)


def test_offline_tokenizer_is_clips():
    import open_clip

    vocab, merges = clip_bpe_vocab()
    assert len(vocab) == 49408 and vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    text = "a man with a backpack hikes through the Dolomites, pixel-art!"
    ids = offline_clip_tokenizer()(text).input_ids
    ref = open_clip.tokenize([text])[0]
    assert ids == ref[: len(ids)].tolist() and int(ref[len(ids)]) == 0


def test_clip_consistency_matches_reference():
    s, edited = _sample(), _video(2)
    value = CLIPConsistency(**KW).score(s, edited)["clip_consistency"]
    m = load_hf_clip(backbone="tiny")["model"]
    with torch.no_grad():
        f = m.vision_model(pixel_values=reference_pixels(edited, 32, 32, CLIP_MEAN, CLIP_STD)).pooler_output
    assert value == pytest.approx(np_consecutive_clamped(f.numpy()), abs=1e-4)
    assert 0.0 <= value <= 1.0


def test_dino_consistency_matches_reference_and_protocol():
    s, edited = _sample(), _video(2)
    metric = DINOConsistency(**KW)
    proc = metric.net["images"]
    assert proc.size["shortest_edge"] == 36 and proc.crop_size == {"height": 32, "width": 32}
    assert list(proc.image_mean) == IMAGENET_MEAN and int(proc.resample) == int(Image.BICUBIC)
    assert type(proc).__name__ == "BitImageProcessorPil"  # the PIL path V2VBench ran (transformers 4.x default)
    value = metric.score(s, edited)["dino_consistency"]
    m = load_dinov2(backbone="tiny")["model"]
    with torch.no_grad():
        f = m(pixel_values=reference_pixels(edited, 36, 32, IMAGENET_MEAN, IMAGENET_STD)).pooler_output
    assert value == pytest.approx(np_consecutive_clamped(f.numpy()), abs=1e-4)
    assert "facebook/dinov2-base" not in metric.protocol()["dino_consistency"]  # tiny says so, not the hub id
    assert "tiny" in metric.protocol()["dino_consistency"]


@pytest.mark.parametrize("cls", [CLIPTextAlignment, PickScore])
def test_text_alignment_matches_reference(cls):
    s, edited = _sample(), _video(2)
    metric = cls(**KW)
    value = metric.score(s, edited)[metric.names[0]]
    m, tok = metric.net["model"], offline_clip_tokenizer()
    with torch.no_grad():
        ids = torch.tensor([tok(s.target_prompt).input_ids])
        t = m.text_projection(m.text_model(input_ids=ids).pooler_output)[0].numpy()
        e = m.visual_projection(m.vision_model(
            pixel_values=reference_pixels(edited, 32, 32, CLIP_MEAN, CLIP_STD)).pooler_output).numpy()
    t, e = t / np.linalg.norm(t), e / np.linalg.norm(e, axis=-1, keepdims=True)
    ref = float(np.exp(m.logit_scale.item()) * np.mean(e @ t))
    assert value == pytest.approx(ref, abs=1e-3)
    assert metric.sample_notes(s) == []
    no_target = _sample(target_prompt=None)
    assert metric.sample_notes(no_target) == [f"{metric.names[0]}: prompt from instruction"]
    strict = cls(prompt_fields=["target_prompt"], **KW)
    assert strict.score(no_target, edited) == {metric.names[0]: None}
    assert "target_prompt" in strict.skip_reason(metric.names[0], no_target)


def test_aesthetic_is_mlp_on_normalised_clip_embeddings():
    s, edited = _sample(), _video(2)
    value = AestheticScore(**KW).score(s, edited)["aesthetic"]
    m = load_aesthetic(backbone="tiny")["model"]
    with torch.no_grad():
        e = m.visual_projection(m.vision_model(
            pixel_values=reference_pixels(edited, 32, 32, CLIP_MEAN, CLIP_STD)).pooler_output).numpy()
        e = e / np.linalg.norm(e, axis=-1, keepdims=True)
        h = e
        for i in (0, 2, 4, 6, 7):  # the linear layers; dropouts idle at evaluation
            lin = m.layers[i]
            h = h @ lin.weight.numpy().T + lin.bias.numpy()
    assert value == pytest.approx(float(h.mean()), rel=2e-2, abs=1e-6)
    keys = set(m.state_dict())
    assert {"layers.0.weight", "layers.2.weight", "layers.4.weight", "layers.6.weight", "layers.7.bias",
            "visual_projection.weight", "vision_model.post_layernorm.weight"} <= keys


def test_features_are_shared_and_memoised():
    s, edited = _sample(), _video(2)
    a, b = CLIPConsistency(**KW), CLIPTextAlignment(**KW)
    assert a.net.value is b.net.value  # one ViT-L/14 for both metrics
    a.score(s, edited)
    hits = a.net.value.memo.hits
    b.score(s, edited)
    assert a.net.value.memo.hits == hits + 1


def test_shape_error_and_missing_weights_one_line(tmp_path):
    s = _sample()
    with pytest.raises(MetricInputError):
        CLIPConsistency(**KW).score(s, _video(2, t=3))
    with pytest.raises(MissingWeightsError) as e:
        DINOConsistency(backbone="real", model=str(tmp_path / "nope"), device="cpu")
    assert "metrics.dino_consistency.model" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(MissingWeightsError) as e:
        PickScore(backbone="real", device="cpu")
    assert str(e.value).startswith("metrics.pickscore.model: yuvalkirstain/PickScore_v1 not found offline")


def test_text_models_never_share_cache_entries(tmp_path):
    """CLIP_text and PickScore (and two seeds of one) write text embeddings into one cache folder: each reads its own."""
    s, edited = _sample(), _video(2)
    alone = PickScore(**KW, seed=1).score(s, edited)["pickscore"]
    CLIPTextAlignment(**KW, cache_dir=str(tmp_path)).score(s, edited)  # fills the folder first
    shared_cache = PickScore(**KW, seed=1, cache_dir=str(tmp_path))
    assert shared_cache.score(s, edited)["pickscore"] == pytest.approx(alone, abs=1e-9)
    assert shared_cache.cache.misses == 1
