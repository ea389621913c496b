"""The runner composed from the real Hydra config (shrunk): every method end to end, resume, failures, tables."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from videoshop.video_io import read_video
from videoshop_bench.experiments.runner import Runner

CONF = str(Path(__file__).resolve().parents[1] / "conf")
METHODS = sorted(p.stem for p in (Path(CONF) / "method").glob("*.yaml"))
SHRINK = ["model=tiny", "model.num_frames=6", "method.num_inference_steps=6", "dataset.loader.num_samples=2", "logger=none",
          "metrics=default"]
STEPS = "method.num_inference_steps=6"  # only for methods that have a step count (a plugin method may not)


def make_cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        base = [f"paths.output={tmp_path}", f"paths.cache={tmp_path}/cache", *overrides]
        shrink = [o for o in SHRINK if o != STEPS]
        cfg = compose("config", overrides=[*base[:2], *shrink, *base[2:]])
        if "num_inference_steps" not in cfg.method:
            return cfg
        return compose("config", overrides=[*base[:2], *SHRINK, *base[2:]])


def edited(out, sid):
    return read_video(Path(out) / "samples" / sid / "edited")[0]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_config_runs_end_to_end_and_is_deterministic(tmp_path, method):
    tables = {}
    for run in ("a", "b"):
        cfg = make_cfg(tmp_path / run, f"method={method}")
        tables[run] = Runner(cfg).run()
    df = tables["a"]["results"]
    assert len(df) == 2 and (df["status"] == "ok").all(), df[["status", "error"]]
    for sid in df["sample_id"]:
        assert np.array_equal(edited(tmp_path / "a", sid), edited(tmp_path / "b", sid))
    summary = pd.read_csv(tmp_path / "a" / "summary.csv")
    assert {"ssim", "psnr_gt", "n", "n_failed", "protocol"} <= set(summary.columns)
    if method == "videoshop_no_threshold":  # paper Table 5: NaN latents -> NaN metrics, run goes on
        assert (df["finite"] == False).all() and summary["ssim"].isna().all()  # noqa: E712
        assert summary["n_nonfinite"].iloc[0] == 2
    else:
        assert (df["finite"] == True).all() and summary["ssim"].notna().all()  # noqa: E712


def test_default_run_reports_the_paper_metrics_with_their_protocol(tmp_path):
    """The embedded default's metric set (paper_tiny): all ten paper columns, the protocol, the FVD warning."""
    Runner(make_cfg(tmp_path, "metrics=paper_tiny", "dataset.limit=1")).run()
    summary = pd.read_csv(tmp_path / "summary.csv")
    for col in ("clip_tgt", "clip_tgt_plus", "tifa", "clip_src", "clip_src_plus", "flow", "flow_plus", "fvd", "ssim",
                "clip_tc", "fvd_warning", "protocol"):
        assert col in summary.columns, col
    assert "tiny" in summary["protocol"].iloc[0]


def test_rerun_skips_finished_samples_and_rescoring_only_recomputes_metrics(tmp_path, monkeypatch):
    Runner(make_cfg(tmp_path)).run()
    runner = Runner(make_cfg(tmp_path))
    monkeypatch.setattr(runner.method, "edit", lambda *a, **k: pytest.fail("finished sample re-edited"))
    assert (runner.run()["results"]["status"] == "ok").all()
    rescoring = Runner(make_cfg(tmp_path, "metrics=none"))
    monkeypatch.setattr(rescoring.method, "edit", lambda *a, **k: pytest.fail("metric change re-edited"))
    rescoring.run()
    # same ids and settings but other content (a rebuilt dataset, a changed generator): edited again
    changed = Runner(make_cfg(tmp_path, "metrics=none"))
    load = changed.dataset.load
    first = changed.ids[0]

    def brighter(sid):
        s = load(sid)
        if sid == first:
            s.source_video = np.clip(s.source_video.astype(int) + 20, 0, 255).astype(np.uint8)
        return s

    monkeypatch.setattr(changed.dataset, "load", brighter)
    calls = []
    edit = changed.method.edit
    monkeypatch.setattr(changed.method, "edit", lambda sample, g: calls.append(sample.sample_id) or edit(sample, g))
    changed.run()
    assert calls == [first]


