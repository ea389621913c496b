"""How far each automatic metric agrees with people: per question and metric, the share of pairs where the metric
prefers the output the human majority preferred (percentile-bootstrap interval over pairs), and Kendall's tau-b
between the metric's difference (reference minus baseline, signed so that positive = better) and the share of
votes preferring the reference, over pairs.

A pair's human majority: share of its kept votes preferring the reference (ties 1/2) above 1/2 -> reference, below
-> baseline; exactly 1/2 is no majority and the pair is left out of the agreement share (counted). A metric that
scores both sides equally on a pair prefers neither and that pair is left out for that metric (counted).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

LOWER_IS_BETTER = ("flow", "flow_plus", "fvd")  # the paper's Table 2 arrows; every other metric: higher is better


def pair_scores(kept: pd.DataFrame, trials: dict, lower_is_better: Sequence[str] = LOWER_IS_BETTER) -> pd.DataFrame:
    """One row per (pair, metric): human share of votes for the reference and the metric's signed difference."""
    share = kept.groupby("trial_id")["value"].agg(["mean", "size"])
    rows = []
    for tid, (m, n) in share.iterrows():
        t = trials[tid]
        ref, base = t["metrics"].get("reference", {}), t["metrics"].get("baseline", {})
        for metric in sorted(set(ref) & set(base)):
            sign = -1.0 if metric in lower_is_better else 1.0
            rows.append({"trial_id": tid, "question": t["question"], "baseline": t["baseline"], "metric": metric,
                         "human_share": float(m), "n_votes": int(n),
                         "metric_diff": sign * (float(ref[metric]) - float(base[metric]))})
    return pd.DataFrame(rows, columns=["trial_id", "question", "baseline", "metric", "human_share", "n_votes",
                                       "metric_diff"])


def metric_agreement_table(scores: pd.DataFrame, n_boot: int = 2000, confidence: float = 0.95,
                           seed: int = 0) -> pd.DataFrame:
    """Per question and metric: agreement with the human majority (%), its interval, Kendall's tau-b and counts."""
    from scipy.stats import kendalltau

    rng = np.random.default_rng(seed)
    rows = []
    for (q, metric), g in scores.groupby(["question", "metric"], sort=True):
        human = np.sign(g["human_share"].to_numpy() - 0.5)
        mach = np.sign(g["metric_diff"].to_numpy())
        ok = (human != 0) & (mach != 0)
        agree = (human[ok] == mach[ok]).astype(float)
        if agree.size:
            idx = rng.integers(0, agree.size, size=(n_boot, agree.size))
            draws = agree[idx].mean(1)
            lo, hi = np.quantile(draws, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
        else:
            lo = hi = np.nan
        tau, p = (kendalltau(g["metric_diff"], g["human_share"]) if len(g) >= 3 else (np.nan, np.nan))
        rows.append({"question": q, "metric": metric, "agreement_pct": 100 * agree.mean() if agree.size else np.nan,
                     "ci_low_pct": 100 * lo, "ci_high_pct": 100 * hi, "kendall_tau": float(tau),
                     "kendall_p": float(p), "n_pairs": len(g), "n_pairs_used": int(ok.sum()),
                     "n_no_majority": int((human == 0).sum()), "n_metric_ties": int((mach == 0).sum())})
    return pd.DataFrame(rows)
