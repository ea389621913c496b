"""Study analysis: Table 4's left half on a fixed vote table against hand-computed values, interval coverage on
simulated raters with a known preference, Krippendorff's alpha on the textbook example, metrics against people."""

import numpy as np
import pandas as pd
import pytest

from videoshop_bench.experiments.study.analysis import (crossed_bootstrap, kept_pair_votes, nominal_alpha, percentile_interval,
                                        rater_checks)
from videoshop_bench.experiments.study.assignment import spread_pairs
from videoshop_bench.experiments.study.report import analyze_study

Q = {"editing_quality": {"title": "E", "text": "e?"}, "video_quality": {"title": "V", "text": "v?"}}


def _trial(tid, q, b, ref_m=None, base_m=None, check=None):
    return {"id": tid, "question": q, "sample_id": f"s{tid}", "dataset": "synthetic", "reference": "videoshop",
            "baseline": b, "check": check, "metrics": {"reference": ref_m or {}, "baseline": base_m or {}},
            "videos": {}, "source": "", "first_frame": ""}


MANIFEST = {
    "name": "fixed", "reference": "videoshop", "baselines": ["rave", "bdia"], "questions": Q,
    "settings": {"raters_per_pair": 2},
    "trials": [_trial("p1", "editing_quality", "bdia", {"clip_tgt": 90, "flow": 1.0}, {"clip_tgt": 80, "flow": 2.0}),
               _trial("p2", "editing_quality", "bdia", {"clip_tgt": 70, "flow": 3.0}, {"clip_tgt": 75, "flow": 1.0}),
               _trial("p3", "video_quality", "bdia", {"clip_tgt": 60, "flow": 1.0}, {"clip_tgt": 50, "flow": 2.0}),
               _trial("p4", "editing_quality", "rave", {"clip_tgt": 60, "flow": 1.0}, {"clip_tgt": 50, "flow": 2.0}),
               _trial("c1", "editing_quality", None, check="unedited_source"),
               _trial("c2", "video_quality", None, check="shuffled_frames")],
}
VOTES = [("r1", "p1", "reference"), ("r1", "p2", "reference"), ("r2", "p1", "baseline"), ("r2", "p2", "tie"),
         ("r1", "p3", "baseline"), ("r2", "p3", "baseline"), ("r1", "p4", "reference"), ("r1", "c1", "reference"),
         ("r3", "p1", "reference"), ("r3", "p4", "reference"), ("r3", "c1", "baseline"), ("r3", "c2", "tie"),
         ("r4", "p4", "baseline"), ("r4", "c1", "reference"), ("r4", "c2", "baseline")]


def _votes(rows=VOTES):
    return [{"rater_id": r, "trial_id": t, "preferred": p, "left": None, "choice": None, "response_ms": None,
             "source": "import", "created_at": ""} for r, t, p in rows]


def test_table4_on_a_fixed_vote_table_equals_hand_computed_values(tmp_path):
    t = analyze_study(tmp_path, MANIFEST, _votes(), tie_rule="half", max_check_failure_rate=0.5, n_boot=200)
    raters = t["raters"].set_index("rater_id")
    # r3 failed 2 of 2 checks (decoy, tie): excluded; r4 failed 1 of 2 = 50%: kept (rule: more than 50%); r2: none
    assert raters["excluded"].to_dict() == {"r1": False, "r2": False, "r3": True, "r4": False}
    assert raters.loc["r4", "checks_failed"] == 1 and raters.loc["r2", "checks"] == 0
    t4 = t["table4_human"].set_index(["question", "baseline"])["pref_reference_pct"]
    # BDIA, editing: r1 p1=1, r1 p2=1, r2 p1=0, r2 p2=tie=1/2 -> 2.5 / 4
    assert t4[("editing_quality", "BDIA")] == pytest.approx(62.5)
    assert t4[("editing_quality", "RAVE")] == pytest.approx(50.0)  # r1 ref, r4 baseline (r3 excluded)
    assert t4[("video_quality", "BDIA")] == pytest.approx(0.0)
    assert t4[("editing_quality", "Average")] == pytest.approx((62.5 + 50.0) / 2)  # mean of the baselines
    row = t["table4_human"].set_index(["question", "baseline"]).loc[("editing_quality", "BDIA")]
    assert row["paper_pct"] == pytest.approx(94.89) and row["ours_minus_paper"] == pytest.approx(62.5 - 94.89)
    assert (row["n_votes"], row["n_ties"], row["n_pairs"], row["n_raters"]) == (4, 1, 2, 2)
    assert row["ci_low_pct"] <= 62.5 <= row["ci_high_pct"]
    order = list(t["table4_human"].query("question == 'editing_quality'")["baseline"])
    assert order == ["BDIA", "RAVE", "Average"]  # the paper's row order
    t2 = analyze_study(tmp_path, MANIFEST, _votes(), tie_rule="exclude", max_check_failure_rate=0.5, n_boot=50)
    assert t2["table4_human"].set_index(["question", "baseline"]).loc[("editing_quality", "BDIA"),
                                                                     "pref_reference_pct"] == pytest.approx(200 / 3)
    strict = analyze_study(tmp_path, MANIFEST, _votes(), max_check_failure_rate=0.25, n_boot=50)["raters"]
    assert strict.set_index("rater_id")["excluded"]["r4"]
    by_hand = analyze_study(tmp_path, MANIFEST, _votes(), max_check_failure_rate=0.5, n_boot=50, exclude_raters=["r2"])
    assert by_hand["table4_human"].set_index(["question", "baseline"]).loc[("editing_quality", "BDIA"),
                                                                         "pref_reference_pct"] == pytest.approx(100.0)
    for f in ("table4_human.csv", "table4_human.md", "table4_human.png", "metrics_vs_people.csv", "agreement.csv",
              "raters.csv", "votes.csv", "analysis.json", "report.html"):
        assert (tmp_path / f).is_file(), f


