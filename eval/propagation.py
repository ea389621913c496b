"""Edit propagation: how the first-frame edit holds over the clip (no published suite has it).

Per frame t, on the edit region tracked through the video (eval/tracking.py, the region of CLIP_tgt+/CLIP_src+):
  * inside_t  = 100 cos(E(crop(edited_t, R_t)), E(crop(reference, R_0))): the edited region against the edited
    first frame's region. ``reference``: ``edited_image`` (default: the edit the user made, the image a method
    propagates) or ``output_first`` (the method's own frame 0: drift from where it started, blind to frame-0
    fidelity). Crops are the bounding boxes of the region (CLIP_tgt+'s ``crop`` mode);
  * outside_t = 100 cos(E(fill(edited_t, R_t)), E(fill(source_t, R_t))): the rest of the frame against the source
    (CLIP_src+ per frame; the region filled with ``fill`` in both).
E is CLIP (open_clip, eval/clip.py's ``ClipBackbone``: projected image embeddings, the model's own preprocess).
An edit that fades back to the source or drifts makes the inside curve fall; a background that degrades over time
makes the outside curve fall. Per sample the two curves are stored in the record (``curves``: one value per frame,
NaN where the region is empty, or covers the frame for the outside one) and summarised as four columns:
  * ``propagation_in_auc`` / ``propagation_out_auc``: the normalised area under the curve, trapezoids over
    t / (T - 1) in [0, 1] (= the mean similarity for a flat curve), over the frames that have a value;
  * ``propagation_in_last`` / ``propagation_out_last``: the value at the last frame (the last frame with a value
    when the region has left the frame).
Without a first-frame region the inside columns are skipped; where the region covers every frame the outside ones.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .base import check_same_shape
from .clip import _ClipMetric, _tracker, crop_box, fill_region

REFERENCES = ("edited_image", "output_first")
CURVES = ("propagation_in", "propagation_out")


def curve_area(curve: np.ndarray) -> Optional[float]:
    """Normalised area under ``curve`` (one value per frame, NaN = none): trapezoids over t / (T - 1) between the
    first and last frames with a value, divided by the span they cover; None without any value."""
    y = np.asarray(curve, dtype=np.float64)
    t = np.flatnonzero(np.isfinite(y))
    if len(t) == 0:
        return None
    if len(t) == 1:
        return float(y[t[0]])
    x = t / max(len(y) - 1, 1)
    return float(np.trapezoid(y[t], x) / (x[-1] - x[0]))


def last_value(curve: np.ndarray) -> Optional[float]:
    """The curve's value at its last frame with a value; None without any."""
    y = np.asarray(curve, dtype=np.float64)
    t = np.flatnonzero(np.isfinite(y))
    return float(y[t[-1]]) if len(t) else None


class EditPropagation(_ClipMetric):
    """Per-frame similarity of the edit region to the edited first frame's, and of the outside to the source's."""

    names = ("propagation_in_auc", "propagation_in_last", "propagation_out_auc", "propagation_out_last")
    curve_names = CURVES
    higher_is_better = True
    config_key = "metrics.propagation"

    def __init__(self, reference: str = "edited_image", fill: int = 0, tracking: Optional[dict] = None,
                 **kwargs: Any) -> None:
        if reference not in REFERENCES:
            raise ValueError(f"{self.config_key}.reference must be one of {REFERENCES}, got {reference!r}")
        super().__init__(**kwargs)
        self.reference, self.fill = reference, fill
        self.tracker = _tracker(tracking, kwargs.get("device", "auto"), kwargs.get("cache_dir"))

    # ------------------------------------------------------------------------------------------ curves
    def inside_curve(self, sample, edited: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """100 cos(E(region of edited_t), E(first-frame region of the reference)) per frame; NaN where empty."""
        out = np.full(len(edited), np.nan)
        ref_frame = sample.edited_image if self.reference == "edited_image" else edited[0]
        ref = crop_box(ref_frame, masks[0])
        if ref is None:
            return out
        e_ref = (self._cached_embed("propagation_reference", ref[None]) if self.reference == "edited_image"
                 else self.clip.embed([ref]))[0]
        crops = [crop_box(f, m) for f, m in zip(edited, masks)]
        have = [t for t, c in enumerate(crops) if c is not None]
        if have:
            e = self.clip.embed([crops[t] for t in have])
            out[have] = 100.0 * (e @ e_ref).double().numpy()
        return out

    def outside_curve(self, sample, edited: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """100 cos(E(edited_t outside R_t), E(source_t outside R_t)) per frame; NaN where R_t covers the frame."""
        out = np.full(len(edited), np.nan)
        have = [t for t, m in enumerate(masks) if not m.all()]
        if not have:
            return out
        src = self._cached_embed("source_masked", fill_region(sample.source_video, masks, self.fill))
        ed = self.clip.embed(list(fill_region(edited[have], masks[have], self.fill)))
        out[have] = 100.0 * (ed * src[have]).sum(-1).double().numpy()
        return out

    def score_curves(self, sample, edited: np.ndarray):
        check_same_shape(sample, edited)
        masks = self.tracker.track(sample, edited)
        curves = {"propagation_in": self.inside_curve(sample, edited, masks),
                  "propagation_out": self.outside_curve(sample, edited, masks)}
        values = {}
        for side in ("in", "out"):
            c = curves[f"propagation_{side}"]
            values[f"propagation_{side}_auc"] = curve_area(c)
            values[f"propagation_{side}_last"] = last_value(c)
        return values, {k: [float(v) for v in c] for k, c in curves.items()}

    def score(self, sample, edited: np.ndarray):
        return self.score_curves(sample, edited)[0]

    def skip_reason(self, name: str, sample) -> str:
        if name.startswith("propagation_in"):
            return "no first-frame edit region" if getattr(sample, "edit_mask", None) is not None or \
                getattr(sample, "gt_masks", None) is not None else "no edit mask"
        return "tracked edit region covers the whole frame"

    def protocol(self):
        ref = ("the edited first frame (target image)" if self.reference == "edited_image"
               else "the method's own first output frame")
        inside = (f"{self.clip.describe()}; per frame, crop of the tracked region's bounding box vs the frame-0 "
                  f"region of {ref}")
        outside = (f"{self.clip.describe()}; per frame, edited vs source with the tracked region filled with "
                   f"{self.fill}")
        tail = f"; region tracker: {self.tracker.protocol()}"
        area = "; normalised area under the per-frame curve (trapezoids over t/(T-1))"
        last = "; value at the last frame with a region"
        return {"propagation_in_auc": inside + area + tail, "propagation_in_last": inside + last + tail,
                "propagation_out_auc": outside + area + tail, "propagation_out_last": outside + last + tail}

