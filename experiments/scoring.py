"""Scoring one edited sample: every per-sample metric's values, the metrics it could not compute (with why), and
each set metric's per-sample inputs (I3D features for FVD), all returned, none kept aside on an object."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from videoshop_bench.datasets.schema import Sample

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


def score_sample(metrics: dict[str, Any], sample: Sample, frames: np.ndarray, finite: bool) -> Scores:
    """Every per-sample metric of ``metrics`` on ``frames`` (the edit at the sample's size)."""
    out = Scores()
    for key, metric in metrics.items():
        if not metric.per_sample:
            continue
        if not finite:
            out.values.update({n: math.nan for n in metric.names})
            continue
        try:
            got, curves = metric.score_curves(sample, frames)
        except Exception as e:  # noqa: BLE001
            out.errors.append(f"metric {key}: {one_line(e)}")
            out.values.update({n: math.nan for n in metric.names})
            continue
        for n in metric.names:
            v = got.get(n)
            if v is None:
                out.skipped[n] = metric.skip_reason(n, sample)
            else:
                out.values[n] = v
        out.curves.update(curves)
        out.notes += metric.sample_notes(sample)
    return out


def set_metric_features(set_metrics: dict[str, Any], sample: Sample, frames: np.ndarray) -> dict[str, Any]:
    """The inputs of each set metric (FVD) for this sample, as the store's ``features``/``features_meta``
    arguments; stored with the record, so a set metric can be computed over any union of shards or workers
    (experiments/merge.py). Raises ``SetFeatureError`` naming the metric that failed."""
    features: dict[str, np.ndarray] = {}
    meta: dict[str, str] = {}
    for key, metric in set_metrics.items():
        try:
            features.update({f"{key}/{n}": a for n, a in metric.sample_features(sample, frames).items()})
        except Exception as e:  # noqa: BLE001
            raise SetFeatureError(f"metric {key}: {one_line(e)}") from e
        meta[key] = class_path(metric)
    return {"features": features, "features_meta": meta}


class SetFeatureError(RuntimeError):
    """A set metric could not compute a sample's features (the message is the one line recorded)."""
