"""The plot of ``first_frame_editors``: where an edit was lost, in the image editor or in the propagation."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd


PAPER_COLUMNS = ("clip_tgt", "clip_tgt_plus", "tifa", "clip_src", "clip_src_plus", "flow", "flow_plus", "fvd", "ssim",
                 "clip_tc")
LOWER_IS_BETTER = ("flow", "flow_plus", "fvd")
FRAME0_OF = {"clip_src": "ff_clip_src", "clip_src_plus": "ff_clip_src_plus"}  # the same measure on frame 0 alone


def plot_editors(results: pd.DataFrame, curves: pd.DataFrame, path: Path, title: str = "",
                 region_curves: Optional[dict] = None, table: Optional[pd.DataFrame] = None) -> Path:
    """Four large panels, one colour per editor:

    1. per clip, the editor's frame-0 match to the text (``ff_clip_text``, x) against the propagated frames' match
       (``later_clip_text``, y), editor means as large markers; on the diagonal the video kept the edit's text match,
       below it propagation lost some; far left, the image editor already missed;
    2. CLIP similarity to the text per frame (mean over clips): the editor's image at t = -1, then frames 0..T-1;
    3. the edit-propagation curve (eval/propagation.py, ``region_curves``: editor -> {"propagation_in": (samples,
       frames)}): per frame, the tracked edit region against the edited first frame's region, mean over clips;
    4. keeping the source: frame-0 preservation (``ff_clip_src``) beside frames 1..T-1 (``clip_src[1:]``);

    then, from ``table`` (experiments/first_frame_editors.editor_table), one small panel per paper metric: its mean
    over frames 1..T-1 per editor (filled), over the whole clip (open), and on frame 0 alone where the editor's
    image has the same measure (star: CLIP_src, CLIP_src+).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = results[results["status"] == "ok"]
    editors = list(dict.fromkeys(results["editor"]))
    colour = {e: f"C{i}" for i, e in enumerate(editors)}
    paper = [c for c in PAPER_COLUMNS if table is not None and f"{c}[1:]" in table.columns]
    rows = 2 + (2 if paper else 0)
    fig = plt.figure(figsize=(15, 9.5 + (6.2 if paper else 0)))
    grid = fig.add_gridspec(rows, 10, height_ratios=[3, 3] + [2] * (rows - 2))
    big = [fig.add_subplot(grid[r, c * 5:(c + 1) * 5]) for r in range(2) for c in range(2)]
    _text_scatter(big[0], ok, editors, colour)
    _text_curve(big[1], curves, editors, colour)
    _region_curve(big[2], region_curves or {}, editors, colour)
    _source_bars(big[3], ok, editors)
    for i, col in enumerate(paper):
        _metric_panel(fig.add_subplot(grid[2 + i // 5, (i % 5) * 2:(i % 5) * 2 + 2]), table, col, colour)
    if title:
        fig.suptitle(title + ("\nbottom: the paper's metrics over frames 1..T-1 (filled), the whole clip (open), "
                              "frame 0 alone (star)" if paper else ""), fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.965 if paper else 0.975))  # room for the two-line title
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _metric_panel(ax, table: pd.DataFrame, col: str, colour: dict) -> None:
    """One paper metric per editor: frames 1..T-1 (filled), whole clip (open), frame 0 alone (star) where defined."""
    from videoshop_bench.eval.registry import display_names

    x = np.arange(len(table))
    later = table[f"{col}[1:]"].astype(float)
    ax.scatter(x, later, s=60, c=[colour[e] for e in table["editor"]], zorder=3)
    if col in table.columns:
        ax.scatter(x, table[col].astype(float), s=60, facecolors="none", edgecolors=[colour[e] for e in table["editor"]],
                   zorder=3)
    if FRAME0_OF.get(col) in table.columns:
        ax.scatter(x, table[FRAME0_OF[col]].astype(float), s=90, marker="*", c=[colour[e] for e in table["editor"]],
                   zorder=3)
    ax.set_xticks(x)
    ax.set_xticklabels(table["editor"], rotation=35, ha="right", fontsize=7)
    arrow = "lower is better" if col in LOWER_IS_BETTER else "higher is better"
    ax.set_title(f"{display_names().get(col, col)} ({arrow})", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    if not np.isfinite(later).any():
        ax.text(0.5, 0.5, "no value (skipped: see the table)", transform=ax.transAxes, ha="center", fontsize=7)


def _text_scatter(ax, ok: pd.DataFrame, editors: list, colour: dict) -> None:
    """Per clip: frame-0 text match (x) against frames 1..T-1 (y); editor means large; the diagonal."""
    if {"ff_clip_text", "later_clip_text"} <= set(ok.columns):
        for e in editors:
            g = ok[ok["editor"] == e]
            ax.scatter(g["ff_clip_text"], g["later_clip_text"], s=18, alpha=0.5, color=colour[e])
            ax.scatter(g["ff_clip_text"].mean(), g["later_clip_text"].mean(), s=140, color=colour[e],
                       edgecolor="black", label=f"{e} (n={len(g)})")
        both = pd.concat([ok["ff_clip_text"], ok["later_clip_text"]]).dropna()
        if len(both):
            lo, hi = float(both.min()), float(both.max())
            pad = 0.05 * (hi - lo or 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1, label="propagation kept it all")
        ax.legend(fontsize=8)
    ax.set_xlabel("frame 0, the editor's image: CLIP(image, text) x100")
    ax.set_ylabel("frames 1..T-1 of the video: CLIP(frame, text) x100")
    ax.set_title("edit quality: image editor (x) vs after propagation (y)", fontsize=10)


def _text_curve(ax, curves: pd.DataFrame, editors: list, colour: dict) -> None:
    """CLIP(frame, text) per frame, mean over clips; t = -1 is the editor's image (starred)."""
    for e in editors:
        c = curves[curves["editor"] == e] if len(curves) else curves
        if len(c):
            ax.plot(c["t"], c["clip_text"], marker="o", ms=3, color=colour[e], label=e)
            ax.scatter(c["t"].iloc[:1], c["clip_text"].iloc[:1], s=80, marker="*", color=colour[e])
    ax.axvline(-0.5, color="grey", lw=0.8)
    ax.set_xlabel("frame t (t = -1: the editor's image, starred)")
    ax.set_ylabel("CLIP(frame, text) x100, mean over clips")
    ax.set_title("does the edit hold over the clip?", fontsize=10)
    if len(curves):
        ax.legend(fontsize=8)


def _region_curve(ax, region_curves: dict, editors: list, colour: dict) -> None:
    """eval/propagation.py's propagation_in curve per editor, mean over clips."""
    for e in editors:
        c = (region_curves or {}).get(e, {}).get("propagation_in")
        if c is not None and np.isfinite(c).any():
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a frame no clip has a region in: NaN
                ax.plot(np.arange(c.shape[1]), np.nanmean(c, axis=0), marker="o", ms=3, color=colour[e], label=e)
    ax.set_xlabel("frame t")
    ax.set_ylabel("CLIP(region_t, edited region_0) x100, mean over clips")
    ax.set_title("propagation_in: the tracked edit region over time", fontsize=10)
    if region_curves:
        ax.legend(fontsize=8)


def _source_bars(ax, ok: pd.DataFrame, editors: list) -> None:
    """Source preservation: frame 0 (the editor) beside frames 1..T-1 (the video)."""
    x = np.arange(len(editors))
    for k, (col, name) in enumerate((("ff_clip_src", "frame 0 (editor)"), ("clip_src[1:]", "frames 1..T-1 (video)"))):
        if col in ok.columns:
            means = [ok.loc[ok["editor"] == e, col].mean() for e in editors]
            ax.bar(x + (k - 0.5) * 0.38, means, width=0.38, label=name, color=["#7a9cc6", "#e0a458"][k])
    ax.set_xticks(x)
    ax.set_xticklabels(editors, rotation=20, fontsize=8)
    lows = [v for c in ("ff_clip_src", "clip_src[1:]") if c in ok.columns for v in ok[c].dropna()]
    if lows:
        ax.set_ylim(max(0.0, min(lows) - 5), 100.5)
    ax.set_ylabel("CLIP(edited, source) x100")
    ax.set_title("keeping the source: frame 0 vs the rest", fontsize=10)
    ax.legend(fontsize=8)