def test_krippendorff_alpha_of_the_fixed_votes_by_hand(tmp_path):
    # editing, kept: p1 {ref, base}, p2 {ref, tie}, p4 {ref, base}: coincidences o_rb = o_br = 2, o_rt = o_tr = 1;
    # n = 6, n_ref = 3, n_base = 2, n_tie = 1; D_o = 6/6; D_e = (36 - 9 - 4 - 1) / (6 * 5) = 22/30; alpha = 1 - 30/22
    agree = analyze_study(tmp_path, MANIFEST, _votes(), max_check_failure_rate=0.5, n_boot=20)["agreement"]
    assert agree.set_index("question").loc["editing_quality", "krippendorff_alpha_nominal"] == pytest.approx(1 - 30 / 22)


def test_krippendorff_alpha_on_the_textbook_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: 4 observers, 12 units,
    # nominal alpha = 0.743
    n = np.nan
    data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
            [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]]
    assert nominal_alpha(np.array(data)) == pytest.approx(0.743, abs=5e-4)


def test_metric_agreement_by_hand(tmp_path):
    ma = analyze_study(tmp_path, MANIFEST, _votes(), max_check_failure_rate=0.5, n_boot=50)["metrics_vs_people"]
    e = ma[ma["question"] == "editing_quality"].set_index("metric")
    # human majority: p1 1/2 (r1 ref, r2 base): no majority; p2 (1 + 1/2)/2 = 3/4 ref; p4 1/2: no majority
    # clip_tgt (higher better) prefers ref on p1, p4, baseline on p2 -> disagrees on the one decided pair
    assert e.loc["clip_tgt", "n_pairs_used"] == 1 and e.loc["clip_tgt", "agreement_pct"] == 0.0
    assert e.loc["clip_tgt", "n_no_majority"] == 2
    # flow (lower better) prefers baseline on p2 -> also disagrees
    assert e.loc["flow", "agreement_pct"] == 0.0
    v = ma[ma["question"] == "video_quality"].set_index("metric")
    assert v.loc["clip_tgt", "agreement_pct"] == 0.0 and v.loc["flow", "agreement_pct"] == 0.0  # p3: both ref, people base


def test_crossed_bootstrap_interval_covers_the_true_share_of_simulated_raters():
    """Raters prefer the reference with a known population share: logit P = a + u_rater + v_pair. 95% intervals
    from 150 simulated studies (30 raters, 40 pairs, 3 raters per pair) cover the truth about 95% of the time."""
    rng = np.random.default_rng(0)
    a, su, sv = 1.0, 0.6, 1.0
    z = rng.normal(size=(400000, 2))
    truth = np.mean(1 / (1 + np.exp(-(a + su * z[:, 0] + sv * z[:, 1]))))
    covered, widths = [], []
    for s in range(150):
        u, v = rng.normal(0, su, 30), rng.normal(0, sv, 40)
        slots = spread_pairs(list(range(40)), 3, 4, rng)
        rows = [(r, p) for r, slot in enumerate(slots) for p in slot]
        r_i, p_i = np.array(rows).T
        prob = 1 / (1 + np.exp(-(a + u[r_i] + v[p_i])))
        votes = pd.DataFrame({"rater_id": r_i, "trial_id": p_i, "group": "g",
                              "value": (rng.random(len(rows)) < prob).astype(float)})
        lo, hi = percentile_interval(crossed_bootstrap(votes, ["g"], 400, rng))
        covered.append(lo[0] <= truth <= hi[0])
        widths.append(hi[0] - lo[0])
    assert 0.88 <= np.mean(covered) <= 0.995, np.mean(covered)
    naive = 2 * 1.96 * np.sqrt(truth * (1 - truth) / 120)  # binomial interval of 120 independent votes
    assert naive < np.mean(widths) < 0.4  # wider: votes of one rater or one pair are not independent


def test_exclusion_rule_and_kept_votes():
    df = pd.DataFrame([{"rater_id": r, "trial_id": t, "preferred": p, "check": "x" if t.startswith("c") else ""}
                       for r, t, p in VOTES])
    raters = rater_checks(df, 0.5)
    kept = kept_pair_votes(df, raters, "half")
    assert "r3" not in set(kept["rater_id"]) and not kept["trial_id"].str.startswith("c").any()
    assert len(kept) == 8


def test_average_is_over_the_papers_baselines_and_all_baselines_follow():
    from videoshop_bench.experiments.study.analysis import preference_table

    kept = pd.DataFrame([{"rater_id": "r1", "trial_id": t, "question": "editing_quality", "baseline": b,
                          "preferred": "reference" if v else "baseline", "value": float(v)}
                         for t, b, v in [("p1", "bdia", 1), ("p2", "rave", 0), ("p3", "svd_no_source", 0)]])
    t4 = preference_table(kept, ["svd_no_source", "rave", "bdia"], ["editing_quality"], n_boot=50)
    assert list(t4["baseline"]) == ["BDIA", "RAVE", "SVD (no src. vid.)", "Average", "Average (all baselines)"]
    rows = t4.set_index("baseline")
    assert rows.loc["Average", "pref_reference_pct"] == 50.0 and rows.loc["Average", "paper_pct"] == pytest.approx(96.93)
    assert rows.loc["Average (all baselines)", "pref_reference_pct"] == pytest.approx(100 / 3)
    assert np.isnan(rows.loc["Average (all baselines)", "paper_pct"])
