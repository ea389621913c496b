"""Uncertainty and cost in the tables: bootstrap intervals (against numpy with the same seed, and their coverage on
synthetic data), paired differences aligned by sample id, the Pareto front, and the tables that carry them."""

import json

import numpy as np
import pandas as pd
import pytest

from videoshop_bench.experiments.tables import metric_columns, records_to_frame, summarize, with_intervals, write_tables
from videoshop_bench.experiments.uncertainty import (CI_HI, CI_LO, IntervalOptions, bootstrap_interval, paired_differences,
                                     pareto_front, reference_label)


def numpy_percentile_bootstrap(x, n_boot, seed, confidence=0.95):
    """Independent computation: resample indices with numpy's generator, percentile of the resampled means."""
    x = np.asarray(x, float)
    idx = np.random.default_rng(seed).integers(0, len(x), (n_boot, len(x)))
    a = (1 - confidence) / 2
    return tuple(np.percentile(x[idx].mean(axis=1), [100 * a, 100 * (1 - a)]))


def test_bootstrap_interval_equals_numpy_with_the_same_seed_and_is_reproducible():
    x = np.random.default_rng(5).normal(3.0, 2.0, size=23)
    for seed, n_boot, conf in ((0, 2000, 0.95), (7, 500, 0.9)):
        opts = IntervalOptions(seed=seed, n_boot=n_boot, confidence=conf)
        got = bootstrap_interval(x, opts)
        assert got == pytest.approx(numpy_percentile_bootstrap(x, n_boot, seed, conf), abs=1e-12)
        assert bootstrap_interval(x, opts) == got  # same seed, same interval
    assert bootstrap_interval(x, IntervalOptions(seed=1)) != bootstrap_interval(x, IntervalOptions(seed=2))


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    for method in ("percentile", "BCa"):
        hits = 0
        for i in range(200):
            x = rng.exponential(1.0, size=40)  # skewed, true mean 1
            lo, hi = bootstrap_interval(x, IntervalOptions(seed=i, n_boot=500, interval=method))
            hits += lo <= 1.0 <= hi
        assert 0.86 <= hits / 200 <= 0.99, (method, hits)


def test_bootstrap_interval_edge_cases():
    assert all(np.isnan(bootstrap_interval([1.0])))  # one value: no interval
    assert bootstrap_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert all(np.isnan(bootstrap_interval([1.0, np.nan, 3.0])))  # a diverged sample propagates, as in the mean
    with pytest.raises(ValueError, match="tables.interval"):
        IntervalOptions(interval="normal")


def _rec(label, sid, value, method=None, status="ok", skipped=None, dataset="d", seconds=1.0, overrides=None):
    return dict(label=label, method=method or label, sample_id=sid, dataset=dataset, status=status, finite=True,
                edit_type="x", seconds=seconds, nfe=10, metrics={} if value is None else {"m": value},
                skipped=skipped or {}, overrides=overrides or {})


def test_paired_differences_align_by_sample_id_and_count_the_samples_left_out():
    ref = {f"s{i}": float(i) for i in range(6)}
    recs = [_rec("videoshop", s, v) for s, v in ref.items() if s != "s5"]  # s5: the reference lacks it
    other = {"s3": 13.0, "s0": 10.5, "s2": 12.5, "s1": 11.0, "s5": 99.0, "s4": None}  # shuffled order
    for s, v in other.items():
        recs.append(_rec("fast", s, v, skipped={"m": "no ground truth"} if v is None else None))
    recs.append(_rec("fast", "s6", 1.0, status="failed"))  # failed: no pair, counted
    df = records_to_frame(recs)
    paired = paired_differences(df, ["m"], df["skipped"], IntervalOptions())
    row = paired.set_index("label").loc["fast"]
    diffs = [10.5 - 0, 11 - 1, 12.5 - 2, 13 - 3]  # s4 skipped by "fast": out of the metric's pairs
    assert row["m"] == pytest.approx(np.mean(diffs)) and row["m_n"] == 4
    assert row["n_paired"] == 5  # s0..s4 edited by both
    assert row["n_unpaired"] == 2  # s5 (reference missing) and s6 (failed)
    assert (row["m" + CI_LO], row["m" + CI_HI]) == pytest.approx(numpy_percentile_bootstrap(diffs, 2000, 0))
    assert row["reference"] == "videoshop"


def test_paired_differences_across_datasets_never_pair_equal_ids_of_different_datasets():
    recs = [_rec("videoshop", "a", 1.0, dataset="d1"), _rec("videoshop", "a", 5.0, dataset="d2"),
            _rec("other", "a", 2.0, dataset="d1"), _rec("other", "a", 9.0, dataset="d2")]
    paired = paired_differences(records_to_frame(recs), ["m"], pd.Series("", index=range(4)))
    assert paired["m"].iloc[0] == pytest.approx(((2 - 1) + (9 - 5)) / 2)


