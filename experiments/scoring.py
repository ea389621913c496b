"""Scoring one edited sample: every per-sample metric's values, the metrics it could not compute (with why), and
each set metric's per-sample inputs (I3D features for FVD), all returned, none kept aside on an object."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.windows import FrameWindow

from .errors import one_line
from .merge import class_path


@dataclass
class Scores:
    """``values``: metric name -> value (NaN where the edit diverged or the metric raised); ``errors``: one line per
    metric that raised; ``skipped``: metric name -> why it could not be computed for this sample (no ground truth,
    empty tracked region: counted in the tables, never a NaN); ``notes``: the metrics' notes on the sample;
    ``curves``: per-frame series (curve name -> one value per frame), e.g. the edit-propagation curves."""

    values: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    curves: dict[str, list[float]] = field(default_factory=dict)


def score_sample(metrics: dict[str, Any], sample: Sample, frames: np.ndarray, finite: bool,
                 windows: Sequence[FrameWindow] = ()) -> Scores:
    """Every per-sample metric of ``metrics`` on ``frames`` (the edit at the sample's size), then on each frame
    window (eval/windows.py: the same metric objects on the trimmed sample; columns ``<name>[start:stop]``, no
    curves)."""
    out = Scores()
    for key, metric in metrics.items():
        if metric.per_sample:
            _score_metric(out, key, metric, sample, frames, finite)
    for w in windows:
        part, part_frames = w.trim(sample, frames)
        for key, metric in metrics.items():
            if metric.per_sample and w.applies(key):
                _score_metric(out, key, metric, part, part_frames, finite, w)
    return out


def _score_metric(out: Scores, key: str, metric: Any, sample: Sample, frames: np.ndarray, finite: bool,
                  window: Optional[FrameWindow] = None) -> None:
    """One metric's values (named through ``window`` when scored on one) into ``out``."""
    col = window.column if window is not None else (lambda n: n)
    short = window_too_short(metric, len(frames), window)
    if short:
        out.skipped.update({col(n): short for n in metric.names})
        return
    if not finite:
        out.values.update({col(n): math.nan for n in metric.names})
        return
    try:
        got, curves = metric.score_curves(sample, frames)
    except Exception as e:  # noqa: BLE001
        out.errors.append(f"metric {key}{window.suffix if window else ''}: {one_line(e)}")
        out.values.update({col(n): math.nan for n in metric.names})
        return
    for n in metric.names:
        v = got.get(n)
        if v is None:
            out.skipped[col(n)] = metric.skip_reason(n, sample)
        else:
            out.values[col(n)] = v
    if window is None:  # a window's curves would repeat the whole video's, cut
        out.curves.update(curves)
        out.notes += metric.sample_notes(sample)


def window_too_short(metric: Any, num_frames: int, window: Optional[FrameWindow]) -> Optional[str]:
    """Why ``metric`` cannot be scored on a window of ``num_frames`` frames (None: it can, or no window)."""
    need = int(getattr(metric, "min_frames", 1))
    if window is None or num_frames >= need:
        return None
    return f"{window.describe()} are {num_frames} frame(s), this metric needs at least {need}"  # no '; ' (tables split on it)


def set_metric_features(set_metrics: dict[str, Any], sample: Sample, frames: np.ndarray,
                        windows: Sequence[FrameWindow] = ()) -> dict[str, Any]:
    """The inputs of each set metric (FVD) for this sample, as the store's ``features``/``features_meta``
    arguments, and ``skipped`` (window column -> why, for windows too short for a metric); stored with the record,
    so a set metric can be computed over any union of shards or workers (experiments/merge.py). A frame window's
    features are keyed ``<key>[start:stop]``. Raises ``SetFeatureError`` naming the metric that failed."""
    features: dict[str, np.ndarray] = {}
    meta: dict[str, str] = {}
    skipped: dict[str, str] = {}
    parts = [("", None, sample, frames)] + [(w.suffix, w, *w.trim(sample, frames)) for w in windows]
    for suffix, window, s, f in parts:
        for key, metric in set_metrics.items():
            if window is not None and not window.applies(key):
                continue
            short = window_too_short(metric, len(f), window)
            if short:
                skipped.update({window.column(n): short for n in metric.names})
                continue
            try:
                features.update({f"{key}{suffix}/{n}": a for n, a in metric.sample_features(s, f).items()})
            except Exception as e:  # noqa: BLE001
                raise SetFeatureError(f"metric {key}{suffix}: {one_line(e)}") from e
            meta[key + suffix] = class_path(metric)
    return {"features": features, "features_meta": meta, "skipped": skipped}


class SetFeatureError(RuntimeError):
    """A set metric could not compute a sample's features (the message is the one line recorded)."""
