"""Every method's options are declared once (its class's ``options`` / ``inner_options`` dataclasses) and checked
before any work: parametrised over the method registry, not a hand-written list."""

import inspect
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from videoshop_bench.experiments.config_schema import validate_config
from videoshop_bench.experiments.methods import METHODS, entry_node
from videoshop.options import Check, check_options, option_checks, option_classes, option_defaults
from videoshop.registry import load_object

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
WITH_OPTIONS = sorted(m.name for m in METHODS if getattr(load_object(m.target), "options", None) is not None)
CONSTRUCTOR_KEYWORDS = {"self", "pipeline", "device", "name", "height", "width", "debug", "options"}


def cfg_for(method, *overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=["model=tiny", f"method={method}", "paths.output=/tmp/unused", *overrides])


# the shipped methods: the text-driven baselines and AnyV2V load their own models; the SVD family gets the pipeline
OWN_MODELS = ("pix2video", "rave", "fatezero", "spacetime", "anyv2v")
SHIPPED_USES_VIDEO_MODEL = {**{m: False for m in OWN_MODELS},
                            **{m: True for m in ("videoshop", "videoshop_paper", "videoshop_no_norm", "videoshop_no_rescale",
                                                 "videoshop_no_extrapolation", "videoshop_no_threshold", "videoshop_long",
                                                 "svd_no_source", "bdia", "edict", "fixed_point", "animatelcm")}}


def own_checks(method):
    return option_checks(load_object(METHODS.get(method).target).options)


def pick(method, want):
    """The first declared option of ``method`` whose Check satisfies ``want`` (None when it has none)."""
    return next(((k, c) for k, c in own_checks(method).items() if want(c)), None)


def method_problems(cfg):
    return [p for p in validate_config(cfg) if p.startswith("method")]


def test_the_registry_covers_every_baseline_with_options():
    assert {"pix2video", "rave", "fatezero", "spacetime", "anyv2v", "svd_no_source", "animatelcm",
            "videoshop_long"} <= set(WITH_OPTIONS)


@pytest.mark.parametrize("method", WITH_OPTIONS)
def test_an_unknown_key_is_one_line_naming_it_and_its_close_matches(method):
    key = max(own_checks(method), key=len)
    typo = key[:-1] if len(key) > 5 else key + "s"  # a near miss of a declared option, whatever its length
    cfg = cfg_for(method, f"+method.{typo}=1", "+method.zz_not_an_option=1")
    problems = method_problems(cfg)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"method.{typo}: not an option of {METHODS.get(method).target} (did you mean")
    assert key in problems[0].split("options:")[0]
    assert problems[1].startswith("method.zz_not_an_option: not an option of") and "\n" not in problems[1]


@pytest.mark.parametrize("method", WITH_OPTIONS)
def test_a_wrong_type_an_out_of_range_value_and_a_wrong_choice_are_one_line_each_naming_the_key(method):
    cases = []
    typed = pick(method, lambda c: c.kind in ("int", "float", "bool"))
    cases.append((typed[0], "abc", "must be"))
    ranged = pick(method, lambda c: c.kind in ("int", "float") and c.min is not None and not c.choices)
    if ranged:
        cases.append((ranged[0], ranged[1].min - 1, "must be"))
    chosen = pick(method, lambda c: c.choices is not None and c.kind == "str" and "pretrained" not in c.choices)
    if chosen:
        cases.append((chosen[0], "nope", "must be one of"))
    for key, value, why in cases:
        problems = method_problems(cfg_for(method, f"method.{key}={value}"))
        assert len(problems) == 1 and problems[0].startswith(f"method.{key}={value}: {why}"), (key, problems)


@pytest.mark.parametrize("method", sorted(m for m in WITH_OPTIONS if getattr(own_checks(m).get("weights"), "choices", None)))
def test_an_unknown_weights_kind_is_named_even_where_sizes_follow_it(method):
    problems = method_problems(cfg_for(method, "method.weights=nope"))
    assert "method.weights=nope: must be one of pretrained, tiny, random (got 'nope')" in problems
    assert all(p.startswith("method.weights=") or "cannot be resolved" in p for p in problems), problems