class _BrokenDataset:
    """Wraps a dataset; one sample's video file is corrupt, one has 9 frames, one a differently sized edit."""

    def __init__(self, inner, tmp_path):
        self.inner, self.name = inner, "broken"
        self.bad = tmp_path / "corrupt.mp4"
        self.bad.write_bytes(b"not a video")

    def sample_ids(self):
        return ["corrupt"] + self.inner.sample_ids()

    def load(self, sid):
        if sid == "corrupt":
            read_video(self.bad)
        s = self.inner.load(sid)
        if sid.endswith("0000-add_object"):
            s.source_video = np.concatenate([s.source_video, s.source_video[:3]])
        else:
            s.edited_image = np.zeros((30, 50, 3), np.uint8)
        return s


def test_bad_samples_are_recorded_and_the_run_goes_on(tmp_path):
    runner = Runner(make_cfg(tmp_path))
    runner.parts.dataset = _BrokenDataset(runner.dataset, tmp_path)
    runner.parts.ids = runner.dataset.sample_ids()
    df = runner.run()["results"].set_index("sample_id")
    assert df.loc["corrupt", "status"] == "failed"
    assert "corrupt.mp4" in df.loc["corrupt", "error"] and "\n" not in df.loc["corrupt", "error"]
    ok = df.drop("corrupt")
    assert (ok["status"] == "ok").all()
    assert any("resampled 9 -> 6 frames" in n for n in ok["notes"])
    assert any("resized edited image 50x30" in n for n in ok["notes"])
    rec = json.loads((tmp_path / "samples" / "corrupt" / "record.json").read_text())
    assert rec["status"] == "failed" and "traceback" in rec


def test_refuse_policy_fails_only_the_mismatched_sample(tmp_path):
    runner = Runner(make_cfg(tmp_path, "frames_policy=refuse", "model.num_frames=5"))
    runner.parts.dataset = _BrokenDataset(runner.dataset.__class__(num_samples=2, num_frames=6, height=64, width=112), tmp_path)
    runner.parts.ids = runner.dataset.sample_ids()[1:]
    df = runner.run()["results"]
    assert (df["status"] == "failed").all() and df["error"].str.contains("frames_policy=resample").all()


def test_reconstruction_task_scores_against_the_source(tmp_path):
    df = Runner(make_cfg(tmp_path, "task=reconstruct")).run()["results"]
    assert (df["edit_type"] == "reconstruction").all() and df["psnr_gt"].notna().all()
    assert "psnr_gt_in" not in df or df["psnr_gt_in"].isna().all()  # no edit region in reconstruction


def test_wandb_offline_logging_writes_a_run(tmp_path):
    cfg = make_cfg(tmp_path, "logger=wandb", "dataset.limit=1")
    Runner(cfg).run()
    assert list((tmp_path / "wandb").glob("offline-run-*"))


@pytest.mark.parametrize("preset", sorted(p.stem for p in (Path(CONF) / "experiment").glob("*.yaml")))
def test_every_experiment_preset_composes(tmp_path, preset):
    from videoshop_bench.experiments.config_schema import validate_config

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.output={tmp_path}", f"experiment={preset}"])
        smoke = compose("config", overrides=[f"paths.output={tmp_path}", f"experiment={preset}", "smoke=on"])
    assert cfg.method.name and cfg.dataset.name
    assert validate_config(smoke) == [], preset  # the offline variant of every preset passes the config schema
    if preset == "reconstruction":  # a preset's values win over conf/config.yaml's
        assert cfg.task == "reconstruct"


