"""The published benchmarks' builders (EditVerseBench, FiVE-Bench, V2VBench, DAVIS 2017) on tiny fixtures written in
each published layout (tests/_benchmark_fixtures.py): what each sample holds, one line per bad row naming the file and
row while the other samples build, resume, limit and shards, and the ``extras`` field's round trip."""

import json

import numpy as np
import pytest

import _benchmark_fixtures as F
from videoshop_bench.datasets.davis import build_davis
from videoshop_bench.datasets.editversebench import build_editversebench, clean_instruction
from videoshop_bench.datasets.five_bench import build_five_bench, strip_brackets
from videoshop_bench.datasets.folder import FolderDataset, fit_frames, write_sample
from videoshop_bench.datasets.schema import Sample, SampleError
from videoshop_bench.datasets.v2vbench import build_v2vbench

GEOM = dict(num_frames=14, height=64, width=112)


def _close_to_fitted_source(sample, t_source, idx):
    """Frame i of the sample is source frame idx[i], centre-cropped to 16:9 and resized (JPEG/H.264 tolerance)."""
    ref = fit_frames(F.clip(t_source)[idx], 64, 112, "crop").astype(float)
    return float(np.abs(sample.source_video.astype(float) - ref).mean())


def test_five_bench_prompts_masks_questions_and_bad_rows(tmp_path):
    data, ff = F.make_five(tmp_path / "five")
    r = build_five_bench(data, tmp_path / "out", first_frames=ff, **GEOM)
    assert r["counts"] == {"built": 2, "skipped": 0, "failed": 2}
    errors = {f["id"]: f["error"] for f in r["failed"]}
    assert "edit3_FiVE.json:entry 2" in errors["edit3_0404_gone"] and "source video not found" in errors["edit3_0404_gone"]
    assert "edit5_FiVE.json:entry 0: missing target_prompt" in errors["edit5_0001_square"]
    assert all("\n" not in e for e in errors.values())
    s = FolderDataset(tmp_path / "out").load("edit3_0001_square")
    assert s.source_video.shape == (14, 64, 112, 3) and s.edit_type == "change_color"
    assert s.source_prompt == "a yellow square slides over a gradient" and s.target_prompt == "a red square slides over a gradient"
    assert s.extras["five_bench"]["multiple_choice_question"] == F.FIVE_QUESTIONS["multiple_choice_question"]
    assert {k: s.extras["five_bench"][k] for k in F.FIVE_QUESTIONS} == F.FIVE_QUESTIONS
    idx = s.meta["frame_indices"]
    assert idx[0] == 0 and idx[-1] == 19 and np.all(np.diff(idx) > 0)  # spread over the whole 20-frame clip
    assert _close_to_fitted_source(s, 20, idx) < 3
    want = fit_frames(F.square_masks(20)[idx], 64, 112, "crop", mask=True)
    # bmasks follow the frames exactly; with FiVE's own "> 0" the JPEG ringing adds ~3% stray pixels at the edges
    assert s.gt_masks.shape == (14, 64, 112) and np.array_equal(s.gt_masks, want)
    assert np.array_equal(s.edit_mask, s.gt_masks[0])
    assert s.meta["original"] == {**s.meta["original"], "num_frames": 20, "height": F.H, "width": F.W}


def test_v2vbench_three_prompts_per_video_mp4_and_frame_folders(tmp_path):
    root, ff = F.make_v2v(tmp_path / "v2v")
    r = build_v2vbench(root, tmp_path / "out", first_frames=ff, **GEOM)
    assert sorted(r["built"]) == ["frames_0", "square_0", "square_1"]
    errors = {f["id"]: f["error"] for f in r["failed"]}
    assert "config.yaml:data[2]" in errors["row2"]
    assert "square_2.png" in errors["square_2"] and "first_frames" in errors["square_2"]
    ds = FolderDataset(tmp_path / "out")
    s = ds.load("square_1")
    assert s.instruction == s.target_prompt == "a yellow square slides over a gradient, pixel art"
    assert s.source_prompt == "a yellow square slides over a gradient" and s.meta["edit_id"] == 1
    assert s.meta["original"]["fps"] == 8.0 and s.meta["original"]["num_frames"] == 16
    assert _close_to_fitted_source(s, 16, s.meta["frame_indices"]) < 6  # H.264
    f = ds.load("frames_0")
    assert f.meta["original"]["num_frames"] == 16 and _close_to_fitted_source(f, 16, f.meta["frame_indices"]) < 3


def test_editversebench_shipped_first_frame_mask_video_and_filters(tmp_path):
    root = F.make_evb(tmp_path / "evb")
    r = build_editversebench(root, tmp_path / "out", **GEOM)
    assert r["built"] == ["0"] and {f["id"] for f in r["failed"]} == {"2", "3"}  # "1" has no first frame: not selected
    assert "test.json:2: source video not found" in r["failed"][0]["error"]
    s = FolderDataset(tmp_path / "out").load("0")
    assert s.instruction == "Make the square red, following the image." and s.edit_type == "change_color"
    assert s.meta["edited_first_frame"] == "benchmark" and s.meta["direction"] == "horizontal"
    want = fit_frames(F.square_masks(1), 64, 112, "crop", mask=True)[0]
    assert (s.edit_mask == want).mean() > 0.98  # the mask video's first frame, thresholded
    red = np.all(s.edited_image.astype(int) - (200, 30, 30) == 0, axis=-1) | (np.abs(s.edited_image.astype(int) - (200, 30, 30)).sum(-1) < 30)
    assert red[want].mean() > 0.9
    r = build_editversebench(root, tmp_path / "all", only_with_first_frame=False, **GEOM)
    one = next(f["error"] for f in r["failed"] if f["id"] == "1")
    assert "test.json:1" in one and "first_frames" in one
    r = build_editversebench(root, tmp_path / "typed", types=["style"], only_with_first_frame=False,
                             first_frames=tmp_path / "evb" / "edited_first_frame", **GEOM)
    assert r["requested"] == 2 and {f["id"] for f in r["failed"]} == {"1", "3"}  # the malformed row stays reported
    assert clean_instruction("<video1> Add a crown to <video1>.") == "Add a crown to the video."


