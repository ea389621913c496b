"""Each benchmark builder through the real config (`task=build dataset=<name>`) and an edit run on what it built with
Videoshop and one baseline (model=tiny, metrics=paper_tiny without TIFA/FVD), offline; one of them through run.py."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

import _benchmark_fixtures as F
from videoshop_bench.experiments.build import run_build
from videoshop_bench.experiments.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
METRICS = ["metrics=paper_tiny", "~metrics.tifa", "~metrics.fvd"]


def _cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=["model=tiny", "model.num_frames=6", "logger=none", "device=cpu",
                                             f"paths.data={tmp_path / 'data'}", f"paths.cache={tmp_path / 'cache'}",
                                             *overrides])


def _fixture(name, tmp_path):
    """(build overrides, expected built ids, the baseline that fits the benchmark's inputs)."""
    if name == "five_bench":
        data, ff = F.make_five(tmp_path / "raw")
        return [f"dataset.build.source={data}", f"dataset.build.first_frames={ff}"], 2, "fatezero"
    if name == "v2vbench":
        root, ff = F.make_v2v(tmp_path / "raw")
        return [f"dataset.build.source={root}", f"dataset.build.first_frames={ff}"], 3, "fatezero"
    if name == "editversebench":
        return [f"dataset.build.source={F.make_evb(tmp_path / 'raw')}"], 1, "anyv2v"
    root, edits, ff = F.make_davis(tmp_path / "raw")
    return [f"dataset.build.source={root}", f"dataset.build.edits={edits}", f"dataset.build.first_frames={ff}"], 2, "anyv2v"


@pytest.mark.parametrize("name", ["editversebench", "five_bench", "v2vbench", "davis"])
def test_build_through_config_then_edit_with_videoshop_and_a_baseline(tmp_path, name):
    build, n_built, baseline = _fixture(name, tmp_path)
    report = run_build(_cfg(tmp_path, "task=build", f"dataset={name}", *build))
    assert report["counts"]["built"] == n_built and report["root"] == str(tmp_path / "data" / name)
    for method in ("videoshop", baseline):
        out = tmp_path / method
        df = Runner(_cfg(tmp_path, f"dataset={name}", f"method={method}", "dataset.limit=1",
                         "method.num_inference_steps=2", f"paths.output={out}", "save_mp4=false", *METRICS)).run()["results"]
        assert len(df) == 1 and (df["status"] == "ok").all(), df[["sample_id", "status", "error"]]
        summary = pd.read_csv(out / "summary.csv")
        assert np.isfinite(summary["clip_tgt"].iloc[0]) and np.isfinite(summary["ssim"].iloc[0]), method


def test_run_py_builds_and_edits_davis_reconstruction(tmp_path):
    """`python run.py task=build dataset=davis dataset.build.mode=reconstruction`, then `python run.py dataset=davis`."""
    root, _, _ = F.make_davis(tmp_path / "raw")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    common = ["model=tiny", "model.num_frames=6", "logger=none", "device=cpu", "dataset=davis",
              f"paths.data={tmp_path / 'data'}"]
    p = subprocess.run([sys.executable, "run.py", "task=build", *common, f"dataset.build.source={root}",
                        "dataset.build.mode=reconstruction", f"hydra.run.dir={tmp_path / 'h1'}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    p = subprocess.run([sys.executable, "run.py", *common, "method=videoshop", "method.num_inference_steps=2",
                        *METRICS, "save_mp4=false", f"paths.cache={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'h2'}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    df = pd.read_csv(tmp_path / "h2" / "results.csv")
    assert list(df["sample_id"]) == ["square"] and (df["status"] == "ok").all()
    assert np.isfinite(df["psnr_gt"].iloc[0])  # reconstruction: the ground truth is the source video
