"""The method registry and the method sets (the Hydra edge's view of methods).

A method is a class with ``edit(sample, generator) -> videoshop.method.EditResult`` that declares its options once
(``options``: a dataclass of ``videoshop.options.option`` fields; ``inner_options``: the dataclass receiving the
rest, VideoshopConfig for the Videoshop family) and whether the runner builds the video model for it
(``uses_video_model``). Its entry here declares its name, its row name in the paper's tables (``display``) and its
class (``target``). Each entry's node (``_target_``, ``name`` and every declared option's default) is put into
Hydra's config store as ``method_entry/<name>``, which ``conf/method/<name>.yaml`` names in its defaults and
overrides only where a value differs (or is tied to another key, e.g. ``weights: ${model.kind}``); a method
registered with ``config`` (the values that differ from the declared defaults) is also stored as
``method/<name>``, so ``method=<name>`` works without a YAML file. Tests check that the registry and
``conf/method/*.yaml`` agree.

A method set (``paper_table2``, ``table5``, ...) is declared once, here, and used by every preset that sweeps it:
``method: ${method_set:paper_table2}`` in a preset's ``hydra.sweeper.params`` (the resolver is registered by
``register_resolvers``, which run.py calls before Hydra composes), ``${method_list:regression}`` where a list is
wanted, and ``METHOD_SETS.get(name).methods`` in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import OmegaConf

from videoshop.options import option_defaults
from videoshop.registry import Registry, load_object


@dataclass(frozen=True)
class Method:
    """``name``: the ``method=`` choice and the records' ``method``; ``display``: its row name in the paper's
    tables (None: the paper has no row for it); ``target``: its class (dotted path); ``config``: the values that
    differ from the declared defaults, for a method without a conf/method YAML."""

    name: str
    display: Optional[str] = None
    target: Optional[str] = None
    config: Optional[dict[str, Any]] = None


@dataclass(frozen=True)
class MethodSet:
    """Methods swept together; ``display``: what the set is (for docs and tables)."""

    name: str
    methods: tuple[str, ...]
    display: str = ""


METHODS: Registry[Method] = Registry("method")
METHOD_SETS: Registry[MethodSet] = Registry("method set")

VIDEOSHOP = "videoshop.method.VideoshopMethod"
for _m in (Method("videoshop", "Videoshop", VIDEOSHOP), Method("videoshop_paper", None, VIDEOSHOP),
           Method("videoshop_no_norm", "- Norm.", VIDEOSHOP), Method("videoshop_no_rescale", "- Rescaling", VIDEOSHOP),
           Method("videoshop_no_extrapolation", "- Extrapolation", VIDEOSHOP),
           Method("videoshop_no_threshold", "- Threshold", VIDEOSHOP),
           Method("videoshop_long", None, "videoshop_bench.baselines.long_video.BlockRecurrentVideoshop"),
           Method("svd_no_source", "SVD (no src. vid.)", "videoshop_bench.baselines.svd_no_source.SVDNoSource"),
           Method("bdia", "BDIA", VIDEOSHOP), Method("edict", None, VIDEOSHOP), Method("fixed_point", None, VIDEOSHOP),
           Method("animatelcm", None, "videoshop_bench.baselines.animatelcm.AnimateLCMVideoshop"),
           Method("pix2video", "Pix2Video", "videoshop_bench.baselines.pix2video.Pix2Video"),
           Method("fatezero", "Fate/Zero", "videoshop_bench.baselines.text.fatezero.FateZero"),
           Method("spacetime", "Spacetime", "videoshop_bench.baselines.text.spacetime.Spacetime"),
           Method("rave", "RAVE", "videoshop_bench.baselines.rave.RAVE"), Method("anyv2v", None, "videoshop_bench.baselines.anyv2v.AnyV2V")):
    METHODS.register(_m)

ABLATIONS = ("videoshop", "videoshop_no_norm", "videoshop_no_rescale", "videoshop_no_extrapolation",
             "videoshop_no_threshold")
for _s in (MethodSet("paper_table2", ("bdia", "pix2video", "fatezero", "spacetime", "rave", "svd_no_source",
                                      "videoshop"), "Table 2: MagicBrush-to-video, every baseline"),
           MethodSet("paper_table3", ("bdia", "pix2video", "fatezero", "spacetime", "rave", "videoshop"),
                     "Table 3: the expert-edited set"),
           MethodSet("ablations", ABLATIONS, "Table 5: Videoshop and its four ablations"),
           MethodSet("reconstruction", ("videoshop", "videoshop_paper", "videoshop_no_norm",
                                        "videoshop_no_extrapolation", "videoshop_no_threshold"),
                     "inversion fidelity per variant (task=reconstruct)"),
           MethodSet("regression", ABLATIONS + ("svd_no_source", "bdia"), "the CI regression's methods"),
           MethodSet("toy_edit", ABLATIONS + ("svd_no_source",), "the toy model's acceptance edits")):
    METHOD_SETS.register(_s)


def paper_row_names() -> dict[str, str]:
    """Method name -> the paper's row name, for every method the paper reports."""
    return {m.name: m.display for m in METHODS if m.display}


