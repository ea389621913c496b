"""Expert / user videos: odd sizes, frame counts and rates; manifests; corrupt video and missing mask."""

import csv
import json

import numpy as np
import pytest

from videoshop_bench.datasets.expert import ExpertDataset, build_expert, convert_entry, read_entries, temporal_indices
from videoshop_bench.datasets.folder import FolderDataset
from videoshop_bench.datasets.schema import SampleError
from videoshop.video_io import write_frames, write_image, write_video


def _frames(t, h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return np.stack([np.roll(base, 2 * i, axis=1) for i in range(t)])


def _mask(h, w):
    m = np.zeros((h, w), bool)
    m[h // 4: h // 2, w // 4: w // 2] = True
    return m


def make_expert_folder(root):
    """Sample folders: mp4 at 24 fps (30 frames, 90x160), odd-sized PNG frames (5 frames, 75x61), npy (3 frames),
    a corrupt video, a sample without mask."""
    specs = {"clip_mp4": (30, 90, 160, "mp4", 24), "frames_odd": (5, 75, 61, "frames", None),
             "npy_short": (3, 33, 47, "npy", None), "corrupt": (4, 36, 64, "corrupt", None),
             "no_mask": (6, 36, 64, "frames", None)}
    for sid, (t, h, w, kind, fps) in specs.items():
        d = root / sid
        d.mkdir(parents=True)
        v = _frames(t, h, w, seed=len(sid))
        if kind == "mp4":
            write_video(d / "source.mp4", v, fps=fps)
        elif kind == "frames":
            write_frames(d / "source", v)
        elif kind == "npy":
            np.save(d / "source.npy", v)
        else:
            (d / "source.mp4").write_bytes(b"\x00\x01 definitely not a video" * 10)
        edited = v[0].copy()
        edited[_mask(h, w)] = (255, 0, 0)
        write_image(d / "edited.png", edited)
        if sid != "no_mask":
            write_image(d / "mask.png", _mask(h, w))
        (d / "instruction.txt").write_text("make the patch red\n")
    (root / "npy_short" / "meta.json").write_text(json.dumps({"instruction": "add a red box", "edit_type": "add",
                                                              "source_prompt": "noise"}))
    return root


def test_folder_build_odd_inputs_and_failures(tmp_path):
    src = make_expert_folder(tmp_path / "raw")
    out = tmp_path / "built"
    r = build_expert(src, out, num_frames=14, height=64, width=112)
    assert r["counts"] == {"built": 3, "skipped": 0, "failed": 2}
    errors = {f["id"]: f["error"] for f in r["failed"]}
    assert "corrupt/source.mp4" in errors["corrupt"] and "\n" not in errors["corrupt"]
    assert "no mask given" in errors["no_mask"] and "require_mask" in errors["no_mask"]
    ds = FolderDataset(out, name="expert")
    assert ds.sample_ids() == ["clip_mp4", "frames_odd", "npy_short"]
    for sid in ds.sample_ids():
        s = ds.load(sid)
        assert s.source_video.shape == (14, 64, 112, 3) and s.edited_image.shape == (64, 112, 3)
        assert s.edit_mask.shape == (64, 112) and s.edit_mask.any()
    mp4 = ds.load("clip_mp4")
    assert mp4.meta["original"]["fps"] == pytest.approx(24) and mp4.meta["original"]["num_frames"] == 30
    assert mp4.fps == pytest.approx(14 / (30 / 24), rel=1e-3) and mp4.edit_type == "change_color"
    short = ds.load("npy_short")
    assert short.edit_type == "add_object" and short.meta["edit_type_source"] == "given"
    assert short.source_prompt == "noise" and short.meta["frame_indices"][-1] == 2
    # rerun: built ones skipped, failures reported again; require_mask=False admits the mask-less sample
    r2 = build_expert(src, out, num_frames=14, height=64, width=112, require_mask=False)
    assert r2["counts"] == {"built": 1, "skipped": 3, "failed": 1} and r2["built"] == ["no_mask"]
    assert FolderDataset(out).load("no_mask").edit_mask is None


def test_csv_and_jsonl_manifests(tmp_path):
    src = make_expert_folder(tmp_path / "raw")
    rows = [{"id": "a", "video": "raw/clip_mp4/source.mp4", "edited": "raw/clip_mp4/edited.png",
             "mask": "raw/clip_mp4/mask.png", "instruction": "remove the patch", "edit_type": ""},
            {"id": "b", "video": "raw/frames_odd/source", "edited": "raw/frames_odd/edited.png",
             "mask": "raw/frames_odd/mask_missing.png", "instruction": "x", "edit_type": "replace"}]
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for manifest in (tmp_path / "manifest.csv", tmp_path / "m.jsonl", tmp_path):
        ds = ExpertDataset(manifest, num_frames=4, height=18, width=32, sample_fps=8)
        assert ds.sample_ids() == ["a", "b"]
        s = ds.load("a")
        assert s.source_video.shape == (4, 18, 32, 3) and s.edit_type == "remove_object" and s.fps == 8
        assert s.meta["frame_indices"] == [0, 3, 6, 9]  # 24 fps source sampled at 8 fps
        with pytest.raises(SampleError, match="mask file not found: .*mask_missing.png"):
            ds.load("b")
    assert src.exists()


@pytest.mark.parametrize("change,match", [
    ({"instruction": "  "}, "instruction is empty"),
    ({"edit_type": "teleport"}, "edit_type: 'teleport' is not one of"),
    ({"video": "/nonexistent/v.mp4"}, "video file not found: /nonexistent/v.mp4"),
    ({"edited": None}, "no edited given"),
    ({"id": "bad/id"}, "sample id"),
])
def test_field_validation_messages(tmp_path, change, match):
    src = make_expert_folder(tmp_path / "raw")
    e = dict(next(x for x in read_entries(src) if x["id"] == "frames_odd"))
    e.update(change)
    with pytest.raises(SampleError, match=match):
        convert_entry(e, num_frames=4, height=18, width=32)


def test_edited_frame_must_match_video_aspect(tmp_path):
    src = make_expert_folder(tmp_path / "raw")
    write_image(src / "frames_odd" / "edited.png", np.zeros((10, 40, 3), np.uint8))
    with pytest.raises(SampleError, match="does not match the video"):
        ExpertDataset(src, num_frames=4, height=18, width=32).load("frames_odd")
    write_image(src / "frames_odd" / "mask.png", np.zeros((75, 61), bool))
    write_image(src / "frames_odd" / "edited.png", np.zeros((150, 122, 3), np.uint8))  # 2x size is fine
    with pytest.raises(SampleError, match="mask .* empty"):
        ExpertDataset(src, num_frames=4, height=18, width=32).load("frames_odd")


def test_temporal_indices():
    assert temporal_indices(30, 14, 24, None)[[0, -1]].tolist() == [0, 29]
    assert temporal_indices(5, 14, 7, None).tolist() == sorted(temporal_indices(5, 14, 7, None).tolist())
    assert temporal_indices(10, 5, 30, 7.5).tolist() == [0, 4, 8, 9, 9]


def test_streaming_reader_matches_full_decode(tmp_path):
    from videoshop_bench.datasets.expert import read_selected_frames
    from videoshop.video_io import read_video

    write_video(tmp_path / "v.mp4", _frames(40, 36, 64), fps=25)
    full, fps = read_video(tmp_path / "v.mp4")
    for sample_fps in (None, 10):
        got, fps2, total, idx = read_selected_frames(tmp_path / "v.mp4", 14, sample_fps)
        assert total == 40 and fps2 == fps and np.array_equal(got, full[idx])  # exact: same decoder, same frames
