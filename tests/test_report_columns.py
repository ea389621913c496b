"""A new metric column shows everywhere a user reads results, with nothing written for it: a throwaway metric from
outside the repository and the edit-propagation metric, in two runs (Videoshop and SVD without the source) and their
combined report: results.csv, the summary (mean [interval], paired difference, protocol line with direction), the
gallery, the W&B tables, and the propagation and quality-vs-cost plots."""

import json
import sys
import textwrap

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from videoshop_bench.experiments.runner import Runner
from test_report import CONF

PLUGIN = '''
from videoshop_bench.eval.base import EditMetric


class Throwaway(EditMetric):
    """Mean pixel value of the edited video: a column no table, page or logger knows of."""

    names = ("throwaway_score",)
    higher_is_better = False

    def score(self, sample, edited):
        return {"throwaway_score": float(edited.mean())}

    def protocol(self):
        return {"throwaway_score": "mean pixel value of the edited video (throwaway)"}
'''
SHRINK = ["model=tiny", "model.num_frames=6", "model.height=32", "model.width=48", "method.num_inference_steps=2",
          "dataset.loader.num_samples=2",
          "metrics=default", "logger=wandb", "+metrics.throwaway={_target_: throwaway_metric.Throwaway}",
          "+metrics.propagation={_target_: videoshop_bench.eval.propagation.EditPropagation, backbone: tiny, device: cpu}"]
METHODS = ("videoshop", "svd_no_source")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("columns")
    (root / "throwaway_metric.py").write_text(textwrap.dedent(PLUGIN))
    sys.path.insert(0, str(root))
    try:
        dirs = []
        for m in METHODS:
            out = root / m
            with initialize_config_dir(config_dir=CONF, version_base="1.3"):
                cfg = compose("config", overrides=[f"method={m}", f"paths.output={out}", f"paths.cache={root}/cache",
                                                   *SHRINK])
            Runner(cfg).run()
            dirs.append(out)
        from videoshop_bench.experiments.merge import combine_runs
        from videoshop_bench.experiments.report import report_multirun

        combined = root / "combined"
        tables = combine_runs(dirs, combined)
        report_multirun(dirs, combined, tables, {"_target_": "videoshop_bench.experiments.loggers.WandbLogger", "name": "wandb",
                                                 "mode": "offline", "log_videos": False}, "edit/columns")
        yield dirs, combined
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("throwaway_metric", None)


def _wandb_table(run_dir, name):
    (run,) = list((run_dir / "wandb").glob("offline-run-*"))
    table = json.loads(next((run / "files" / "media" / "table").glob(f"{name}_*.table.json")).read_text())
    return pd.DataFrame(table["data"], columns=table["columns"])


def test_the_new_columns_reach_results_summary_gallery_and_wandb(runs):
    dirs, combined = runs
    cols = ("throwaway_score", "propagation_in_auc", "propagation_out_last")
    results = pd.read_csv(combined / "combined_results.csv")
    assert all(results[c].notna().all() for c in cols)
    md = (combined / "combined_summary.md").read_text()
    assert "- throwaway_score (lower is better): mean pixel value of the edited video (throwaway)" in md
    assert "- propagation_in_auc (higher is better): " in md and "normalised area under the per-frame curve" in md
    summary = pd.read_csv(combined / "combined_summary.csv").set_index("label")
    v, lo, hi = (summary.loc["videoshop", f"throwaway_score{s}"] for s in ("", "_ci_lo", "_ci_hi"))
    assert lo <= v <= hi and f"{v:.2f} [{lo:.2f}, {hi:.2f}]" in md
    paired = pd.read_csv(combined / "combined_paired.csv").set_index("label")
    expect = (results[results["label"] == "svd_no_source"].set_index("sample_id")["throwaway_score"]
              - results[results["label"] == "videoshop"].set_index("sample_id")["throwaway_score"]).mean()
    assert paired.loc["svd_no_source", "throwaway_score"] == pytest.approx(expect)
    assert "Paired differences: each method minus videoshop" in md
    page = (combined / "gallery.html").read_text()
    for c in cols:
        assert f'<option value="{c}">' in page and f"<td>{c}</td>" in page
    assert "<b>throwaway_score</b> (lower is better): mean pixel value of the edited video (throwaway)" in page
    samples = _wandb_table(combined, "combined_samples")
    assert all(samples[c].notna().all() for c in cols) and len(samples) == 4
    wb_summary = _wandb_table(combined, "combined_summary")
    assert {"throwaway_score", "throwaway_score_ci_lo", "propagation_in_auc_ci_hi"} <= set(wb_summary.columns)
    assert len(_wandb_table(combined, "combined_paired")) == 1
    protocols = _wandb_table(combined, "combined_protocol").set_index("metric")
    assert protocols.loc["throwaway_score", "higher_is_better"] == False  # noqa: E712  (a numpy bool from JSON)
    assert protocols.loc["propagation_in_auc", "higher_is_better"] == True  # noqa: E712
    assert "normalised area" in protocols.loc["propagation_in_auc", "protocol"]
    one = _wandb_table(dirs[0], "samples")  # a single run's own W&B run too
    assert one["throwaway_score"].notna().all()


def test_propagation_curves_are_kept_per_sample_and_plotted_per_run_and_combined(runs):
    import matplotlib.image as mpimg

    dirs, combined = runs
    for d in dirs:
        for rec in (d / "samples").glob("*/record.json"):
            curves = json.loads(rec.read_text())["curves"]
            assert len(curves["propagation_in"]) == 6 and len(curves["propagation_out"]) == 6
        assert mpimg.imread(d / "propagation.png").shape[0] > 100 and (d / "quality_vs_cost.png").is_file()
    for name in ("combined_propagation.png", "combined_quality_vs_cost.png"):
        assert mpimg.imread(combined / name).shape[1] > 300