def test_davis_edit_manifest_objects_and_reconstruction(tmp_path):
    root, edits, ff = F.make_davis(tmp_path / "davis")
    r = build_davis(root, tmp_path / "out", edits=edits, first_frames=ff, **GEOM)
    assert sorted(r["built"]) == ["square_hat", "square_red"]
    errors = {f["id"]: f["error"] for f in r["failed"]}
    assert "edits.csv:4" in errors["nosuch"] and "edits.csv:5" in errors["bad_object"]
    ds = FolderDataset(tmp_path / "out")
    s = ds.load("square_red")
    want = fit_frames(F.square_masks(12)[s.meta["frame_indices"]], 64, 112, "crop", mask=True)
    assert np.array_equal(s.gt_masks, want) and np.array_equal(s.edit_mask, want[0])  # object 1 only, not the bar
    hat = ds.load("square_hat")
    assert hat.edit_mask is None and hat.gt_masks is None and hat.edit_type == "add_object"
    r = build_davis(root, tmp_path / "recon", mode="reconstruction", split="val", **GEOM)
    rec = FolderDataset(tmp_path / "recon").load("square")
    assert r["built"] == ["square"] and rec.edit_type == "reconstruction"
    assert np.array_equal(rec.gt_edited_video, rec.source_video) and np.array_equal(rec.edited_image, rec.source_video[0])
    with pytest.raises(ValueError, match="dataset.build.edits"):
        build_davis(root, tmp_path / "x", **GEOM)


def test_resume_limit_and_shards(tmp_path):
    root, ff = F.make_v2v(tmp_path / "v2v")
    first = build_v2vbench(root, tmp_path / "out", first_frames=ff, limit=2, **GEOM)
    assert first["requested"] == 2 and first["built"] == ["square_0", "square_1"]
    again = build_v2vbench(root, tmp_path / "out", first_frames=ff, **GEOM)
    assert again["skipped"] == ["square_0", "square_1"] and again["built"] == ["frames_0"]
    shards = [build_v2vbench(root, tmp_path / "sh", first_frames=ff, shard_index=i, num_shards=2, **GEOM)
              for i in (0, 1)]
    done = [set(s["built"]) | {f["id"] for f in s["failed"]} for s in shards]
    assert not done[0] & done[1] and done[0] | done[1] == {"square_0", "square_1", "square_2", "frames_0", "row2"}
    assert (tmp_path / "sh" / "build_report.shard1of2.json").is_file()


def test_extras_round_trip_and_validation(tmp_path):
    v = np.zeros((2, 8, 8, 3), np.uint8)
    s = Sample("a", v, v[0], extras={"bench": {"q": ["yes?", "no?"]}})
    write_sample(tmp_path, s)
    assert FolderDataset(tmp_path).load("a").extras == {"bench": {"q": ["yes?", "no?"]}}
    assert "extras" not in json.loads((write_sample(tmp_path, Sample("b", v, v[0])) / "sample.json").read_text())
    assert FolderDataset(tmp_path).load("b").extras == {}
    rec = json.loads((tmp_path / "a" / "sample.json").read_text())
    (tmp_path / "a" / "sample.json").write_text(json.dumps({**rec, "extras": ["not", "an", "object"]}))
    with pytest.raises(SampleError, match="extras"):
        FolderDataset(tmp_path).load("a")
    with pytest.raises(SampleError, match="extras must be a dict"):
        Sample("c", v, v[0], extras=[1]).validate()
    assert strip_brackets("a [red] [big] car") == "a red big car"


def test_five_bench_ids_for_several_entries_of_one_video_and_a_repeated_id(tmp_path):
    from videoshop_bench.datasets.benchmarks import BenchmarkDataset
    from videoshop_bench.datasets.five_bench import read_entries

    data, _ = F.make_five(tmp_path / "five")
    items = json.loads((data / "edit_prompt" / "edit3_FiVE.json").read_text())
    items[1] = {**items[0], "save_dir": "blue"}  # two edits of 0001_square in one file
    (data / "edit_prompt" / "edit3_FiVE.json").write_text(json.dumps(items))
    ids = [e["id"] for e in read_entries(data, edit_types=[3])]
    assert ids == ["edit3_0001_square_red", "edit3_0001_square_blue", "edit3_0404_gone"]
    ds = BenchmarkDataset("x", [{"id": "a", "_where": "f:1"}, {"id": "a", "_where": "f:2"}])
    assert ds.sample_ids() == ["a", "a__dup2"]
    with pytest.raises(SampleError, match=r"f:2: duplicate sample id 'a' \(first at f:1\)"):
        ds.load("a__dup2")