@pytest.mark.parametrize("method", WITH_OPTIONS)
def test_a_bad_value_stops_run_py_before_any_work(method, monkeypatch, tmp_path, capsys):
    import runpy

    key, _ = pick(method, lambda c: c.kind in ("int", "float"))
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["run.py", "model=tiny", f"method={method}", f"method.{key}=abc",
                                      f"hydra.run.dir={tmp_path}", f"paths.cache={tmp_path}/c"])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / "run.py"), run_name="__main__")
    assert e.value.code == 2 and not (tmp_path / "samples").exists()
    assert f"error: method.{key}=abc: must be" in capsys.readouterr().err


@pytest.mark.parametrize("method", WITH_OPTIONS)
def test_declared_defaults_are_the_ones_the_class_uses_and_pass_their_own_checks(method):
    cls = load_object(METHODS.get(method).target)
    params = inspect.signature(cls.__init__).parameters
    assert set(params) <= CONSTRUCTOR_KEYWORDS, set(params) - CONSTRUCTOR_KEYWORDS  # no second list of defaults
    for options in option_classes(cls):
        check_options(options(), method)
    assert entry_node(METHODS.get(method)) == {"_target_": METHODS.get(method).target, "name": method,
                                               **option_defaults(cls.options)}


def _restated(value, default) -> bool:
    """Whether a YAML value only repeats the declared default (an interpolation ties values: never a restatement)."""
    if isinstance(value, str) and "${" in value:
        return False
    if isinstance(value, dict) and isinstance(default, dict):
        return any(_restated(v, default.get(k)) for k, v in value.items() if k in default)
    return value == default or (isinstance(default, tuple) and value == list(default))


@pytest.mark.parametrize("method", WITH_OPTIONS)
def test_the_yaml_names_its_entry_and_restates_no_declared_default(method):
    path = ROOT / "conf" / "method" / f"{method}.yaml"
    data = yaml.safe_load(path.read_text())
    assert f"/method_entry/{method}@_here_" in data["defaults"]
    assert "uses_video_model" not in data and "_target_" not in data  # the class and its entry say these
    defaults = option_defaults(load_object(METHODS.get(method).target).options)
    restated = [k for k, v in data.items() if k in defaults and _restated(v, defaults[k])]
    assert not restated, f"{path.name} restates the declared defaults of {restated}"


@pytest.mark.parametrize("method", sorted(m.name for m in METHODS if (ROOT / "conf" / "method" / f"{m.name}.yaml").is_file()))
def test_uses_video_model_is_declared_by_the_class_only(method):
    cfg = cfg_for(method)
    assert "uses_video_model" not in cfg.method
    cls = load_object(cfg.method._target_)
    assert isinstance(cls.uses_video_model, bool)
    if method in SHIPPED_USES_VIDEO_MODEL:  # a method added later may be either
        assert cls.uses_video_model is SHIPPED_USES_VIDEO_MODEL[method]
    problems = method_problems(cfg_for(method, "+method.uses_video_model=false"))
    assert problems == [f"method.uses_video_model: not a config key; the class {cfg.method._target_} declares it "
                        f"(uses_video_model = {cls.uses_video_model})"]


def test_a_check_refuses_a_non_mapping_for_a_dict_option_and_options_markdown_lists_every_option():
    from videoshop_bench.baselines.rave import RAVEOptions
    from videoshop.options import options_markdown

    assert Check("dict").problem([1]) == "must be a mapping of sub-options (got [1])"
    table = options_markdown(RAVEOptions)
    assert all(f"| `{k}` |" in table for k in option_checks(RAVEOptions))


def test_the_docs_options_reference_is_the_declarations():
    from videoshop_bench.experiments.methods import method_options_markdown

    assert (ROOT / "docs" / "method_options.md").read_text().strip() == method_options_markdown().strip()
