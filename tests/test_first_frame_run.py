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
from videoshop_bench.experiments.first_frame_editors import run_first_frame_editors
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
    cfg = _cfg(tmp_path, "experiment=first_frame_editors", "smoke=on", "dataset.limit=2", "model.num_frames=4",
               "first_frame_editors.editors=[none,folder,instruct_pix2pix]", "first_frame.num_inference_steps=2",
               "method.num_inference_steps=2", "~metrics.tifa", "~metrics.fvd", f"paths.output={tmp_path / 'out'}")
    out = run_first_frame_editors(cfg)
    table = pd.read_csv(tmp_path / "out" / "first_frame_editors.csv")
    assert list(table["editor"]) == ["none", "folder", "instruct_pix2pix"] and (table["n"] == 2).all()
    for col in ("ff_clip_text", "ff_clip_src", "later_clip_text", "later_clip_tgt", "later_clip_src", "clip_tgt", "ssim",
                "propagation_in_auc", "propagation_out_last"):  # eval/propagation.py's curve summary too
        assert np.isfinite(table[col]).all(), col
    res = out["results"]
    gt = res[res["editor"] == "none"]
    assert all(json.loads(s)["editor"] == "none" for s in gt["first_frame"])
    folder = [json.loads(s) for s in res[res["editor"] == "folder"]["first_frame"]]
    assert all(f["file"].startswith(str(tmp_path / "out" / "demo_folder")) for f in folder)
    # the demo images are the ground-truth edit at half strength: closer to the source on frame 0 than the edit
    by = table.set_index("editor")
    assert by.loc["folder", "ff_clip_src"] >= by.loc["none", "ff_clip_src"] - 1e-6
    curves = pd.read_csv(tmp_path / "out" / "text_curves.csv")
    assert sorted(curves["t"].unique()) == [-1, 0, 1, 2, 3] and set(curves["editor"]) == set(table["editor"])
    png = tmp_path / "out" / "first_frame_editors.png"
    assert (tmp_path / "out" / "propagation.png").stat().st_size > 10_000  # the region curves, one line per editor
    assert png.stat().st_size > 10_000 and (tmp_path / "out" / "instruct_pix2pix" / "summary.csv").is_file()
