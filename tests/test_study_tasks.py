"""The study's Hydra tasks on the real composed config: study_build -> study_import -> study_analyze, config checks."""

from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from _study_data import make_results
from videoshop_bench.experiments.runner import ConfigErrors
from videoshop_bench.experiments.study.design import load_manifest
from videoshop_bench.experiments.study.simulate import simulated_votes_csv
from videoshop_bench.experiments.tasks import main_task

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def _cfg(*overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=["logger=none", "paths.output=unused", *overrides])


def test_build_import_analyze_through_the_tasks(tmp_path):
    make_results(tmp_path / "res")
    st = tmp_path / "st"
    main_task(_cfg("task=study_build", f"study.runs=[{tmp_path / 'res'}]", f"study.dir={st}",
                   "study.trials_per_rater=6", "study.raters_per_pair=2"))
    assert (tmp_path / "res" / "studies.json").read_text().count("report.html") == 1  # linked from the gallery
    manifest = load_manifest(st)
    simulated_votes_csv(manifest, ["a", "b", "c"], tmp_path / "v.csv", seed=1)
    got = main_task(_cfg("task=study_import", f"study.dir={st}", f"study.votes={tmp_path / 'v.csv'}"))
    assert got["added"] == 3 * sum(not t["check"] for t in manifest["trials"]) and not got["refused"]
    tables = main_task(_cfg("task=study_analyze", f"study.dir={st}", "study.analysis.n_boot=100"))
    t4 = pd.read_csv(st / "table4_human.csv")
    assert set(t4["baseline"]) == {"BDIA", "RAVE", "Average"} and set(t4["question"]) == set(manifest["questions"])
    assert t4["pref_reference_pct"].between(0, 100).all() and t4["paper_pct"].notna().all()
    assert not tables["metrics_vs_people"].empty and (st / "metrics_vs_people.png").is_file()


@pytest.mark.parametrize("override,key", [("study.attention_rate=0.9", "study.attention_rate"),
                                          ("study.raters_per_pair=0", "study.raters_per_pair"),
                                          ("study.port=abc", "study.port")])
def test_study_keys_are_checked_before_any_work(override, key):
    with pytest.raises(ConfigErrors) as e:
        main_task(_cfg("task=study_build", override))
    assert any(p.startswith(key) for p in e.value.problems)
