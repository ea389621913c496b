"""Config keys nobody reads, and paths that do not exist: one line each, before any work.

Hydra refuses ``foo=1`` for a key the config lacks, but ``+foo=1`` adds it and a misspelled ``+limits.max_sid=9``
would change nothing, silently. A key is known when some file under conf/ declares it: the top-level keys of
conf/config.yaml and of every global preset (``# @package _global_``: experiment/, smoke/), the config groups, and
one level down, the keys any option of a group (conf/<group>/*.yaml) or a global preset gives that section; the
``metrics`` group is composed from eval/registry.py, the keys every dataset shares come from
datasets/registry.py and the ``model`` keys from every family's mappings in videoshop/families.py
(experiments/stored_configs.py). Method
options are checked against the method's constructor instead (config_schema.method_option_problems); metric nodes
are open (``+metrics.mine={_target_: ...}`` adds a metric).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from videoshop_bench.datasets.registry import DATASETS, dataset_node
from videoshop.families import model_presets

from .stored_configs import GROUP as METRICS_GROUP, MODEL_GROUP

CONF = Path(__file__).resolve().parents[1] / "conf"
REPO = CONF.parent
OPEN_SECTIONS = ("method", "metrics", "hydra", "tasks", "paths")  # checked elsewhere, or free-form


def _yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


@functools.lru_cache(maxsize=1)
def declared_keys() -> dict[str, set[str]]:
    """Section ("" = top level) -> the keys some file under conf/ declares for it."""
    known: dict[str, set[str]] = {"": {"hydra"}}
    groups = [d for d in CONF.iterdir() if d.is_dir()]
    known[""] |= {d.name for d in groups} | {METRICS_GROUP, MODEL_GROUP}  # groups of the config store, no folder
    global_files = [CONF / "config.yaml", *CONF.glob("*.yaml")]
    for d in groups:
        for f in d.glob("*.yaml"):
            if "@package _global_" in f.read_text()[:200]:
                global_files.append(f)
            else:
                known.setdefault(d.name, set()).update(k for k in _yaml(f) if k != "defaults")
    for e in DATASETS:  # the keys every dataset shares, declared in datasets/registry.py (stored_configs.py)
        known.setdefault("dataset", set()).update(dataset_node(e.name))
    for f in global_files:
        for k, v in _yaml(f).items():
            if k == "defaults":
                continue
            known[""].add(k)
            if isinstance(v, dict):
                known.setdefault(k, set()).update(v)
    return known


def unknown_key_problems(cfg: DictConfig, schemas: dict[str, type]) -> list[str]:
    """One line per top-level key, or key of a section, that no file under conf/ (nor a schema) declares."""
    from dataclasses import fields

    known = dict(declared_keys())
    known[MODEL_GROUP] = known.get(MODEL_GROUP, set()).union(*model_presets().values())  # the registry, as it is now
    problems = []
    for key in cfg.keys():
        key = str(key)
        if key not in known[""]:
            problems.append(f"{key}: unknown key (no file under conf/ declares it); check the spelling")
            continue
        node = cfg.get(key)
        if key in OPEN_SECTIONS or not isinstance(node, DictConfig):
            continue
        allowed = known.get(key, set()) | ({f.name for f in fields(schemas[key])} if key in schemas else set())
        for sub in node.keys():
            if str(sub) not in allowed:
                problems.append(f"{key}.{sub}: unknown key; {key} takes {', '.join(sorted(allowed))}")
    return problems


def folder_root(root: str) -> Path:
    """A loader's ``root`` as FolderDataset resolves it (relative to the working directory, else to the repo)."""
    p = Path(os.path.expanduser(root))
    return p if p.is_dir() or p.is_absolute() or not (REPO / p).is_dir() else REPO / p


def path_problems(resolved: dict[str, Any]) -> list[str]:
    """A folder dataset whose root does not exist (was an InstantiationException naming neither)."""
    loader = resolved.get("dataset.loader") or {}
    root, target = loader.get("root"), str(loader.get("_target_", ""))
    if target.endswith("FolderDataset") and isinstance(root, str) and root != "???" and not folder_root(root).is_dir():
        return [f"dataset.loader.root={root}: no such folder (build a dataset first, python run.py task=build "
                f"dataset=..., or point dataset.loader.root at one)"]
    return []


def missing_keys(node: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose value is ``???``, found without resolving any interpolation (a value that cannot
    resolve, e.g. ``${.native.${.weights}.side}`` after ``method.weights=nope``, is its own problem line)."""
    out = []
    for key, _ in node.items_ex(resolve=False) if isinstance(node, DictConfig) else ():
        child = node._get_node(key)
        if child._is_missing():
            out.append(f"{prefix}{key}")
        elif isinstance(child, DictConfig) and not child._is_interpolation():
            out += missing_keys(child, f"{prefix}{key}.")
    return out