def test_sigma_sweep_from_the_command_line_ends_in_one_combined_table(tmp_path):
    """`python run.py -m method.threshold=...` (the real entry point, multirun) writes one combined table."""
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "run.py", "-m", "method.threshold=0.5,2", f"hydra.sweep.dir={tmp_path}", *SHRINK,
           "dataset.limit=1", f"paths.cache={tmp_path}/cache"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    combined = pd.read_csv(tmp_path / "combined_summary.csv")
    assert sorted(combined["label"]) == ["videoshop[num_inference_steps=6,threshold=0.5]",
                                         "videoshop[num_inference_steps=6,threshold=2]"]
    md = (tmp_path / "combined_summary.md").read_text()
    assert md.split("## Paired differences")[0].count(",threshold=") == 2
    # every label is a videoshop: the paired differences are to the first one (the table names it)
    assert "each method minus videoshop[num_inference_steps=6,threshold=0.5]" in md
    # the swept values travel as data: each record holds its job's overrides, typed; the Sigma plot reads them
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.rglob("record.json"))]
    assert sorted(r["overrides"]["method.threshold"] for r in records) == [0.5, 2]
    assert all(r["overrides"]["method.num_inference_steps"] == 6 and "paths.cache" not in r["overrides"]
               and "model" not in r["overrides"] for r in records)
    results = pd.read_csv(tmp_path / "combined_results.csv")
    assert sorted(json.loads(o)["method.threshold"] for o in results["overrides"]) == [0.5, 2]
    assert set(combined["method"]) == {"videoshop"}
    assert (tmp_path / "combined_sigma_sweep.png").is_file()


def test_paper_comparison_notebook_runs_on_a_results_dir(tmp_path):
    Runner(make_cfg(tmp_path, "dataset.limit=1")).run()
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "notebooks/compare_with_paper.py", str(tmp_path)], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Videoshop" in proc.stdout and "ssim" in proc.stdout


def test_embedded_default_config_runs_on_the_shipped_toy_model(tmp_path):
    """`python run.py` with no arguments = the toy model on easy synthetic data with the paper_tiny metrics."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.output={tmp_path}", f"paths.cache={tmp_path}/cache", "logger=none",
                                           "dataset.limit=1"])
    assert cfg.model.name == "toy" and cfg.dataset.loader.difficulty == "easy" and cfg.dataset.loader.num_frames == 8
    df = Runner(cfg).run()["results"]
    assert (df["status"] == "ok").all() and df["psnr_gt"].notna().all() and df["clip_tgt"].notna().all()


def test_cotracker_without_a_local_clone_fails_in_one_line_naming_the_tracking_key(tmp_path):
    from videoshop_bench.experiments.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        Runner(make_cfg(tmp_path, "metrics=paper_tiny", "tracking=cotracker"))
    msg = str(e.value)
    assert "\n" not in msg and "tracking.cotracker_repo=DIR" in msg and "metrics.clip_tgt.tracking" not in msg


def test_prefetching_the_next_sample_changes_no_result(tmp_path):
    """prefetch=true loads sample k+1 on a background thread while k is edited: same frames, metrics and failures as
    loading in turn (a sample that fails to load fails the same way)."""
    out = {}
    for flag in ("true", "false"):
        cfg = make_cfg(tmp_path / flag, f"prefetch={flag}", "dataset.loader.num_samples=3")
        runner = Runner(cfg)
        out[flag] = runner.run()["results"].set_index("sample_id")
        if flag == "true":
            assert runner._loader is None and not runner._prepared  # the thread is shut down after the loop
    assert list(out["true"].index) == list(out["false"].index)
    cols = [c for c in out["true"].columns if c not in ("seconds", "peak_mem_mb", "worker")]
    pd.testing.assert_frame_equal(out["true"][cols], out["false"][cols])
    for sid in out["true"].index:
        assert np.array_equal(edited(tmp_path / "true", sid), edited(tmp_path / "false", sid))
