"""CI regression: a fixed small subset through a fixed set of methods, every metric of every sample compared with
committed golden values (``python run.py experiment=regression``; conf/experiment/regression.yaml).

Goldens are a long CSV (method, dataset, sample_id, metric, value) with a ``#`` header saying how they were made;
tolerances are a second CSV (metric, tolerance, measured_max_abs_diff, rule) derived from a measurement: the same
subset run at several torch thread counts (different float reduction orders, the kind of difference another CPU
gives), ``tolerance = max(factor * measured_max_abs_diff, rel_floor * max|golden|)`` (``regression.measure=true``).
Set-level metrics (FVD) are rows with ``sample_id = "(set)"``.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import pandas as pd

from .errors import ConfigError
from .tables import metric_columns

log = logging.getLogger(__name__)

KEYS = ("method", "dataset", "sample_id", "metric")
GOLDEN_COLUMNS = KEYS + ("value",)
TOLERANCE_COLUMNS = ("metric", "tolerance", "measured_max_abs_diff", "rule")
SET_ROW = "(set)"
REPO_ROOT = Path(__file__).resolve().parents[1]
EXACT = ("nfe",)  # integer counts: compared exactly


class GoldenError(ConfigError):
    """A golden or tolerance file that is missing or malformed (one line naming it)."""


@dataclass(frozen=True)
class Drift:
    method: str
    dataset: str
    sample_id: str
    metric: str
    golden: float
    now: float
    tolerance: float

    def line(self) -> str:
        return (f"DRIFT method={self.method} sample={self.dataset}/{self.sample_id} metric={self.metric} "
                f"golden={_fmt(self.golden)} now={_fmt(self.now)} tolerance={_fmt(self.tolerance)}")


def _fmt(v: Any) -> str:
    if v is None:
        return "missing"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------------------------- values of a run
def long_values(results: pd.DataFrame, set_metrics: Optional[pd.DataFrame], method: str, dataset: str) -> pd.DataFrame:
    """One row per (sample, metric) of one run: every metric column of the per-sample table, ``nfe``, and the
    numeric set metrics (FVD) as sample ``(set)``."""
    rows = []
    cols = metric_columns(results) + [c for c in EXACT if c in results.columns]
    for _, r in results.iterrows():
        rows += [(method, dataset, str(r["sample_id"]), c, _float(r[c])) for c in cols]
    if set_metrics is not None and not set_metrics.empty:
        for c in set_metrics.columns:
            v = pd.to_numeric(set_metrics[c], errors="coerce").iloc[0]
            if not pd.isna(v):
                rows.append((method, dataset, SET_ROW, c, float(v)))
    return pd.DataFrame(rows, columns=list(GOLDEN_COLUMNS))


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


# ---------------------------------------------------------------------------------------------- files
def _read_csv(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not path.is_file():
        raise GoldenError(f"{what} {path}: missing (create it with `python run.py experiment=regression "
                          f"regression.update=true`)")
    try:
        df = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False)
    except Exception as e:  # noqa: BLE001
        raise GoldenError(f"{what} {path}: malformed ({type(e).__name__}: {str(e).strip().splitlines()[0]})") from e
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise GoldenError(f"{what} {path}: malformed (no column(s) {missing}; expected {list(columns)})")
    for c in ("value", "tolerance", "measured_max_abs_diff"):
        if c in columns:
            num = pd.to_numeric(df[c], errors="coerce")
            bad = num.isna() & (df[c].str.strip().str.lower() != "nan")  # NaN is written "nan"; empty is malformed
            if bad.any():
                raise GoldenError(f"{what} {path}: malformed (non-numeric {c} {df[c][bad].iloc[0]!r} on data row "
                                  f"{int(bad.idxmax()) + 1})")
            df[c] = num.astype(float)
    if what == "golden file" and df.duplicated(list(KEYS)).any():
        raise GoldenError(f"{what} {path}: malformed (duplicate rows, e.g. {df[df.duplicated(list(KEYS))].iloc[0].tolist()})")
    return df[list(columns)]


def read_golden(path: str | Path) -> pd.DataFrame:
    return _read_csv(Path(path), GOLDEN_COLUMNS, "golden file")


def read_tolerances(path: str | Path) -> dict[str, float]:
    df = _read_csv(Path(path), TOLERANCE_COLUMNS, "tolerance file")
    return dict(zip(df["metric"], df["tolerance"].astype(float)))


def write_csv_with_header(df: pd.DataFrame, path: str | Path, header: Iterable[str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"# {h}\n" for h in header) + df.to_csv(index=False, float_format="%.9g", na_rep="nan")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------- comparison
def compare(golden: pd.DataFrame, now: pd.DataFrame, tolerances: dict[str, float]) -> list[Drift]:
    """Every (method, sample, metric) whose value moved by more than its metric's tolerance, appeared, vanished,
    or turned NaN (or finite); NaN equals NaN (a diverged sample that still diverges is no drift)."""
    m = golden.merge(now, on=list(KEYS), how="outer", suffixes=("_golden", "_now"), indicator="where")
    drifts = []
    for r in m.itertuples(index=False):
        g = None if r.where == "right_only" else float(r.value_golden)
        n = None if r.where == "left_only" else float(r.value_now)
        tol = tolerances.get(r.metric)
        if g is None or n is None or tol is None:
            bad = True
        elif math.isnan(g) or math.isnan(n):
            bad = math.isnan(g) != math.isnan(n)
        else:
            bad = abs(n - g) > tol
        if bad:
            drifts.append(Drift(r.method, r.dataset, r.sample_id, r.metric, g, n, math.nan if tol is None else tol))
    return sorted(drifts, key=lambda d: (d.method, d.dataset, d.sample_id, d.metric))


def tolerances_from_runs(runs: Sequence[pd.DataFrame], factor: float = 4.0, rel_floor: float = 1e-6) -> pd.DataFrame:
    """Per metric: the largest |difference| of any row between runs made with different thread counts, times
    ``factor``, but at least ``rel_floor * max|value|`` (float32 round-off where the runs agreed bit for bit);
    counts (nfe) exactly 0."""
    base = runs[0].set_index(list(KEYS))["value"]
    diffs = pd.Series(0.0, index=base.index)
    for other in runs[1:]:
        o = other.set_index(list(KEYS))["value"].reindex(base.index)
        d = (o - base).abs()
        both_nan = o.isna() & base.isna()
        d = d.where(~both_nan, 0.0).fillna(math.inf)  # NaN in one run only: no finite tolerance can cover it
        diffs = diffs.combine(d, max)
    rows = []
    for metric, d in diffs.groupby(level="metric"):
        measured = float(d.max())
        if metric in EXACT:
            rows.append((metric, 0.0, measured, "exact (a count)"))
            continue
        scale = float(base.xs(metric, level="metric").abs().max(skipna=True) or 0.0)
        floor = rel_floor * (scale if math.isfinite(scale) else 0.0)
        tol = max(factor * measured, floor)
        rule = f"{factor:g} x measured" if factor * measured >= floor else f"{rel_floor:g} x max|value| (runs agreed)"
        rows.append((metric, tol, measured, rule))
    return pd.DataFrame(rows, columns=list(TOLERANCE_COLUMNS))


# ---------------------------------------------------------------------------------------------- the Hydra edge
def _passthrough_overrides() -> list[str]:
    """The command line's own overrides, minus those the regression sets itself."""
    from hydra.core.hydra_config import HydraConfig

    try:
        task = list(HydraConfig.get().overrides.task)
    except ValueError:
        return []
    skip = ("experiment=", "regression.", "method=", "dataset=", "hydra.", "task=")
    return [o for o in task if not o.lstrip("+~").startswith(skip)]


