"""Uncertainty and cost beside every mean: bootstrap intervals over samples, paired differences to a reference
method, and the Pareto front of quality against cost.

* ``bootstrap_interval``: the 95 % (``confidence``) interval of the mean of one group's per-sample values, by
  ``scipy.stats.bootstrap`` (Efron and Tibshirani 1993, ch. 13: percentile interval; ``BCa`` ch. 14), resampling
  samples with replacement ``n_boot`` times from ``numpy.random.default_rng(seed)``: the same table gives the same
  intervals on every machine. Fewer than two values: no interval (NaN); a NaN among them (diverged latents)
  propagates, as it does to the mean.
* ``paired_differences``: each method minus the reference method on the samples both scored, aligned by
  (dataset, sample id); the interval resamples the pairs, so the between-sample spread that both methods share
  cancels (what decides whether a difference is real). Samples only one side has, or that one side failed or
  skipped, are left out and counted.
* ``pareto_front``: the points no other point beats on both cost (lower is better) and quality.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

CI_LO, CI_HI = "_ci_lo", "_ci_hi"  # summary columns <metric>_ci_lo / <metric>_ci_hi beside each mean
INTERVAL_METHODS = ("percentile", "BCa")
PAIR_KEYS = ("dataset", "sample_id")


@dataclass(frozen=True)
class IntervalOptions:
    """How every table's intervals and paired differences are made (config section ``tables``)."""

    reference: str = "videoshop"  # paired differences: each row minus this method (or label)
    confidence: float = 0.95
    n_boot: int = 2000
    seed: int = 0
    interval: str = "percentile"  # percentile | BCa
    quality: Optional[str] = None  # the cost plot's quality metric (None: the first present of QUALITY_DEFAULTS)

    def __post_init__(self) -> None:
        if self.interval not in INTERVAL_METHODS:
            raise ValueError(f"tables.interval must be one of {INTERVAL_METHODS}, got {self.interval!r}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"tables.confidence must be in (0, 1), got {self.confidence}")
        if self.n_boot < 100:
            raise ValueError(f"tables.n_boot must be at least 100, got {self.n_boot}")

    @classmethod
    def from_dict(cls, values: Optional[dict]) -> "IntervalOptions":
        """From the ``tables`` config section (or protocol.json's ``intervals``); unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in names})

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (f"mean [{self.confidence:.0%} {self.interval} bootstrap interval over samples, {self.n_boot} "
                f"resamples, seed {self.seed}]")


def bootstrap_interval(values: Iterable[float], options: IntervalOptions = IntervalOptions()) -> tuple[float, float]:
    """(lo, hi) of the ``options.confidence`` bootstrap interval of the mean of ``values`` (see the module doc)."""
    from scipy.stats import bootstrap

    x = np.asarray(list(values), dtype=np.float64)
    if len(x) < 2 or np.isnan(x).any():
        return float("nan"), float("nan")
    if np.all(x == x[0]):  # every resample has the same mean (BCa is undefined there)
        return float(x[0]), float(x[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's degenerate-data warning: the interval is NaN then, and says so
        res = bootstrap((x,), np.mean, n_resamples=options.n_boot, confidence_level=options.confidence,
                        method=options.interval, vectorized=True, rng=np.random.default_rng(options.seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def interval_columns(values: pd.DataFrame, by: Sequence[str], columns: Sequence[str],
                     options: IntervalOptions = IntervalOptions()) -> pd.DataFrame:
    """Per group of ``by``: ``<c>_ci_lo`` and ``<c>_ci_hi`` of each column's present values (None = skipped, left
    out; NaN = diverged, propagates), indexed like ``groupby(by)``."""
    rows = {}
    for key, g in values.groupby(list(by), sort=False, dropna=False):
        row = {}
        for c in columns:
            row[c + CI_LO], row[c + CI_HI] = bootstrap_interval(present(g[c]), options)
        rows[key if len(by) > 1 else (key[0] if isinstance(key, tuple) else key)] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    if len(by) > 1:
        out.index = pd.MultiIndex.from_tuples(out.index, names=list(by))
    else:
        out.index.name = by[0]
    return out


def present(s: pd.Series) -> list[float]:
    """The values of ``s`` that exist (None = skipped); NaN kept."""
    return [float(v) for v in s if v is not None]


def is_interval_column(name: str) -> bool:
    return str(name).endswith((CI_LO, CI_HI))


# ------------------------------------------------------------------------------------------ paired differences
def reference_label(df: pd.DataFrame, reference: str) -> Optional[str]:
    """The label the other rows are compared with: the label ``reference`` itself, else the first label whose
    method is ``reference`` (preferring one that overrides nothing, e.g. the default beside a threshold sweep)."""
    labels = list(dict.fromkeys(df["label"]))
    if reference in labels:
        return reference
    if "method" not in df.columns:
        return None
    cands = list(dict.fromkeys(df.loc[df["method"] == reference, "label"]))
    if not cands:
        return None
    plain = [lab for lab in cands if "overrides" in df.columns
             and set(df.loc[df["label"] == lab, "overrides"].fillna("{}")) <= {"{}", ""}]
    return (plain or cands)[0]


def paired_differences(df: pd.DataFrame, metrics: Sequence[str], skipped: pd.Series,
                       options: IntervalOptions = IntervalOptions()) -> pd.DataFrame:
    """One row per label other than the reference: for each metric, the mean of (label - reference) over the
    samples both scored, its interval (``<m>_ci_lo``/``_ci_hi``) and its pair count ``<m>_n``; ``n_paired`` counts
    the samples both edited successfully, ``n_unpaired`` those only one side has (missing, failed). Empty when
    the table has no reference row or no other label.

    ``df``: the per-sample results (records_to_frame); ``skipped``: its per-sample skipped text (metric: reason).
    """
    ref = reference_label(df, options.reference)
    if ref is None or df["label"].nunique() < 2:
        return pd.DataFrame()
    keys = [k for k in PAIR_KEYS if k in df.columns]
    ok = df[df["status"] == "ok"].copy()
    for m in metrics:  # a skipped value is no value (None: left out of the pair); a NaN (diverged) stays
        gone = skipped.loc[ok.index].map(lambda s, m=m: _skips(s, m))
        ok[m] = ok[m].astype(object).where(~gone, None)
    refs = ok[ok["label"] == ref].drop_duplicates(keys).set_index(keys)
    all_ids = lambda lab: set(map(tuple, df.loc[df["label"] == lab, keys].itertuples(index=False)))  # noqa: E731
    rows = []
    for label in dict.fromkeys(df["label"]):
        if label == ref:
            continue
        mine = ok[ok["label"] == label].drop_duplicates(keys).set_index(keys)
        shared = mine.index.intersection(refs.index)
        row = {"label": label, "reference": ref, "n_paired": len(shared),
               "n_unpaired": len(all_ids(label) ^ all_ids(ref)) + (len(all_ids(label) & all_ids(ref)) - len(shared))}
        if "method" in mine.columns and len(mine):
            row["method"] = mine["method"].iloc[0]
        for m in metrics:
            d = np.array([float(x) - float(y) for x, y in zip(mine.loc[shared, m], refs.loc[shared, m])
                          if x is not None and y is not None])
            row[m] = float(d.mean()) if len(d) else float("nan")
            row[m + CI_LO], row[m + CI_HI] = bootstrap_interval(d, options)
            row[m + "_n"] = int(len(d))
        rows.append(row)
    return pd.DataFrame(rows)


def _skips(skipped: str, metric: str) -> bool:
    return any(part.split(": ", 1)[0] == metric for part in str(skipped or "").split("; ") if part)


# ------------------------------------------------------------------------------------------------ Pareto front
def pareto_front(cost: Sequence[float], quality: Sequence[float], higher_is_better: bool = True) -> np.ndarray:
    """Boolean mask of the points on the Pareto front: no other point has lower-or-equal cost and better-or-equal
    quality with at least one of the two strictly better. Points with a NaN coordinate are never on it."""
    c = np.asarray(cost, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64) * (1.0 if higher_is_better else -1.0)
    ok = np.isfinite(c) & np.isfinite(q)
    front = ok.copy()
    for i in np.flatnonzero(ok):
        others = ok & (c <= c[i]) & (q >= q[i]) & ((c < c[i]) | (q > q[i]))
        front[i] = not others.any()
    return front
