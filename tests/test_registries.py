"""Each registry takes a throwaway entry from outside the repository's own modules, and run.py runs it: a task, a
method (no YAML file: its config node goes into Hydra's config store), a method set swept by a preset, a model
family, and a metric in a metric set (and its tiny twin)."""

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from videoshop_bench.eval.registry import METRIC_SETS, METRICS, column_order, display_names, set_columns
from videoshop_bench.experiments.methods import METHOD_SETS, METHODS, MethodSet, paper_row_names
from videoshop_bench.experiments.task_registry import TASKS
from videoshop.families import FAMILIES
from videoshop.registry import Registry, UnknownEntry

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = '''
from dataclasses import dataclass

import numpy as np
from videoshop_bench.eval.base import EditMetric, check_same_shape
from videoshop_bench.eval.registry import METRIC_SETS, METRICS, MetricEntry, MetricSet
from videoshop.method import EditResult
from videoshop_bench.experiments.methods import METHOD_SETS, Method, MethodSet, register_method
from videoshop_bench.experiments.task_registry import TASKS, Task
from videoshop.families import FAMILIES, ModelFamily
from videoshop.options import build_options, option

CALLS = []


@dataclass
class PasteOptions:
    blend: float = option(1.0, "float", "weight of the edited first frame", min=0, max=1)


class PasteFirstFrame:
    """Blend the edited first frame into every source frame (a throwaway method with one declared option)."""

    uses_video_model = False  # it needs no video model: the runner passes device= instead of pipeline=
    options = PasteOptions

    def __init__(self, name: str = "paste_first", device: str = "cpu", **options):
        self.name, self.blend = name, build_options(PasteOptions, options).blend

    def edit(self, sample, generator):
        src = sample.source_video.astype(np.float32)
        out = self.blend * sample.edited_image.astype(np.float32)[None] + (1 - self.blend) * src
        return EditResult(frames=np.clip(np.rint(out), 0, 255).astype(np.uint8), nfe=0)


def hello(cfg, label=None):
    CALLS.append((cfg.task, cfg.seed, label))


TASKS.register(Task("hello", run=hello, reads=()), replace=True)
register_method(Method("paste_first", display="Paste", target="throwaway_plugin.PasteFirstFrame",
                       config={"blend": 0.5}), replace=True)
METHOD_SETS.register(MethodSet("throwaway_set", ("paste_first", "svd_no_source")), replace=True)


class MeanAbsDiff(EditMetric):
    """Mean absolute difference of edited and source frames, times ``scale`` (a throwaway metric)."""

    names = ("mad",)

    def __init__(self, scale: float = 1.0, device: str = "cpu", **kw):
        super().__init__(**kw)
        self.scale, self.where = scale, device

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        return {"mad": self.scale * float(np.abs(edited.astype(np.float64) - sample.source_video).mean())}


METRICS.register(MetricEntry("mad", "throwaway_plugin.MeanAbsDiff", options={"scale": 100.0, "device": "${device}"},
                             tiny={"scale": 1.0}, columns={"mad": "MAD"}, sets=("throwaway_metrics",)), replace=True)
METRIC_SETS.register(MetricSet("throwaway_metrics", ("ssim",)), replace=True)


def one_layer_wan(size):
    """Wan 2.1 I2V with a one-layer transformer: a new family is its configs, modules, pipeline and scheduler, and
    its model mappings (here the tiny stand-in only: no released checkpoint), no YAML file."""
    from videoshop.wan import wan21_i2v_configs

    cfg = wan21_i2v_configs(size)
    cfg["transformer"] = dict(cfg["transformer"], num_layers=1)
    return cfg


FAMILIES.register(ModelFamily("wan_one_layer", "Wan 2.1 I2V, one layer", "videoshop.wan.WanVideoshopPipeline",
                              configs=one_layer_wan, modules="videoshop.wan.wan_modules",
                              scheduler="diffusers.FlowMatchEulerDiscreteScheduler"), replace=True)
'''
PRESET = '''# @package _global_
sweep_name: throwaway
hydra:
  mode: MULTIRUN
  sweeper:
    params:
      method: ${method_set:throwaway_set}
'''
SHRINK = ["model=tiny", "model.num_frames=6", "dataset.loader.num_samples=1", "logger=none", "metrics=default",
          "method.num_inference_steps=3"]


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    (tmp_path / "throwaway_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    import throwaway_plugin

    yield throwaway_plugin
    METRIC_SETS.unregister("throwaway_metrics")
    METRICS.unregister("mad")
    TASKS.unregister("hello")
    FAMILIES.unregister("wan_one_layer")
    METHODS.unregister("paste_first")
    METHOD_SETS.unregister("throwaway_set")
    sys.modules.pop("throwaway_plugin", None)


def run_py(monkeypatch, *args):
    """run.py's main, in this process (so the entries registered here are seen), as `python run.py ARGS`."""
    import runpy

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["run.py", *args])
    runpy.run_path(str(ROOT / "run.py"), run_name="__main__")


