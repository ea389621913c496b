"""Plots beside the tables: the metrics per method, the paper's ten metrics in its column order, per edit type,
a metric against one swept option (a Sigma sweep: ``method.threshold``), read from the jobs' overrides, the
edit-propagation curves per method (from the records' ``curves``), and quality against cost (seconds, NFE, peak
memory) with the Pareto front."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from videoshop_bench.eval.registry import display_names, set_columns

from .gallery import read_records
from .tables import metric_columns, override_values
from .uncertainty import CI_HI, CI_LO, IntervalOptions, bootstrap_interval, pareto_front


def write_plots(tables: dict[str, pd.DataFrame], out_dir: str | Path, prefix: str = "") -> dict[str, Path]:
    """PNG plots next to the tables: the paper's metrics per method side by side, and per-edit-type bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    plots: dict[str, Path] = {}
    summary, by_type = tables.get("summary"), tables.get("by_edit_type")
    if summary is None or summary.empty:
        return plots
    # a multirun over several datasets repeats a label in the combined summary (one row per set-metric row)
    summary = summary.drop_duplicates("label").reset_index(drop=True)
    counts = ["n", "n_failed", "n_nonfinite", "n_skipped", "nfe", "seconds", "peak_mem_mb"]  # not metrics
    mcols = [c for c in metric_columns(summary.drop(columns=counts, errors="ignore"))
             if pd.api.types.is_numeric_dtype(summary[c])]
    mcols = [m for m in mcols if summary[m].notna().any()]  # e.g. FVD over too few videos
    if mcols:
        ncol = min(5, len(mcols))
        nrow = -(-len(mcols) // ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 3.0 * nrow), squeeze=False)
        for ax in axes.flat[len(mcols):]:
            ax.axis("off")
        for ax, m in zip(axes.flat, mcols):
            ax.bar(range(len(summary)), summary[m].astype(float), color=[f"C{i}" for i in range(len(summary))])
            ax.set_title(display_names().get(m, m), fontsize=9)
            ax.set_xticks(range(len(summary)), summary["label"], rotation=90, fontsize=7)
        fig.tight_layout()
        plots["metrics_per_method"] = out_dir / f"{prefix}metrics_per_method.png"
        fig.savefig(plots["metrics_per_method"], dpi=80)
        plt.close(fig)
    paper_cols = [m for m in set_columns("paper") if m in summary.columns and summary[m].notna().any()]
    if paper_cols:  # the paper's ten metrics, one panel each, in the paper's column order (Tables 2-3)
        fig, axes = plt.subplots(1, len(paper_cols), figsize=(1.9 * len(paper_cols), 3.4), squeeze=False)
        for ax, m in zip(axes[0], paper_cols):
            ax.bar(range(len(summary)), summary[m].astype(float), color=[f"C{i}" for i in range(len(summary))])
            ax.set_title(display_names().get(m, m), fontsize=9)
            ax.set_xticks(range(len(summary)), summary["label"], rotation=90, fontsize=7)
        fig.suptitle("the paper's metrics (CLIP, TIFA, SSIM, CLIP_TC x100; Flow px; FVD)", fontsize=9)
        fig.tight_layout()
        plots["paper_metrics"] = out_dir / f"{prefix}paper_metrics.png"
        fig.savefig(plots["paper_metrics"], dpi=80)
        plt.close(fig)
    if by_type is not None and not by_type.empty and mcols:
        shown = [m for m in mcols if m in by_type.columns][:6]
        fig, axes = plt.subplots(1, len(shown), figsize=(3.0 * len(shown), 3.2), squeeze=False)
        for ax, m in zip(axes[0], shown):
            piv = by_type.pivot_table(index="edit_type", columns="label", values=m, aggfunc="mean", dropna=False)
            piv.plot.bar(ax=ax, legend=ax is axes[0][0], fontsize=7)
            ax.set_title(display_names().get(m, m), fontsize=9)
            ax.set_xlabel("")
        if axes[0][0].get_legend():
            axes[0][0].legend(fontsize=6)
        fig.tight_layout()
        plots["by_edit_type"] = out_dir / f"{prefix}by_edit_type.png"
        fig.savefig(plots["by_edit_type"], dpi=80)
        plt.close(fig)
    return plots


def write_sigma_sweep_plot(results: pd.DataFrame, out_dir: str | Path, prefix: str = "combined_") -> Optional[Path]:
    """Each metric against the noise-extrapolation threshold Sigma (Eq. 6) of a ``method.threshold`` sweep."""
    return write_sweep_plot(results, out_dir, "method.threshold", "Sigma", f"{prefix}sigma_sweep.png")


def write_sweep_plot(results: pd.DataFrame, out_dir: str | Path, key: str, axis: str, name: str,
                     log_x: bool = True) -> Optional[Path]:
    """Each metric against the swept option ``key`` (each job's override, the records' ``overrides``): every sample
    as a dot, the mean over samples as a line. Runs that did not override ``key`` are left out; None below 2
    values. Written to ``out_dir / name``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = pd.to_numeric(override_values(results, key), errors="coerce")
    df = results.assign(_x=x).dropna(subset=["_x"])
    if df["_x"].nunique() < 2:
        return None
    mcols = [c for c in metric_columns(df) if c != "_x" and pd.api.types.is_numeric_dtype(df[c])]
    fig, axes = plt.subplots(1, len(mcols), figsize=(2.2 * len(mcols), 2.8), squeeze=False)
    for ax, m in zip(axes[0], mcols):
        ax.plot(df["_x"], df[m], "o", alpha=0.35, ms=3, color="C0")
        mean = df.groupby("_x")[m].mean()
        ax.plot(mean.index, mean.values, "-", color="C1")
        if log_x:
            ax.set_xscale("log")
        ax.set_xticks(list(mean.index), [f"{v:g}" for v in mean.index])
        ax.minorticks_off()
        ax.set_title(display_names().get(m, m), fontsize=9)
        ax.set_xlabel(axis, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    path = Path(out_dir) / name
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------- edit propagation over time
def propagation_curves(records: Iterable[dict], names: Sequence[str] = ("propagation_in", "propagation_out")
                       ) -> dict[str, dict[str, np.ndarray]]:
    """label -> curve name -> (samples, frames) array of the successful records' stored curves (NaN-padded to the
    longest video)."""
    rows: dict[str, dict[str, list]] = {}
    for r in records:
        curves = r.get("curves") or {}
        if r.get("status") != "ok" or not any(n in curves for n in names):
            continue
        for n in names:
            if n in curves:
                rows.setdefault(str(r.get("label")), {}).setdefault(n, []).append(np.asarray(curves[n], float))
    out: dict[str, dict[str, np.ndarray]] = {}
    for label, by_name in rows.items():
        for n, cs in by_name.items():
            t = max(len(c) for c in cs)
            out.setdefault(label, {})[n] = np.stack([np.pad(c, (0, t - len(c)), constant_values=np.nan) for c in cs])
    return out


def write_propagation_plot(records: Iterable[dict], out_dir: str | Path, prefix: str = "",
                           intervals: IntervalOptions = IntervalOptions()) -> Optional[Path]:
    """``{prefix}propagation.png``: the edit-propagation curves (eval/propagation.py), one line per method (mean over
    samples) with a band (the bootstrap interval of that mean, per frame): inside the edit region against the
    edited first frame (does the edit fade or drift?) and outside against the source. None without curves."""
    curves = propagation_curves(records)
    if not curves:
        return None
    plt = _pyplot()
    panels = (("propagation_in", "edit region vs edited first frame"), ("propagation_out", "outside vs source"))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4), squeeze=False)
    for ax, (name, title) in zip(axes[0], panels):
        for i, (label, by_name) in enumerate(curves.items()):
            c = by_name.get(name)
            if c is None or not np.isfinite(c).any():
                continue
            t = np.arange(c.shape[1])
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a frame no sample has a value for: NaN
                mean = np.nanmean(c, axis=0)
            band = np.array([bootstrap_interval(col[np.isfinite(col)], intervals) for col in c.T])
            ax.plot(t, mean, "-o", ms=3, color=f"C{i}", label=f"{label} (n={len(c)})")
            ax.fill_between(t, band[:, 0], band[:, 1], color=f"C{i}", alpha=0.2, linewidth=0)
        ax.set_title(f"{name}: {title}", fontsize=9)
        ax.set_xlabel("frame", fontsize=8)
        ax.set_ylabel("cosine similarity x100", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Edit propagation: mean over samples, band = {intervals.confidence:.0%} bootstrap interval",
                 fontsize=9)
    fig.tight_layout()
    path = Path(out_dir) / f"{prefix}propagation.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------ quality vs cost
QUALITY_DEFAULTS = ("clip_tgt_plus", "clip_tgt", "propagation_in_auc", "psnr_gt")
COSTS = (("seconds", "seconds per sample"), ("nfe", "NFE (network passes)"), ("peak_mem_mb", "peak memory per edit (MiB; CPU: process peak RSS)"))


def quality_metric(summary: pd.DataFrame, chosen: Optional[str] = None) -> Optional[str]:
    """The cost plot's quality column: ``chosen`` (tables.quality; an error naming the key when the table lacks
    it), else the first present of QUALITY_DEFAULTS, else the first metric column; None without any."""
    cols = [c for c in metric_columns(summary)
            if pd.api.types.is_numeric_dtype(summary[c]) and summary[c].notna().any()]  # not the *_warning notes
    if chosen:
        if chosen not in summary.columns:
            raise ValueError(f"tables.quality={chosen}: no such column in the summary (columns: {cols})")
        return chosen
    return next((c for c in QUALITY_DEFAULTS if c in cols), cols[0] if cols else None)


def write_cost_plot(summary: pd.DataFrame, out_dir: str | Path, protocol: Optional[dict] = None, prefix: str = "",
                    intervals: Optional[IntervalOptions] = None) -> Optional[Path]:
    """``{prefix}quality_vs_cost.png``: per method, mean quality (``tables.quality``) against mean seconds, NFE and
    peak memory per sample, each with its interval as error bars; the Pareto front (no other method both cheaper
    and better) ringed and joined. None without a quality column or costs."""
    protocol = protocol or {}
    intervals = intervals or IntervalOptions.from_dict(protocol.get("intervals"))
    summary = summary.drop_duplicates("label").reset_index(drop=True)
    q = quality_metric(summary.drop(columns=[c for c, _ in COSTS] + ["n", "n_failed", "n_nonfinite", "n_skipped"],
                                    errors="ignore"), intervals.quality)
    costs = [(c, name) for c, name in COSTS if c in summary.columns and summary[c].notna().any()]
    if q is None or not costs:
        return None
    higher = (protocol.get("higher_is_better") or {}).get(q, True)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(costs), figsize=(3.6 * len(costs), 3.4), squeeze=False)
    for ax, (c, name) in zip(axes[0], costs):
        x, y = summary[c].astype(float).to_numpy(), summary[q].astype(float).to_numpy()
        front = pareto_front(x, y, higher)
        for i, label in enumerate(summary["label"]):
            missing = "" if np.isfinite(x[i]) and np.isfinite(y[i]) else " (no value: NaN)"  # e.g. diverged latents
            ax.errorbar(x[i], y[i], xerr=_err(summary, c, i), yerr=_err(summary, q, i), fmt="o", color=f"C{i}",
                        ms=6, capsize=2, label=f"{label}{missing}")
        order = np.argsort(x[front])
        ax.plot(x[front][order], y[front][order], "--", color="k", lw=0.8, drawstyle="steps-post",
                label="Pareto front")
        ax.scatter(x[front], y[front], s=160, facecolors="none", edgecolors="k", linewidths=1.2)
        ax.set_xlabel(name, fontsize=8)
        ax.set_ylabel(f"{display_names().get(q, q)} ({'higher' if higher else 'lower'} is better)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=6)
    fig.suptitle(f"Quality ({q}) against cost per method; ringed: the Pareto front", fontsize=9)
    fig.tight_layout()
    path = Path(out_dir) / f"{prefix}quality_vs_cost.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_time_and_cost_plots(run_dirs: list[Path], summary: Optional[pd.DataFrame], out: Path, protocol: dict,
                              prefix: str = "") -> dict[str, Path]:
    """The edit-propagation curves of the runs' records and the quality-vs-cost plot of their summary (those
    that apply), by plot name."""
    intervals = IntervalOptions.from_dict(protocol.get("intervals"))
    plots = {}
    records, _, _ = read_records(run_dirs)
    got = write_propagation_plot(records, out, prefix, intervals)
    if got is not None:
        plots["propagation"] = got
    got = write_cost_plot(summary, out, protocol, prefix, intervals) if summary is not None and not summary.empty \
        else None
    if got is not None:
        plots["quality_vs_cost"] = got
    return plots


def _err(summary: pd.DataFrame, col: str, i: int):
    """Asymmetric error bar [[below], [above]] of row ``i``'s ``col`` from its interval columns (None without)."""
    lo, hi = summary.get(col + CI_LO), summary.get(col + CI_HI)
    if lo is None or hi is None or pd.isna(lo.iloc[i]) or pd.isna(hi.iloc[i]):
        return None
    m = float(summary[col].iloc[i])
    return [[max(m - float(lo.iloc[i]), 0.0)], [max(float(hi.iloc[i]) - m, 0.0)]]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