def run_subset(reg: dict, out: Path, threads: int, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Run every (dataset, method) of the subset from scratch into ``out`` and return the long value table."""
    import torch
    from hydra import compose

    from .merge import combine_runs
    from .runner import Runner

    torch.set_num_threads(int(threads))
    shutil.rmtree(out, ignore_errors=True)  # from scratch: no resumed sample, no cached source features
    values, job_dirs = [], []
    for ds, sel in reg["datasets"].items():
        sel = sel or {}
        for method in reg["methods"]:
            job = out / ds / method
            ov = ["experiment=regression", *extra, f"method={method}", f"dataset={ds}", "task=edit",
                  f"paths.output={job}", f"paths.cache={out}/cache", "overwrite=true"]
            if sel.get("ids"):
                ov.append(f"dataset.ids=[{','.join(sel['ids'])}]")
            if sel.get("limit") is not None:
                ov.append(f"dataset.limit={int(sel['limit'])}")
            cfg = compose(config_name="config", overrides=ov)
            tables = Runner(cfg, method).run()
            set_path = job / "set_metrics.csv"
            set_df = pd.read_csv(set_path, index_col="label") if set_path.is_file() else None
            values.append(long_values(tables["results"], set_df, method, ds))
            job_dirs.append(job)
    tables = combine_runs(job_dirs, out)
    from .gallery import write_gallery
    from .plots import write_plots

    write_gallery(job_dirs, out / "gallery.html", title="videoshop-bench: CI regression subset")
    write_plots(tables, out, prefix="combined_")
    return pd.concat(values, ignore_index=True)


def run_regression(cfg, label: Optional[str] = None) -> pd.DataFrame:
    """``task=regression``: check (default), ``regression.update=true`` (rewrite goldens, print what changed) or
    ``regression.measure=true`` (derive tolerances from runs at ``regression.measure_threads``)."""
    from omegaconf import OmegaConf

    reg = OmegaConf.to_container(cfg.regression, resolve=True)
    root = REPO_ROOT
    golden_path = _resolve(reg["golden"], root)
    tol_path = _resolve(reg["tolerances"], root)
    out = Path(cfg.paths.output)
    extra = _passthrough_overrides()
    subset = f"datasets {reg['datasets']}; methods {reg['methods']}; model {cfg.model.name}; metrics paper_tiny"

    if reg.get("measure"):
        runs = [run_subset(reg, out / f"threads{t}", t, extra) for t in reg["measure_threads"]]
        tol = tolerances_from_runs(runs, float(reg["factor"]), float(reg["rel_floor"]))
        write_csv_with_header(tol, tol_path, [
            "Per-metric tolerances of the CI regression (experiments/regression.py), MEASURED:",
            f"the subset ({subset}) run at torch thread counts {reg['measure_threads']};",
            "measured_max_abs_diff = largest |difference| of any (method, sample) between those runs;",
            f"tolerance = max({reg['factor']} x measured, {reg['rel_floor']} x max|value|); nfe exact.",
            "Regenerate: python run.py experiment=regression regression.measure=true"])
        print(f"wrote {tol_path}:\n{tol.to_string(index=False)}")
        now = runs[-1]
        _write_golden(now, golden_path, subset, reg["measure_threads"][-1])
        return now

    if not reg.get("update"):  # fail fast, before minutes of editing
        golden, tolerances = read_golden(golden_path), read_tolerances(tol_path)
    now = run_subset(reg, out, int(reg["threads"]), extra)
    if reg.get("update"):
        old = read_golden(golden_path) if golden_path.is_file() else None
        tolerances = read_tolerances(tol_path) if tol_path.is_file() else {}
        if old is not None:  # a smaller methods/datasets list rewrites only its own rows
            kept = old[~old.index.isin(_in_scope(old, reg).index)]
            old = _in_scope(old, reg)
        _write_golden(now if old is None else pd.concat([kept, now], ignore_index=True), golden_path, subset,
                      reg["threads"])
        if old is None:
            print(f"regression: created {golden_path} ({len(now)} values)")
        else:
            changed = [d for d in compare(old, now, {k: 0.0 for k in set(now["metric"]) | set(old["metric"])})]
            beyond = compare(old, now, tolerances)
            for d in beyond:
                print(d.line().replace("DRIFT", "CHANGED", 1))
            print(f"regression: rewrote {golden_path}: {len(beyond)} value(s) changed beyond tolerance, "
                  f"{len(changed) - len(beyond)} within tolerance, {len(now)} in all")
        return now
    golden = _in_scope(golden, reg)
    drifts = compare(golden, now, tolerances)
    for d in drifts:
        print(d.line())
    if drifts:
        print(f"regression: {len(drifts)} of {len(now)} values drifted from {golden_path} "
              f"(intended? rerun with regression.update=true and commit the new goldens)")
        raise SystemExit(1)
    print(f"regression: all {len(now)} values within tolerance of {golden_path}")
    return now


def _in_scope(golden: pd.DataFrame, reg: dict) -> pd.DataFrame:
    """The golden rows of the (method, dataset) pairs this invocation runs."""
    pairs = {(m, d) for d in reg["datasets"] for m in reg["methods"]}
    return golden[[(m, d) in pairs for m, d in zip(golden["method"], golden["dataset"])]]


def _write_golden(now: pd.DataFrame, path: Path, subset: str, threads: Any) -> None:
    import torch

    write_csv_with_header(now.sort_values(list(KEYS)), path, [
        "Golden values of the CI regression (experiments/regression.py; conf/experiment/regression.yaml):",
        f"{subset}; torch {torch.__version__}, {threads} thread(s).",
        "Tolerances per metric (measured): tests/golden/regression_tolerances.csv.",
        "An intended change: python run.py experiment=regression regression.update=true, then commit this file."])


def _resolve(p: str, root: Path) -> Path:
    path = Path(p)
    return path if path.is_absolute() else root / path
