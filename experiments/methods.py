"""The method registry and the method sets (the Hydra edge's view of methods).

A method is a class with ``edit(sample, generator) -> videoshop.method.EditResult``; its entry here declares its
name, its row name in the paper's tables (``display``) and, for a method registered from outside ``conf/``, its
config node (``config``: ``_target_`` and the values that differ from the class's defaults), which is put into
Hydra's config store so that ``method=<name>`` works without a YAML file. The methods of ``conf/method/*.yaml`` are
registered here by name (tests check that the two lists agree).

A method set (``paper_table2``, ``table5``, ...) is declared once, here, and used by every preset that sweeps it:
``method: ${method_set:paper_table2}`` in a preset's ``hydra.sweeper.params`` (the resolver is registered by
``register_resolvers``, which run.py calls before Hydra composes), ``${method_list:regression}`` where a list is
wanted, and ``METHOD_SETS.get(name).methods`` in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import OmegaConf

from videoshop.registry import Registry


@dataclass(frozen=True)
class Method:
    """``name``: the ``method=`` choice and the records' ``method``; ``display``: its row name in the paper's
    tables (None: the paper has no row for it); ``config``: its config node when it has no conf/method YAML."""

    name: str
    display: Optional[str] = None
    config: Optional[dict[str, Any]] = None


@dataclass(frozen=True)
class MethodSet:
    """Methods swept together; ``display``: what the set is (for docs and tables)."""

    name: str
    methods: tuple[str, ...]
    display: str = ""


METHODS: Registry[Method] = Registry("method")
METHOD_SETS: Registry[MethodSet] = Registry("method set")

for _m in (Method("videoshop", "Videoshop"), Method("videoshop_paper"), Method("videoshop_no_norm", "- Norm."),
           Method("videoshop_no_rescale", "- Rescaling"), Method("videoshop_no_extrapolation", "- Extrapolation"),
           Method("videoshop_no_threshold", "- Threshold"), Method("videoshop_long"),
           Method("svd_no_source", "SVD (no src. vid.)"), Method("bdia", "BDIA"), Method("edict"),
           Method("fixed_point"), Method("animatelcm"), Method("pix2video", "Pix2Video"),
           Method("fatezero", "Fate/Zero"), Method("spacetime", "Spacetime"), Method("rave", "RAVE"),
           Method("anyv2v")):
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


def method_set(name: str) -> str:
    """``${method_set:NAME}``: the set's methods as a sweep value, ``a,b,c``."""
    return ",".join(METHOD_SETS.get(name).methods)


def method_list(name: str) -> list[str]:
    """``${method_list:NAME}``: the set's methods as a list."""
    return list(METHOD_SETS.get(name).methods)


def register_method(entry: Method, replace: bool = False) -> Method:
    """Register ``entry``; with a ``config`` node, also as Hydra's ``method=<name>`` option (no YAML needed)."""
    METHODS.register(entry, replace=replace)
    if entry.config is not None:
        from hydra.core.config_store import ConfigStore

        ConfigStore.instance().store(group="method", name=entry.name, node={"name": entry.name, **entry.config})
    return entry


def register_resolvers() -> None:
    """``${method_set:...}`` and ``${method_list:...}`` for the config files (idempotent)."""
    for name, fn in (("method_set", method_set), ("method_list", method_list)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()