def test_registry_refuses_a_second_entry_of_one_name_and_names_the_choices_of_an_unknown_one():
    reg = Registry("widget")
    reg.register(MethodSet("a", ()))
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register(MethodSet("a", ("x",)))
    with pytest.raises(UnknownEntry, match=r"^unknown widget 'b': expected one of a$"):
        reg.get("b")


def test_every_method_config_file_is_a_registered_method_and_every_set_names_registered_methods():
    files = {p.stem for p in (ROOT / "conf" / "method").glob("*.yaml")}
    assert files == {m.name for m in METHODS if m.config is None}
    assert all(m.target for m in METHODS)
    assert all(m in METHODS for s in METHOD_SETS for m in s.methods)


def test_a_registered_task_runs_through_run_py(plugin, monkeypatch, tmp_path):
    run_py(monkeypatch, "task=hello", "seed=7", f"hydra.run.dir={tmp_path / 'run'}")
    assert plugin.CALLS == [("hello", 7, "videoshop")]


def test_a_registered_method_without_yaml_runs_and_its_options_are_checked_first(plugin, monkeypatch, tmp_path, capsys):
    out = tmp_path / "run"
    run_py(monkeypatch, "method=paste_first", *SHRINK[:-1], f"hydra.run.dir={out}", f"paths.cache={tmp_path}/c")
    rec = json.loads(next(out.rglob("record.json")).read_text())
    assert rec["method"] == "paste_first" and rec["status"] == "ok" and rec["nfe"] == 0
    assert paper_row_names()["paste_first"] == "Paste"
    with pytest.raises(SystemExit) as e:  # PasteOptions is the one declaration of the option's type and range
        run_py(monkeypatch, "method=paste_first", "method.blend=abc", "+method.blnd=1", *SHRINK[:-1],
               f"hydra.run.dir={tmp_path / 'bad'}")
    assert e.value.code == 2 and not (tmp_path / "bad" / "samples").exists()
    err = capsys.readouterr().err
    assert "error: method.blend=abc: must be a number (got 'abc')" in err
    assert ("error: method.blnd: not an option of throwaway_plugin.PasteFirstFrame (did you mean blend? "
            "options: blend, name)") in err
    with pytest.raises(SystemExit):
        run_py(monkeypatch, "method=paste_first", "method.blend=2", *SHRINK[:-1], f"hydra.run.dir={tmp_path / 'bad'}")
    assert "error: method.blend=2: must be in [0, 1] (got 2)" in capsys.readouterr().err


def test_a_registered_method_set_is_swept_by_a_preset_through_run_py(plugin, monkeypatch, tmp_path):
    conf = tmp_path / "conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "throwaway.yaml").write_text(PRESET)
    sweep = tmp_path / "sweep"
    run_py(monkeypatch, f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "experiment=throwaway", *SHRINK[:-1],
           f"hydra.sweep.dir={sweep}", f"paths.cache={tmp_path}/c")
    records = [json.loads(p.read_text()) for p in sorted(sweep.rglob("record.json"))]
    assert sorted(r["method"] for r in records) == ["paste_first", "svd_no_source"]
    assert all(r["status"] == "ok" for r in records)
    import pandas as pd

    assert set(pd.read_csv(sweep / "combined_summary.csv")["method"]) == {"paste_first", "svd_no_source"}
    frames = [np.asarray(r["metrics"].get("ssim", np.nan)) for r in records]
    assert all(np.isfinite(f) for f in frames)


def test_the_docs_table_of_method_sets_is_the_registry():
    from videoshop_bench.experiments.methods import method_sets_markdown

    assert method_sets_markdown() in (ROOT / "docs" / "architecture.md").read_text()


def test_a_registered_model_family_runs_through_run_py_and_an_unknown_one_is_refused(plugin, monkeypatch, tmp_path,
                                                                                    capsys):
    from videoshop.families import model_mapping

    assert model_mapping("wan_one_layer", "tiny") == dict(
        name="wan_one_layer_tiny", family="wan_one_layer", kind="tiny", hub_id=None, revision=None, path=None,
        variant=None, seed=0, dtype="float32", num_frames=9, height=32, width=64, allow_download=False,
        max_sequence_length=16)
    out = tmp_path / "run"
    run_py(monkeypatch, "model=wan_one_layer", "model/kind=tiny", "dataset.loader.num_samples=1", "logger=none",
           "metrics=default", "method.num_inference_steps=4", f"hydra.run.dir={out}", f"paths.cache={tmp_path}/c")
    rec = json.loads(next(out.rglob("record.json")).read_text())
    assert rec["model"] == "wan_one_layer_tiny" and rec["status"] == "ok" and rec["finite"] and rec["nfe"] > 0
    with pytest.raises(SystemExit) as e:
        run_py(monkeypatch, "model=wan21_i2v_tiny", "model.family=nope", f"hydra.run.dir={tmp_path / 'bad'}")
    assert e.value.code == 2
    assert "error: model.family=nope: must be one of svd, wan21_i2v" in capsys.readouterr().err


