"""Each registry takes a throwaway entry from outside the repository's own modules, and run.py runs it: a task, a
method (no YAML file: its config node goes into Hydra's config store) and a method set swept by a preset."""

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from experiments.methods import METHOD_SETS, METHODS, MethodSet, paper_row_names
from experiments.task_registry import TASKS
from videoshop.families import FAMILIES
from videoshop.registry import Registry, UnknownEntry

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = '''
import numpy as np
from videoshop.method import EditResult
from experiments.methods import METHOD_SETS, Method, MethodSet, register_method
from experiments.task_registry import TASKS, Task
from videoshop.families import FAMILIES, ModelFamily

CALLS = []


class PasteFirstFrame:
    """Blend the edited first frame into every source frame (a throwaway method with one typed option)."""

    def __init__(self, name: str = "paste_first", device: str = "cpu", blend: float = 1.0):
        self.name, self.blend = name, blend

    def edit(self, sample, generator):
        src = sample.source_video.astype(np.float32)
        out = self.blend * sample.edited_image.astype(np.float32)[None] + (1 - self.blend) * src
        return EditResult(frames=np.clip(np.rint(out), 0, 255).astype(np.uint8), nfe=0)


def hello(cfg, label=None):
    CALLS.append((cfg.task, cfg.seed, label))


TASKS.register(Task("hello", run=hello, reads=()), replace=True)
register_method(Method("paste_first", display="Paste", config={"_target_": "throwaway_plugin.PasteFirstFrame",
                                                               "uses_video_model": False, "blend": 0.5}),
                replace=True)
METHOD_SETS.register(MethodSet("throwaway_set", ("paste_first", "svd_no_source")), replace=True)


def one_layer_wan(size):
    """Wan 2.1 I2V with a one-layer transformer: a new family is its configs, modules, pipeline and scheduler."""
    from videoshop.flow_models import wan21_i2v_configs

    cfg = wan21_i2v_configs(size)
    cfg["transformer"] = dict(cfg["transformer"], num_layers=1)
    return cfg


FAMILIES.register(ModelFamily("wan_one_layer", "Wan 2.1 I2V, one layer", "videoshop.flow_pipeline.WanVideoshopPipeline",
                              configs=one_layer_wan, modules="videoshop.flow_models.wan_modules",
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
    with pytest.raises(SystemExit) as e:  # the constructor's annotation is the one declaration of the option's type
        run_py(monkeypatch, "method=paste_first", "method.blend=abc", "+method.blnd=1", *SHRINK[:-1],
               f"hydra.run.dir={tmp_path / 'bad'}")
    assert e.value.code == 2 and not (tmp_path / "bad" / "samples").exists()
    err = capsys.readouterr().err
    assert "error: method.blend=abc: must be a number (got 'abc')" in err
    assert "error: method.blnd: not an option of throwaway_plugin.PasteFirstFrame (options: name, blend)" in err


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
    from experiments.methods import method_sets_markdown

    assert method_sets_markdown() in (ROOT / "docs" / "architecture.md").read_text()


def test_a_registered_model_family_runs_through_run_py_and_an_unknown_one_is_refused(plugin, monkeypatch, tmp_path,
                                                                                    capsys):
    out = tmp_path / "run"
    run_py(monkeypatch, "model=wan21_i2v_tiny", "model.family=wan_one_layer", "model.name=wan_one_layer_tiny",
           "dataset.loader.num_samples=1", "logger=none", "metrics=default", "method.num_inference_steps=4",
           f"hydra.run.dir={out}", f"paths.cache={tmp_path}/c")
    rec = json.loads(next(out.rglob("record.json")).read_text())
    assert rec["model"] == "wan_one_layer_tiny" and rec["status"] == "ok" and rec["finite"] and rec["nfe"] > 0
    with pytest.raises(SystemExit) as e:
        run_py(monkeypatch, "model=wan21_i2v_tiny", "model.family=nope", f"hydra.run.dir={tmp_path / 'bad'}")
    assert e.value.code == 2
    assert "error: model.family=nope: must be one of svd, wan21_i2v" in capsys.readouterr().err
