"""The paper's transcribed tables beside reproduced numbers (experiments/paper.py)."""

import math

import pandas as pd
import pytest

from videoshop_bench.experiments.paper import compare_with_paper, paper_table, runtime_ratios


def test_paper_tables_match_the_shared_csvs():
    from pathlib import Path

    shared = Path(__file__).resolve().parents[2] / "shared" / "paper"
    if not shared.is_dir():
        pytest.skip("no ../shared/paper next to the checkout")
    for name, f in [("table2", "table2_magicbrush.csv"), ("table4", "table4_human_eval_runtime.csv"),
                    ("table5", "table5_ablation_10videos.csv")]:
        pd.testing.assert_frame_equal(paper_table(name), pd.read_csv(shared / f))


def test_runtime_ratios_divide_by_videoshop_and_quote_the_paper():
    summary = pd.DataFrame({"label": ["videoshop", "bdia", "videoshop_no_norm[threshold=2]"],
                            "method": ["videoshop", "bdia", "videoshop_no_norm"], "seconds": [10.0, 12.5, 9.0],
                            "nfe": [26, 25, 26]})
    r = runtime_ratios(summary).set_index("label")
    assert r.loc["videoshop", "multiple_of_videoshop"] == 1.0 and r.loc["bdia", "multiple_of_videoshop"] == 1.25
    assert r.loc["bdia", "paper_multiple"] == 1.03 and math.isnan(r.loc["videoshop_no_norm[threshold=2]", "paper_multiple"])
    with pytest.raises(ValueError, match="no 'videoshop' row"):
        runtime_ratios(summary.iloc[1:])


def test_compare_with_paper_puts_ours_beside_table5():
    summary = pd.DataFrame({"label": ["videoshop"], "method": ["videoshop"], "ssim": [50.0], "flow": [3.0]})
    c = compare_with_paper(summary, "table5").set_index("metric")
    assert c.loc["ssim", "paper"] == 57.25 and c.loc["ssim", "ours_minus_paper"] == pytest.approx(50.0 - 57.25)
    assert c.loc["flow", "paper"] == 4.57
