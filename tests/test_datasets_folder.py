"""The common on-disk format: atomic writes, reading back, clear errors, geometry helpers, edit-type rules."""

import json
import os

import numpy as np
import pytest

from videoshop_bench.datasets.edit_types import infer_edit_type, normalize_edit_type
from videoshop_bench.datasets.folder import (FolderDataset, build_samples, fit_frames, is_built, shard_ids,
                             write_sample)
from videoshop_bench.datasets.schema import Sample, SampleError


def make_sample(sid="s1", t=4, h=16, w=28, seed=0, gt=False):
    rng = np.random.default_rng(seed)
    video = rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    mask[2:6, 3:9] = True
    return Sample(sid, video, video[0][::-1].copy(), mask, "make it red", "a", "b", "change_color",
                  video[::-1].copy() if gt else None, np.stack([mask] * t) if gt else None, 8.0, {"k": [1, 2]})


def test_roundtrip_is_lossless(tmp_path):
    s = make_sample(gt=True)
    folder = write_sample(tmp_path, s)
    assert folder == tmp_path / "s1" and is_built(tmp_path, "s1")
    r = FolderDataset(tmp_path, name="x").load("s1")
    assert np.array_equal(r.source_video, s.source_video) and np.array_equal(r.edited_image, s.edited_image)
    assert np.array_equal(r.edit_mask, s.edit_mask) and np.array_equal(r.gt_edited_video, s.gt_edited_video)
    assert np.array_equal(r.gt_masks, s.gt_masks)
    assert (r.instruction, r.source_prompt, r.target_prompt, r.edit_type, r.fps, r.meta) == \
        ("make it red", "a", "b", "change_color", 8.0, {"k": [1, 2]})
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_load_resamples_and_resizes(tmp_path):
    write_sample(tmp_path, make_sample(gt=True))
    r = FolderDataset(tmp_path, num_frames=7, height=8, width=14).load("s1")
    assert r.source_video.shape == (7, 8, 14, 3) and r.edit_mask.shape == (8, 14) and r.gt_masks.shape == (7, 8, 14)


def test_existing_sample_kept_unless_overwrite(tmp_path):
    write_sample(tmp_path, make_sample(seed=0))
    write_sample(tmp_path, make_sample(seed=1))
    a = FolderDataset(tmp_path).load("s1").source_video
    assert np.array_equal(a, make_sample(seed=0).source_video)
    write_sample(tmp_path, make_sample(seed=1), overwrite=True)
    assert np.array_equal(FolderDataset(tmp_path).load("s1").source_video, make_sample(seed=1).source_video)


def test_half_written_sample_is_not_built_and_gets_replaced(tmp_path):
    (tmp_path / "s1" / "source").mkdir(parents=True)  # an interrupted non-atomic writer would leave this
    (tmp_path / ".tmp-s2-123").mkdir()  # an interrupted atomic write
    assert not is_built(tmp_path, "s1") and FolderDataset(tmp_path).sample_ids() == ["s1"]  # listed, not hidden:
    with pytest.raises(SampleError, match="missing .*s1/sample.json"):  # it fails with one line naming the file
        FolderDataset(tmp_path).load("s1")
    write_sample(tmp_path, make_sample("s1"))
    assert FolderDataset(tmp_path).sample_ids() == ["s1"]


def test_bad_inputs_raise_one_line_naming_the_file(tmp_path):
    ds_root = tmp_path / "d"
    for sid in ("a", "b", "c", "d"):
        write_sample(ds_root, make_sample(sid))
    (ds_root / "a" / "sample.json").write_text("{not json")
    os.remove(ds_root / "b" / "edited.png")
    from PIL import Image
    Image.new("L", (5, 5)).save(ds_root / "c" / "mask.png")
    (ds_root / "d" / "source" / "0001.png").write_bytes(b"garbage")
    ds = FolderDataset(ds_root)
    for sid, needle in (("a", "a/sample.json"), ("b", "b/edited.png"), ("c", "c/mask.png"), ("d", "0001.png")):
        with pytest.raises(SampleError) as e:
            ds.load(sid)
        assert needle in str(e.value) and "\n" not in str(e.value)


def test_write_rejects_bad_ids_and_sizes(tmp_path):
    with pytest.raises(SampleError, match="sample id"):
        write_sample(tmp_path, make_sample("../evil"))
    s = make_sample()
    s.edited_image = s.edited_image[:8]
    with pytest.raises(SampleError, match="edited_image size"):
        write_sample(tmp_path, s)


def test_missing_root_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FolderDataset(tmp_path / "nope")


def test_committed_examples_load():
    ds = FolderDataset("datasets/examples", name="examples")
    assert ds.sample_ids() == ["ball_add_kite", "ball_red_to_blue"]
    for sid in ds.sample_ids():
        s = ds.load(sid)
        assert s.source_video.shape == (14, 64, 112, 3) and s.edit_mask.any()
    assert ds.load("ball_red_to_blue").gt_edited_video.shape == (14, 64, 112, 3)


def test_build_samples_resumes_and_records_failures(tmp_path):
    calls = []

    def make(sid):
        calls.append(sid)
        if sid == "bad":
            raise SampleError("bad input file x.png")
        return make_sample(sid)

    r1 = build_samples(tmp_path, ["a", "bad", "b"], make)
    assert r1["counts"] == {"built": 2, "skipped": 0, "failed": 1}
    assert r1["failed"] == [{"id": "bad", "error": "SampleError: bad input file x.png"}]
    r2 = build_samples(tmp_path, ["a", "bad", "b"], make)
    assert r2["counts"] == {"built": 0, "skipped": 2, "failed": 1} and calls.count("a") == 1
    assert json.loads((tmp_path / "build_report.json").read_text())["counts"] == r2["counts"]


def test_shards_partition_ids():
    ids = [str(i) for i in range(10)]
    parts = [shard_ids(ids, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(ids) and parts[1] == ["1", "4", "7"]
    with pytest.raises(ValueError, match="shard_index"):
        shard_ids(ids, 3, 3)


@pytest.mark.parametrize("fit", ["crop", "resize", "pad"])
def test_fit_frames_to_16_9(fit):
    v = np.full((3, 50, 50, 3), 200, np.uint8)
    out = fit_frames(v, 36, 64, fit)
    assert out.shape == (3, 36, 64, 3) and out.dtype == np.uint8
    m = fit_frames(np.ones((1, 50, 50), bool), 36, 64, fit, mask=True)
    assert m.dtype == bool and m.shape == (1, 36, 64)
    assert m.all() == (fit != "pad")


@pytest.mark.parametrize("text,expected", [
    ("add a cat on the sofa", "add_object"), ("Put a hat on the man", "add_object"),
    ("let the dog wear sunglasses", "add_object"), ("remove the car", "remove_object"),
    ("Get rid of the birds", "remove_object"), ("delete the lamp", "remove_object"),
    ("replace the dog with a cat", "replace_object"), ("turn the horse into a zebra", "replace_object"),
    ("change the apple to an orange", "replace_object"), ("make the car red", "change_color"),
    ("change the color of the wall to blue", "change_color"), ("make it snowy", "change_appearance"),
    ("the man should be running", "change_action"), ("hmm", "unknown"), ("", "unknown")])
def test_edit_type_rules(text, expected):
    assert infer_edit_type(text) == expected


def test_normalize_edit_type():
    assert normalize_edit_type("Add object") == ("add_object", "given")
    assert normalize_edit_type("", "remove the tree") == ("remove_object", "rule:remove")
    with pytest.raises(ValueError, match="edit_type"):
        normalize_edit_type("teleport")
