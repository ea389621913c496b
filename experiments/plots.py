"""Plots beside the tables: the metrics per method, the paper's ten metrics in its column order, per edit type,
and a metric against one swept option (a Sigma sweep: ``method.threshold``), read from the jobs' overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

from eval.registry import display_names, set_columns

from .tables import metric_columns, override_values


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
