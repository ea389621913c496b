"""Table 4's left half from the votes: preference for the reference per baseline and question, with intervals.

Rules, each stated in the outputs:
- A vote counts 1 for the reference, 0 for the baseline; a tie counts 1/2 (``tie_rule="half"``) or is left out
  (``tie_rule="exclude"``).
- A rater who answered attention checks and failed (chose the decoy or a tie) more than ``max_check_failure_rate``
  of them is excluded entirely; raters without checks (imported votes) are kept and counted apart.
- The 95 % interval is a percentile bootstrap over raters *and* pairs (crossed: each draw resamples raters with
  replacement and pairs with replacement, independently, and weighs each vote by the product of its rater's and its
  pair's multiplicity; Brennan 2001, "(r, p) bootstrap" for two-facet designs). The Average row is the mean of the
  baselines' shares (as the paper's Average), bootstrapped on the same draws.
- Inter-rater agreement: Krippendorff's alpha (nominal: reference / baseline / tie) over pairs, from the
  ``krippendorff`` package.
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np
import pandas as pd

TIE_RULES = ("half", "exclude")


def vote_value(preferred: pd.Series, tie_rule: str = "half") -> pd.Series:
    """1 for the reference, 0 for the baseline, 1/2 or NaN (left out) for a tie."""
    if tie_rule not in TIE_RULES:
        raise ValueError(f"study.analysis.tie_rule={tie_rule}: must be half or exclude")
    tie = 0.5 if tie_rule == "half" else np.nan
    return preferred.map({"reference": 1.0, "baseline": 0.0, "tie": tie}).astype(float)


def rater_checks(votes: pd.DataFrame, max_check_failure_rate: float = 0.25) -> pd.DataFrame:
    """Per rater: checks answered and failed, and whether the rater is excluded (failure rate above the bound)."""
    raters = pd.DataFrame({"rater_id": pd.unique(votes["rater_id"])})
    checks = votes[votes["check"].fillna("") != ""]
    n = checks.groupby("rater_id").size()
    failed = checks[checks["preferred"] != "reference"].groupby("rater_id").size()
    raters["checks"] = raters["rater_id"].map(n).fillna(0).astype(int)
    raters["checks_failed"] = raters["rater_id"].map(failed).fillna(0).astype(int)
    rate = raters["checks_failed"] / raters["checks"].where(raters["checks"] > 0)
    raters["excluded"] = (rate > max_check_failure_rate).fillna(False).astype(bool)
    raters["votes"] = raters["rater_id"].map(votes.groupby("rater_id").size()).astype(int)
    return raters


def kept_pair_votes(votes: pd.DataFrame, raters: pd.DataFrame, tie_rule: str = "half") -> pd.DataFrame:
    """The pair votes (no checks) of the raters who are not excluded, with their value; ties per the rule."""
    keep = set(raters.loc[~raters["excluded"], "rater_id"])
    v = votes[(votes["check"].fillna("") == "") & votes["rater_id"].isin(keep)].copy()
    v["value"] = vote_value(v["preferred"], tie_rule)
    return v[v["value"].notna()]


def crossed_bootstrap(votes: pd.DataFrame, groups: Sequence, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap draws (n_boot x len(groups)) of each group's mean vote value, resampling raters and pairs.

    ``votes``: columns rater_id, trial_id, value, group. One draw: rater weights w_r and pair weights w_p (multinomial
    counts, i.e. sampling with replacement); a group's share is sum w_r w_p v / sum w_r w_p over its votes.
    """
    r_codes, r_idx = np.unique(votes["rater_id"], return_inverse=True)
    p_codes, p_idx = np.unique(votes["trial_id"], return_inverse=True)
    S = np.zeros((len(r_codes), len(p_codes)))
    N = np.zeros_like(S)
    np.add.at(S, (r_idx, p_idx), votes["value"].to_numpy(float))
    np.add.at(N, (r_idx, p_idx), 1.0)
    pair_group = pd.Series(votes["group"].to_numpy(), index=p_idx).groupby(level=0).first().sort_index()
    Wr = rng.multinomial(len(r_codes), np.full(len(r_codes), 1 / len(r_codes)), size=n_boot).astype(float)
    Wp = rng.multinomial(len(p_codes), np.full(len(p_codes), 1 / len(p_codes)), size=n_boot).astype(float)
    WrS, WrN = Wr @ S, Wr @ N  # (B x P)
    out = np.full((n_boot, len(groups)), np.nan)
    for j, g in enumerate(groups):
        m = (pair_group.to_numpy() == g).astype(float)
        num, den = (WrS * Wp * m).sum(1), (WrN * Wp * m).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, j] = np.where(den > 0, num / den, np.nan)
    return out


