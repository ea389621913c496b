"""The plot of ``first_frame_editors``: where an edit was lost, in the image editor or in the propagation."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd


def plot_editors(results: pd.DataFrame, curves: pd.DataFrame, path: Path, title: str = "",
                 region_curves: Optional[dict] = None) -> Path:
    """Four panels, one colour per editor:

    1. per clip, the editor's frame-0 match to the text (``ff_clip_text``, x) against the propagated frames' match
       (``later_clip_text``, y), editor means as large markers; on the diagonal the video kept the edit's text match,
       below it propagation lost some; far left, the image editor already missed;
    2. CLIP similarity to the text per frame (mean over clips): the editor's image at t = -1, then frames 0..T-1;
    3. the edit-propagation curve (eval/propagation.py, ``region_curves``: editor -> {"propagation_in": (samples,
       frames)}): per frame, the tracked edit region against the edited first frame's region, mean over clips;
    4. keeping the source: frame-0 preservation (``ff_clip_src``) beside frames 1..T-1 (``later_clip_src``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = results[results["status"] == "ok"]
    editors = list(dict.fromkeys(results["editor"]))
    colour = {e: f"C{i}" for i, e in enumerate(editors)}
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    axes = axes.ravel()
    ax = axes[0]
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
    ax = axes[1]
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
    ax = axes[2]
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
    ax = axes[3]
    x = np.arange(len(editors))
    for k, (col, name) in enumerate((("ff_clip_src", "frame 0 (editor)"), ("later_clip_src", "frames 1..T-1 (video)"))):
        if col in ok.columns:
            means = [ok.loc[ok["editor"] == e, col].mean() for e in editors]
            ax.bar(x + (k - 0.5) * 0.38, means, width=0.38, label=name, color=["#7a9cc6", "#e0a458"][k])
    ax.set_xticks(x)
    ax.set_xticklabels(editors, rotation=20, fontsize=8)
    lows = [v for c in ("ff_clip_src", "later_clip_src") if c in ok.columns for v in ok[c].dropna()]
    if lows:
        ax.set_ylim(max(0.0, min(lows) - 5), 100.5)
    ax.set_ylabel("CLIP(edited, source) x100")
    ax.set_title("keeping the source: frame 0 vs the rest", fontsize=10)
    ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
