"""The first-frame stage through runs: a benchmark built without edited first frames edited with an image editor's
(run.py with Videoshop, the Runner with a baseline), ``editor=none`` refusing it sample by sample, and
``experiment=first_frame_editors`` on the synthetic world (tiny editors, the ground truth, a folder of images)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

import _benchmark_fixtures as F
from videoshop_bench.experiments.build import run_build
from videoshop_bench.experiments.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
METRICS = ["metrics=paper_tiny", "~metrics.tifa", "~metrics.fvd"]


def _cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=["model=tiny", "model.num_frames=4", "logger=none", "device=cpu",
                                             f"paths.data={tmp_path / 'data'}", f"paths.cache={tmp_path / 'cache'}",
                                             "save_mp4=false", *overrides])


def test_five_bench_without_first_frames_runs_with_an_editor(tmp_path, one_thread):
    data, _ = F.make_five(tmp_path / "raw")
    report = run_build(_cfg(tmp_path, "task=build", "dataset=five_bench", f"dataset.build.source={data}",
                            "dataset.build.first_frames=editor"))
    assert report["counts"]["built"] == 2
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "run.py", "model=tiny", "model.num_frames=4", "logger=none", "device=cpu",
                        "dataset=five_bench", "dataset.limit=1", "first_frame.editor=instruct_pix2pix",
                        "first_frame.num_inference_steps=2", "method=videoshop", "method.num_inference_steps=2",
                        *METRICS, "save_mp4=false", f"paths.data={tmp_path / 'data'}", f"paths.cache={tmp_path / 'cache'}",
                        f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    assert (df["status"] == "ok").all(), df[["sample_id", "error"]]
    made = json.loads(df["first_frame"].iloc[0])
    assert made["editor"] == "instruct_pix2pix" and made["prompt"] == "a red square slides over a gradient"
    assert {"seed", "revision", "weights", "mask_source"} <= set(made) and not made["cached"]
    # a baseline over the same samples: the cached edit (same frame, prompt, seed, editor) is reused
    out = Runner(_cfg(tmp_path, "dataset=five_bench", "dataset.limit=1", "first_frame.editor=instruct_pix2pix",
                      "first_frame.num_inference_steps=2", "method=fatezero", "method.num_inference_steps=2",
                      f"paths.output={tmp_path / 'fz'}", *METRICS)).run()["results"]
    assert (out["status"] == "ok").all(), out[["sample_id", "error"]]
    again = json.loads(out["first_frame"].iloc[0])
    assert again["cached"] and again["seed"] == made["seed"]
    # without an editor such a sample is refused with one line, the others are tried
    none = Runner(_cfg(tmp_path, "dataset=five_bench", f"paths.output={tmp_path / 'none'}", *METRICS)).run()["results"]
    assert len(none) == 2 and (none["status"] == "failed").all()
    assert none["error"].str.contains(r"first_frame \(none\).*set first_frame.editor").all()


def test_first_frame_editors_experiment_on_the_synthetic_world(tmp_path, one_thread):
    """The preset as a user runs it: a multirun, one job per editor, then the comparison written by the multirun's
    callback; frame 0, frames 1..T-1 (the paper's metrics on a frame window) and the whole clip apart."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    sweep = tmp_path / "sweep"
    p = subprocess.run([sys.executable, "run.py", "experiment=first_frame_editors", "smoke=true", "model.num_frames=4",
                        "first_frame.editor=none,folder,instruct_pix2pix", "first_frame.num_inference_steps=2",
                        "method.num_inference_steps=2", "~metrics.tifa", "save_mp4=false",
                        f"paths.data={tmp_path / 'data'}", f"paths.cache={tmp_path / 'cache'}",
                        f"hydra.sweep.dir={sweep}"], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert sorted(d.name for d in sweep.iterdir() if d.is_dir() and not d.name.startswith(".")) == \
        ["folder", "instruct_pix2pix", "none"]  # one job (run folder) per editor
    table = pd.read_csv(sweep / "first_frame_editors.csv")
    assert list(table["editor"]) == ["none", "folder", "instruct_pix2pix"] and (table["n"] == 2).all()
    for col in ("ff_clip_text", "ff_clip_src", "later_clip_text", "clip_tgt", "ssim", "fvd", "propagation_in_auc",
                "clip_tgt[1:]", "clip_tgt_plus[1:]", "clip_src[1:]", "clip_src_plus[1:]", "flow[1:]", "flow_plus[1:]",
                "ssim[1:]", "clip_tc[1:]", "fvd[1:]"):
        assert np.isfinite(table[col]).all(), col
    assert (table["ssim[1:]"] != table["ssim"]).all()  # frame 0 left out moves the mean
    cols = list(table.columns)
    assert cols.index("ff_clip_text") < cols.index("clip_tgt[1:]") < cols.index("clip_tgt")  # frame 0, 1..T-1, clip
    res = pd.concat([pd.read_csv(sweep / e / "results.csv").assign(editor=e) for e in table["editor"]])
    # the synthetic world's ground truth is its own edit: kept with its frame, dropped (with why) with another's
    gt, ip2p = res[res["editor"] == "none"], res[res["editor"] == "instruct_pix2pix"]
    assert np.isfinite(gt["psnr_gt"]).all() and all(json.loads(s)["editor"] == "none" for s in gt["first_frame"])
    assert ip2p["psnr_gt"].isna().all() and ip2p["skipped"].str.contains("psnr_gt: first_frame.editor=").all()
    made = [json.loads(s) for s in ip2p["first_frame"]]
    assert all(m["ground_truth"] == "dropped" and "difference" in m["region_masks"] for m in made)
    folder = [json.loads(s) for s in res[res["editor"] == "folder"]["first_frame"]]
    assert all(f["file"].startswith(str(sweep / "folder" / "demo_folder")) for f in folder)
    by = table.set_index("editor")  # the demo images are the edit at half strength: closer to the source on frame 0
    assert by.loc["folder", "ff_clip_src"] >= by.loc["none", "ff_clip_src"] - 1e-6
    curves = pd.read_csv(sweep / "text_curves.csv")
    assert sorted(curves["t"].unique()) == [-1, 0, 1, 2, 3] and set(curves["editor"]) == set(table["editor"])
    md = (sweep / "first_frame_editors.md").read_text()
    assert "frames 1..T-1: what the propagation kept" in md and "CLIP_tgt+ [1:]" in md
    assert (sweep / "propagation.png").stat().st_size > 10_000 and (sweep / "combined_summary.csv").is_file()
    assert (sweep / "first_frame_editors.png").stat().st_size > 30_000
    # the same comparison again from the jobs' folders, no model loaded (python -m videoshop_bench.experiments.merge --sweep)
    (sweep / "first_frame_editors.csv").unlink()
    from videoshop_bench.experiments.merge import main as merge_main

    assert merge_main(["--sweep", str(sweep)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(sweep / "first_frame_editors.csv"), table)