def percentile_interval(draws: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    a = (1 - confidence) / 2
    return np.nanquantile(draws, a, axis=0), np.nanquantile(draws, 1 - a, axis=0)


def paper_row(label: str) -> Optional[str]:
    """The paper's Table 4 row for a method label (``bdia`` -> ``BDIA``; sweep labels use their method)."""
    from videoshop_bench.experiments.methods import paper_row_names

    return paper_row_names().get(str(label).split("[")[0])


def preference_table(kept: pd.DataFrame, baselines: Sequence[str], questions: Sequence[str], n_boot: int = 2000,
                     confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Long table: per question, one row per baseline plus ``Average`` (the mean over the baselines the paper
    reports, as its Average row) and, when the study has others, ``Average (all baselines)``: the share (%)
    preferring the reference, its interval, counts, and the paper's number with the difference."""
    from videoshop_bench.experiments.paper import paper_table

    paper = paper_table("table4").set_index("baseline")
    order = list(paper.index)
    baselines = sorted(baselines, key=lambda b: order.index(paper_row(b)) if paper_row(b) in order else len(order))
    rng = np.random.default_rng(seed)
    rows = []
    for q in questions:
        v = kept[kept["question"] == q].assign(group=lambda d: d["baseline"])
        present = [b for b in baselines if (v["baseline"] == b).any()]
        draws = crossed_bootstrap(v, present, n_boot, rng) if present else np.empty((n_boot, 0))
        lo, hi = percentile_interval(draws, confidence) if present else ([], [])
        col = f"{q}_pref_for_videoshop_pct"
        for b in baselines:
            mine = v[v["baseline"] == b]
            name = paper_row(b)
            theirs = float(paper.loc[name, col]) if name in paper.index and col in paper.columns else np.nan
            share = 100 * mine["value"].mean() if len(mine) else np.nan
            k = present.index(b) if b in present else None
            rows.append({"question": q, "baseline": name or b, "label": b, "pref_reference_pct": share,
                         "ci_low_pct": 100 * lo[k] if k is not None else np.nan,
                         "ci_high_pct": 100 * hi[k] if k is not None else np.nan,
                         "paper_pct": theirs, "ours_minus_paper": share - theirs,
                         "n_votes": len(mine), "n_ties": int((mine["preferred"] == "tie").sum()),
                         "n_pairs": mine["trial_id"].nunique(), "n_raters": mine["rater_id"].nunique()})
        in_paper = [b for b in present if paper_row(b) in paper.index]
        theirs = float(paper.loc["Average", col]) if "Average" in paper.index and col in paper.columns else np.nan
        if in_paper:  # the paper's Average: the mean over its baselines (here those the study has)
            rows.append(_average_row(q, v, draws, present, in_paper, "Average", theirs, confidence))
        if len(in_paper) < len(present):
            rows.append(_average_row(q, v, draws, present, present, "Average (all baselines)", np.nan, confidence))
    return pd.DataFrame(rows)


def nominal_alpha(reliability: np.ndarray) -> float:
    """Krippendorff's alpha, nominal level, of a raters x units matrix (NaN: no value), from the ``krippendorff``
    package (Krippendorff 2011, "Computing Krippendorff's alpha-reliability")."""
    import krippendorff

    return float(krippendorff.alpha(reliability_data=np.asarray(reliability, float), level_of_measurement="nominal"))


def _average_row(q: str, v: pd.DataFrame, draws: np.ndarray, present: list, subset: list, name: str,
                 theirs: float, confidence: float) -> dict:
    """Mean of the ``subset`` baselines' shares, its interval from the same bootstrap draws, counts."""
    idx = [present.index(b) for b in subset]
    mine = v[v["baseline"].isin(subset)]
    share = 100 * float(np.mean([v.loc[v["baseline"] == b, "value"].mean() for b in subset]))
    with warnings.catch_warnings():  # a draw that holds no vote of a baseline: that baseline is left out of it
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = percentile_interval(np.nanmean(draws[:, idx], axis=1)[:, None], confidence)
    return {"question": q, "baseline": name, "label": "mean of " + ", ".join(subset), "pref_reference_pct": share,
            "ci_low_pct": 100 * float(lo[0]), "ci_high_pct": 100 * float(hi[0]), "paper_pct": theirs,
            "ours_minus_paper": share - theirs, "n_votes": len(mine), "n_ties": int((mine["preferred"] == "tie").sum()),
            "n_pairs": mine["trial_id"].nunique(), "n_raters": mine["rater_id"].nunique()}


def krippendorff_alpha(kept: pd.DataFrame) -> float:
    """Krippendorff's alpha (nominal) of the votes: raters x pairs, values reference / baseline / tie; NaN when
    no pair has two votes or all votes are the same."""
    codes = kept["preferred"].map({"baseline": 0.0, "reference": 1.0, "tie": 2.0})
    table = pd.DataFrame({"r": kept["rater_id"], "u": kept["trial_id"], "c": codes}).pivot_table(
        index="r", columns="u", values="c", aggfunc="first")
    if table.shape[1] < 2 or (table.notna().sum(0) >= 2).sum() < 1 or len(np.unique(codes)) < 2:
        return float("nan")
    return nominal_alpha(table.to_numpy(float))


def agreement_table(kept: pd.DataFrame, questions: Sequence[str]) -> pd.DataFrame:
    """Per question (and all together): Krippendorff's alpha and how many pairs have two or more votes."""
    rows = []
    for q in list(questions) + ["all"]:
        v = kept if q == "all" else kept[kept["question"] == q]
        per_pair = v.groupby("trial_id").size()
        rows.append({"question": q, "krippendorff_alpha_nominal": krippendorff_alpha(v), "n_votes": len(v),
                     "n_pairs_with_2plus_votes": int((per_pair >= 2).sum()), "n_raters": v["rater_id"].nunique()})
    return pd.DataFrame(rows)
