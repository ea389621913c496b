"""research/compare_runs.py on two tiny fake run roots: identical roots are identical; a changed metric, a changed
pixel, a changed hash and a missing sample are each found and named."""

import json
import shutil

import numpy as np
from PIL import Image

from videoshop_bench.research.compare_runs import compare_roots, hash_changes, main, read_records, verdicts


def _write_sample(run, sample_id, method, metrics, frames, edit_hash="e1", overrides=None):
    d = run / "samples" / sample_id
    (d / "edited").mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(d / "edited" / f"{i:04d}.png")
    rec = {"sample_id": sample_id, "method": method, "dataset": "synthetic", "model": "tiny",
           "overrides": overrides or {}, "status": "ok", "error": None, "nfe": 6, "finite": True,
           "edit_type": "add_object", "edit_hash": edit_hash, "metrics_hash": "m1", "metrics": metrics,
           "seconds": float(np.random.rand()), "info": {"method_seconds": float(np.random.rand()), "passes": 6}}
    (d / "record.json").write_text(json.dumps(rec))


def _root(tmp_path, name):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (4, 6, 3), dtype=np.uint8) for _ in range(2)]
    root = tmp_path / name
    for method, ov in [("videoshop", None), ("videoshop", {"method.threshold": 2.0}), ("rave", None)]:
        run = root / "paper_table2" / "synthetic" / "tiny" / (method + ("" if ov is None else "_t2"))
        for sid in ("a", "b"):
            _write_sample(run, sid, method, {"clip_tgt": 90.5, "ssim": float("nan") if sid == "b" else 3.0},
                          frames, overrides=ov)
        (run / "set_metrics.csv").write_text("label,fvd,fvd_warning\nx,0.25,few videos\n")
    return root


def test_identical_roots_are_identical_whatever_the_timings(tmp_path):
    before, after = _root(tmp_path, "before"), _root(tmp_path, "after")
    samples = compare_roots(read_records(before), read_records(after))
    assert len(samples) == 3 * 3 and set(samples["verdict"]) == {"identical"}  # 2 samples + (set) per run
    table = verdicts(samples)
    assert list(table["result"]) == ["identical"] * 2 and list(table["samples"]) == [2, 4]
    assert hash_changes(samples).empty
    assert main([str(before), str(after)]) == 0


def test_a_changed_metric_pixel_hash_and_a_missing_sample_are_named(tmp_path, capsys):
    before, after = _root(tmp_path, "before"), _root(tmp_path, "after")
    run = after / "paper_table2" / "synthetic" / "tiny" / "videoshop_t2" / "samples" / "a"
    rec = json.loads((run / "record.json").read_text())
    rec["metrics"]["clip_tgt"] += 0.125
    rec["edit_hash"] = "e2"
    (run / "record.json").write_text(json.dumps(rec))
    frame = np.asarray(Image.open(run / "edited" / "0001.png")).copy()
    frame[0, 0, 0] = (int(frame[0, 0, 0]) + 7) % 256 if frame[0, 0, 0] < 249 else frame[0, 0, 0] - 7
    Image.fromarray(frame).save(run / "edited" / "0001.png")
    shutil.rmtree(after / "paper_table2" / "synthetic" / "tiny" / "rave" / "samples" / "b")

    samples = compare_roots(read_records(before), read_records(after))
    row = samples[(samples["sample_id"] == "a") & (samples["overrides"] != "{}") & (samples["method"] == "videoshop")]
    assert row["verdict"].item() == "differs" and row["metrics_differ"].item() == ["clip_tgt"]
    assert row["max_metric_diff"].item() == 0.125
    assert row["frames_differ"].item() == 1 and row["max_pixel_diff"].item() == 7
    table = verdicts(samples).set_index("method")["result"]
    assert table["rave"] == "only before"
    assert table["videoshop"] == "metrics clip_tgt (max |diff| 0.125); 1 frames (max pixel diff 7)"
    hashes = hash_changes(samples)
    assert list(hashes[["edit_hash_before", "edit_hash_after"]].iloc[0]) == ["e1", "e2"] and len(hashes) == 1
    assert main([str(before), str(after), "--out", str(tmp_path / "cmp")]) == 1
    assert "only before" in capsys.readouterr().out and (tmp_path / "cmp" / "samples.csv").is_file()