def test_a_registered_metric_runs_through_run_py_in_its_set_and_the_tiny_twin(plugin, monkeypatch, tmp_path, capsys):
    runs = {}
    for name in ("throwaway_metrics", "throwaway_metrics_tiny"):
        out = tmp_path / name
        run_py(monkeypatch, "method=paste_first", f"metrics={name}", "dataset.loader.num_samples=1", "logger=none",
               f"hydra.run.dir={out}", f"paths.cache={tmp_path}/c")
        runs[name] = json.loads(next(out.rglob("record.json")).read_text())
    real, tiny = runs["throwaway_metrics"], runs["throwaway_metrics_tiny"]
    assert real["status"] == tiny["status"] == "ok" and set(real["metrics"]) == {"ssim", "mad"}
    # the same edit scored with the real options (scale 100) and the tiny twin's (scale 1); the rest from the class
    assert real["metrics"]["mad"] > 0 and real["metrics"]["mad"] == pytest.approx(100 * tiny["metrics"]["mad"])
    assert real["metrics_hash"] != tiny["metrics_hash"]
    assert display_names()["mad"] == "MAD" and column_order()[-1] == "mad" and "mad" not in set_columns("paper")
    with pytest.raises(SystemExit) as e:
        run_py(monkeypatch, "method=paste_first", "metrics=throwaway_metrix", f"hydra.run.dir={tmp_path / 'bad'}")
    assert e.value.code == 2 and "metrics=throwaway_metrix: no option" in capsys.readouterr().err


# metrics_hash (experiments/components.py) of each shipped set, as composed before the metric registry replaced
# conf/metrics/*.yaml: unchanged, so results scored before it are reused on resume
METRICS_HASHES = {"paper": "f29e7061197701ea", "paper_tiny": "974b082a8f145a4b", "default": "116211a7eae9d5b1",
                  "none": "44136fa355b3678a"}


@pytest.mark.parametrize("name", sorted(METRICS_HASHES))
def test_each_shipped_metric_set_composes_what_its_yaml_file_did(name):
    from hydra import compose, initialize_config_dir

    from videoshop_bench.experiments.components import container, stable_hash

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["paths.output=/o", "paths.cache=/c", f"metrics={name}"])
    assert stable_hash(container(cfg.metrics)) == METRICS_HASHES[name]


def test_every_metric_entry_names_its_class_columns_and_the_paper_set_its_ten_columns():
    from videoshop.registry import load_object

    for e in METRICS:
        assert set(e.columns) == set(load_object(e.target).names), e.name
    with open(ROOT / "experiments" / "paper_numbers" / "table2_magicbrush.csv") as f:
        assert tuple(f.readline().strip().split(",")[1:]) == set_columns("paper")
    assert all(m in METRICS for s in METRIC_SETS if s.metrics for m in s.metrics + s.extras)


def test_every_dataset_config_names_its_registry_entry_and_restates_none_of_its_shared_keys():
    import yaml

    from videoshop_bench.datasets.registry import DATASETS, dataset_node

    files = {p.stem: yaml.safe_load(p.read_text()) for p in (ROOT / "conf" / "dataset").glob("*.yaml")}
    assert set(files) == set(DATASETS.names())
    for name, cfg in files.items():
        assert cfg["defaults"] == [f"/dataset_entry/{name}@_here_", "_self_"], name
        shared = dataset_node(name)
        for section in ("", "loader", "build"):
            mine, base = (cfg, shared) if not section else (cfg.get(section) or {}, shared.get(section) or {})
            same = [k for k in mine if k in base and mine[k] == base[k] and k != "defaults"]
            assert not same, f"conf/dataset/{name}.yaml restates {section or 'dataset'} keys {same}"
    docs = (ROOT / "docs" / "datasets.md").read_text()
    assert all(f"| `{n}` |" in docs for n in DATASETS.names())


def test_a_registered_dataset_runs_through_run_py_from_a_yaml_naming_it(plugin, monkeypatch, tmp_path):
    from videoshop_bench.datasets.registry import DATASETS, DatasetEntry

    DATASETS.register(DatasetEntry("throwaway_examples", "the committed examples under another name"))
    try:
        conf = tmp_path / "conf" / "dataset"
        conf.mkdir(parents=True)
        (conf / "throwaway_examples.yaml").write_text(
            "defaults:\n  - /dataset_entry/throwaway_examples@_here_\n  - _self_\nlimit: 1\n"
            "loader:\n  root: datasets/examples\n")
        out = tmp_path / "run"
        run_py(monkeypatch, f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "dataset=throwaway_examples",
               "method=paste_first", "metrics=default", "logger=none", f"hydra.run.dir={out}", f"paths.cache={tmp_path}/c")
        records = [json.loads(p.read_text()) for p in out.rglob("record.json")]
        assert len(records) == 1 and records[0]["status"] == "ok" and records[0]["dataset"] == "throwaway_examples"
    finally:
        DATASETS.unregister("throwaway_examples")


def test_the_docs_table_of_metric_sets_is_the_registry():
    from videoshop_bench.eval.registry import metric_sets_markdown

    assert metric_sets_markdown() in (ROOT / "docs" / "metrics.md").read_text()
