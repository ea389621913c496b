"""The CI regression: the committed goldens hold, drifts are named one per line, bad golden files in one line."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from videoshop_bench.experiments.regression import (GoldenError, compare, read_golden, read_tolerances, tolerances_from_runs,
                                    write_csv_with_header)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "regression.csv"
TOLERANCES = ROOT / "tests" / "golden" / "regression_tolerances.csv"


def _run(*args, timeout=1800):  # ~1 min on 2 free cores; generous for loaded shared machines
    env = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    return subprocess.run([sys.executable, "run.py", "experiment=regression", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_committed_goldens_hold(tmp_path):
    """THE regression: the fixed subset through every method, each metric of each sample within tolerance."""
    proc = _run(f"hydra.run.dir={tmp_path}")
    drift = [line for line in proc.stdout.splitlines() if line.startswith("DRIFT")]
    assert proc.returncode == 0, "\n".join(drift) or proc.stderr[-3000:]
    n = len(read_golden(GOLDEN))
    assert f"regression: all {n} values within tolerance" in proc.stdout
    assert (tmp_path / "gallery.html").is_file()


def test_committed_goldens_cover_every_method_sample_and_metric():
    g = read_golden(GOLDEN)
    tol = read_tolerances(TOLERANCES)
    assert set(g["metric"]) <= set(tol) and tol["nfe"] == 0
    assert {"videoshop", "videoshop_no_norm", "videoshop_no_rescale", "videoshop_no_extrapolation",
            "videoshop_no_threshold", "svd_no_source", "bdia"} <= set(g["method"])
    per_pair = g.groupby(["method", "dataset", "sample_id"]).size()
    assert len(per_pair) >= 14 and per_pair.nunique() == 1  # every sample has every metric
    diverged = g[(g["method"] == "videoshop_no_threshold") & (g["metric"] == "ssim")]["value"]
    assert diverged.isna().all()  # the paper's '- Threshold' diverges; NaN is a golden value too


def test_compare_names_each_drift_and_accepts_values_within_tolerance():
    g = read_golden(GOLDEN)
    tol = read_tolerances(TOLERANCES)
    now = g.copy()
    assert compare(g, now, tol) == []
    i = now.index[(now["metric"] == "clip_tgt") & now["value"].notna()][0]
    j = now.index[(now["metric"] == "flow") & now["value"].notna()][0]
    now.loc[i, "value"] += 0.5 * tol["clip_tgt"]  # within
    now.loc[j, "value"] += 2 * tol["flow"] + 1e-3  # beyond
    now = now.drop(index=now.index[now["metric"] == "ssim"][:1])  # vanished
    drifts = compare(g, now, tol)
    lines = [d.line() for d in drifts]
    assert len(drifts) == 2, lines
    assert any(f"method={g.loc[j, 'method']} sample={g.loc[j, 'dataset']}/{g.loc[j, 'sample_id']} metric=flow "
               f"golden=" in ln and "tolerance=" in ln for ln in lines)
    assert any("metric=ssim" in ln and "now=missing" in ln for ln in lines)
    nan_now = g.copy()
    k = nan_now.index[nan_now["value"].notna() & (nan_now["metric"] == "ssim")][0]
    nan_now.loc[k, "value"] = math.nan  # finite -> NaN is a drift
    assert [d.metric for d in compare(g, nan_now, tol)] == ["ssim"]


def test_tolerances_are_a_factor_of_the_measured_thread_difference():
    a = pd.DataFrame({"method": ["m"] * 3, "dataset": ["d"] * 3, "sample_id": ["s"] * 3,
                      "metric": ["ssim", "flow", "nfe"], "value": [50.0, 1.0, 26.0]})
    b = a.assign(value=[50.0, 1.002, 26.0])
    t = tolerances_from_runs([a, b], factor=4, rel_floor=1e-6).set_index("metric")
    assert t.loc["flow", "tolerance"] == pytest.approx(0.008) and t.loc["flow", "measured_max_abs_diff"] == pytest.approx(0.002)
    assert t.loc["ssim", "tolerance"] == pytest.approx(50e-6)  # agreed bit for bit: float32 floor
    assert t.loc["nfe", "tolerance"] == 0


def test_missing_or_malformed_golden_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(GoldenError, match="missing"):
        read_golden(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    write_csv_with_header(pd.DataFrame({"method": ["m"], "value": ["x"]}), bad, ["h"])
    with pytest.raises(GoldenError) as e:
        read_golden(bad)
    assert str(bad) in str(e.value) and "malformed" in str(e.value) and "\n" not in str(e.value)
    # through the entry point: fails before editing anything, one line
    proc = _run(f"regression.golden={tmp_path}/nope.csv", f"hydra.run.dir={tmp_path}/run", timeout=120)
    assert proc.returncode != 0
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and f"{tmp_path}/nope.csv: missing" in err[0], proc.stderr[-2000:]
    assert not (tmp_path / "run" / "synthetic").exists()