def test_reference_is_a_label_or_a_method_preferring_the_row_without_overrides():
    recs = [_rec("videoshop/threshold=2", "a", 1.0, method="videoshop", overrides={"method.threshold": 2}),
            _rec("videoshop", "a", 1.0), _rec("bdia", "a", 1.0)]
    df = records_to_frame(recs)
    assert reference_label(df, "videoshop") == "videoshop"
    assert reference_label(df.iloc[[0, 2]], "videoshop") == "videoshop/threshold=2"
    assert reference_label(df, "bdia") == "bdia" and reference_label(df, "rave") is None
    assert paired_differences(df.iloc[[2]], ["m"], df["skipped"].iloc[[2]]).empty  # one label: nothing to pair


def test_pareto_front_of_a_hand_made_set():
    cost = [1.0, 2.0, 3.0, 2.5, 4.0, np.nan, 1.0]
    quality = [10.0, 12.0, 11.0, 14.0, 14.0, 99.0, 9.0]
    # (1,10) cheapest; (2,12) better than anything at its cost; (3,11) beaten by (2,12); (2.5,14) best quality;
    # (4,14) ties (2.5,14) at a higher cost; the NaN point is never on it; (1,9) loses to (1,10) at equal cost
    assert pareto_front(cost, quality).tolist() == [True, True, False, True, False, False, False]
    # lower is better (e.g. a flow error): the front is the cheap, low points
    assert pareto_front([1, 2, 3], [5.0, 4.0, 6.0], higher_is_better=False).tolist() == [True, True, False]


def test_summary_carries_intervals_that_markdown_shows_as_mean_lo_hi(tmp_path):
    rng = np.random.default_rng(1)
    recs = [_rec(lab, f"s{i}", float(rng.normal(mu, 1)), seconds=float(rng.uniform(1, 2)))
            for lab, mu in (("videoshop", 10), ("fast", 12)) for i in range(10)]
    df = records_to_frame(recs)
    s = summarize(df).set_index("label")
    vals = df[df["label"] == "fast"]["m"]
    assert (s.loc["fast", "m" + CI_LO], s.loc["fast", "m" + CI_HI]) == pytest.approx(
        numpy_percentile_bootstrap(vals, 2000, 0))
    assert "seconds" + CI_LO in s.columns and "m" + CI_LO not in metric_columns(s.reset_index())
    assert summarize(df, intervals=None).filter(like=CI_LO).empty
    shown = with_intervals(s.reset_index())
    assert shown.loc[1, "m"] == f"{s.loc['fast', 'm']:.2f} [{s.loc['fast', 'm_ci_lo']:.2f}, {s.loc['fast', 'm_ci_hi']:.2f}]"
    tables = write_tables(df, tmp_path, {"m": "a test metric", "higher_is_better": {"m": True}},
                          intervals=IntervalOptions(n_boot=500))
    csv = pd.read_csv(tmp_path / "summary.csv")
    assert pd.api.types.is_float_dtype(csv["m"]) and pd.api.types.is_float_dtype(csv["m_ci_lo"])  # numeric CSVs
    assert json.loads(csv["protocol"][0])["intervals"]["n_boot"] == 500
    md = (tmp_path / "summary.md").read_text()
    assert "Paired differences: each method minus videoshop" in md and "- m (higher is better): a test metric" in md
    assert "500 resamples" in md and (tmp_path / "paired.csv").is_file()
    assert tables["paired"]["m"].iloc[0] == pytest.approx(vals.mean() - df[df["label"] == "videoshop"]["m"].mean())


def test_the_paper_comparison_shows_our_interval_beside_the_papers_number():
    from videoshop_bench.experiments.paper import paper_comparison_table

    summary = pd.DataFrame({"label": ["videoshop"], "method": ["videoshop"], "n": [5], "clip_tgt": [90.0],
                            "clip_tgt_ci_lo": [87.5], "clip_tgt_ci_hi": [91.25], "seconds": [10.0], "nfe": [26]})
    t = paper_comparison_table(summary, "table2").set_index("method")
    assert t.loc["Videoshop", "clip_tgt"] == "90.00 [87.50, 91.25] / 88.80 / +1.20"


def test_cost_plot_marks_the_front_and_skips_a_table_without_any_quality_value(tmp_path):
    from videoshop_bench.experiments.plots import quality_metric, write_cost_plot

    summary = pd.DataFrame({"label": ["a", "b", "c"], "clip_tgt": [80.0, 90.0, 85.0], "seconds": [1.0, 2.0, 3.0],
                            "nfe": [10, 20, 30], "fvd_warning": ["few videos"] * 3})
    assert quality_metric(summary) == "clip_tgt" and quality_metric(summary, "seconds") == "seconds"
    with pytest.raises(ValueError, match="tables.quality=nope"):
        quality_metric(summary, "nope")
    path = write_cost_plot(summary, tmp_path, {"higher_is_better": {"clip_tgt": True}})
    assert path == tmp_path / "quality_vs_cost.png" and path.stat().st_size > 1000
    diverged = summary.assign(clip_tgt=np.nan)  # every sample diverged: no quality to plot, no text column instead
    assert quality_metric(diverged) is None and write_cost_plot(diverged, tmp_path / "x") is None
