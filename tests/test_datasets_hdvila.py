"""HD-VILA-100M clip sampler: seeded selection of downloaded clips -> expert manifest -> built expert set."""

import json

import numpy as np

from videoshop_bench.datasets.expert import build_expert
from videoshop_bench.datasets.folder import FolderDataset
from videoshop_bench.datasets.hdvila import parse_time, read_hdvila_metadata, sample_hdvila_clips, write_selection
from videoshop.video_io import write_image, write_video


def make_hdvila(tmp_path, n_videos=6, clips_per_video=3, downloaded_every=1):
    meta = tmp_path / "hdvila_part0.jsonl"
    clips_dir = tmp_path / "clips"
    clips_dir.mkdir(parents=True)
    lines = []
    rng = np.random.default_rng(0)
    for v in range(n_videos):
        vid = f"vid{v:03d}"
        clips = []
        for c in range(clips_per_video):
            cid = f"{vid}.{c}.mp4"
            start = 10.0 * c
            clips.append({"clip_id": cid, "span": [f"00:00:{start:06.3f}", f"00:00:{start + 2 + c:06.3f}"]})
            if (v * clips_per_video + c) % downloaded_every == 0:
                frames = rng.integers(0, 255, (6, 36, 64, 3), dtype=np.uint8)
                if v % 2:
                    write_video(clips_dir / cid, frames, fps=10)
                else:
                    (clips_dir / vid).mkdir(exist_ok=True)
                    write_video(clips_dir / vid / cid, frames, fps=10)
        lines.append({"video_id": vid, "url": f"https://www.youtube.com/watch?v={vid}", "clip": clips})
    lines.append({"clip_id": "flat.0", "video_id": "flat", "url": "u", "start": 1, "end": "00:00:05"})
    write_video(clips_dir / "flat.0.mp4", rng.integers(0, 255, (4, 36, 64, 3), dtype=np.uint8), fps=5)
    meta.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return meta, clips_dir


def test_parse_metadata(tmp_path):
    meta, _ = make_hdvila(tmp_path, n_videos=2, clips_per_video=2)
    clips = read_hdvila_metadata(meta)
    assert len(clips) == 5 and clips[1]["clip_id"] == "vid000.1.mp4" and clips[1]["duration"] == 3.0
    assert clips[-1] == {"clip_id": "flat.0", "video_id": "flat", "url": "u", "start": 1.0, "end": 5.0,
                         "duration": 4.0}
    assert parse_time("01:02:03.5") == 3723.5 and parse_time(7) == 7.0


def test_seeded_selection_is_reproducible(tmp_path):
    meta, clips = make_hdvila(tmp_path)
    a = sample_hdvila_clips(meta, clips, n=4, seed=3)
    assert [c["clip_id"] for c in a] == [c["clip_id"] for c in sample_hdvila_clips(meta, clips, n=4, seed=3)]
    assert len(a) == 4 and len({c["video_id"] for c in a}) == 4  # one clip per source video
    others = [[c["clip_id"] for c in sample_hdvila_clips(meta, clips, n=4, seed=s)] for s in range(4, 10)]
    assert any(o != [c["clip_id"] for c in a] for o in others)
    short = sample_hdvila_clips(meta, clips, n=50, seed=0, max_duration=2.5, one_per_video=False)
    assert all(c["duration"] <= 2.5 for c in short) and len(short) == 6
    assert len(sample_hdvila_clips(meta, clips, n=50, seed=0)) == 7  # fewer than asked: all that exist


def test_selection_manifest_builds_into_expert_set(tmp_path):
    meta, clips = make_hdvila(tmp_path, n_videos=3, clips_per_video=2)
    sel = sample_hdvila_clips(meta, clips, n=2, seed=0)
    manifest = write_selection(sel, tmp_path / "sel", settings={"seed": 0})
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    assert [x["clip_id"] for x in lines] == [c["clip_id"] for c in sel]
    for x in lines:  # the expert's work: edit the exported first frame, draw a mask, write an instruction
        first = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(tmp_path / "sel" / "first_frames" /
                                                                           f"{x['id']}.png"))
        assert first.shape == (36, 64, 3)
        m = np.zeros((36, 64), bool)
        m[5:20, 10:30] = True
        write_image(tmp_path / "sel" / x["edited"], first)
        write_image(tmp_path / "sel" / x["mask"], m)
        x["instruction"] = "add a cat"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = build_expert(manifest, tmp_path / "built", num_frames=14, height=36, width=64)
    assert r["counts"] == {"built": 2, "skipped": 0, "failed": 0}
    s = FolderDataset(tmp_path / "built").load(lines[0]["id"])
    assert s.edit_type == "add_object" and s.meta["url"].startswith("https://") and s.num_frames == 14