def method_sets_markdown() -> str:
    """The method sets as a Markdown table (docs/architecture.md holds this table; a test keeps them equal)."""
    rows = [f"| `{s.name}` | {s.display} | {', '.join(f'`{m}`' for m in s.methods)} |" for s in METHOD_SETS]
    return "\n".join(["| set | what | methods |", "|---|---|---|", *rows])


def method_options_markdown() -> str:
    """Every registered method's declared options as Markdown (docs/method_options.md holds this; a test keeps
    them equal): per method class, its ``options`` dataclass (type, range, choices, default, what it does)."""
    from videoshop.options import options_markdown

    parts = ["# Method options", "",
             "Generated from the declarations (`python -c \"from videoshop_bench.experiments.methods import method_options_markdown; "
             "print(method_options_markdown())\" > docs/method_options.md`; `tests/test_method_options.py` keeps this "
             "file equal to them). Each method class declares its options once, in the dataclass named below; "
             "`conf/method/<name>.yaml` overrides only values tied to other keys (`weights: ${model.kind}`, sizes). "
             "The Videoshop family also takes every `videoshop.config.VideoshopConfig` option (its `inner_options`).",
             ""]
    seen: set[str] = set()
    for entry in METHODS:
        cls = load_object(entry.target) if entry.target else None
        options = getattr(cls, "options", None)
        if options is None or entry.target in seen:
            continue
        seen.add(entry.target)
        inner = getattr(cls, "inner_options", None)
        more = f"; every other key: `{inner.__module__}.{inner.__name__}`" if inner else ""
        parts += [f"## `method={entry.name}`: `{options.__module__}.{options.__name__}`{more}", "",
                  options_markdown(options), ""]
    return "\n".join(parts)


def method_set(name: str) -> str:
    """``${method_set:NAME}``: the set's methods as a sweep value, ``a,b,c``."""
    return ",".join(METHOD_SETS.get(name).methods)


def method_list(name: str) -> list[str]:
    """``${method_list:NAME}``: the set's methods as a list."""
    return list(METHOD_SETS.get(name).methods)


ENTRY_GROUP = "method_entry"


def entry_node(entry: Method) -> dict[str, Any]:
    """``_target_``, ``name`` and the default of every option the class declares (its ``options`` dataclass)."""
    cls = load_object(entry.target)
    options = getattr(cls, "options", None)
    return {"_target_": entry.target, "name": entry.name, **(option_defaults(options) if options else {})}


def uses_video_model(target: Any) -> bool:
    """Whether the runner builds the video pipeline for the method class ``target`` (its class attribute, the one
    place this is declared; a class that does not say, or a target that does not import, is given the pipeline)."""
    try:
        return bool(getattr(load_object(target), "uses_video_model", True)) if isinstance(target, str) else True
    except (ImportError, AttributeError, ValueError):
        return True


def store_method_entries() -> None:
    """Every entry's node as ``method_entry/<name>``; one registered with ``config`` also as ``method=<name>``."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for entry in METHODS:
        if entry.target is None:
            continue
        node = entry_node(entry)
        cs.store(group=ENTRY_GROUP, name=entry.name, node=node)
        if entry.config is not None:
            cs.store(group="method", name=entry.name, node={**node, **entry.config})


def register_method(entry: Method, replace: bool = False) -> Method:
    """Register ``entry`` (its node goes into the config store: ``method_entry/<name>``, and ``method=<name>`` when
    it has a ``config``)."""
    if entry.target is None:
        raise ValueError(f"method {entry.name!r}: needs target= (its class, e.g. 'my_module.MyMethod')")
    METHODS.register(entry, replace=replace)
    return entry


def register_resolvers() -> None:
    """``${method_set:...}`` and ``${method_list:...}`` for the config files (idempotent)."""
    for name, fn in (("method_set", method_set), ("method_list", method_list)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()
METHODS.subscribe(store_method_entries)
