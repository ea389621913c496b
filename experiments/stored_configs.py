"""Registry entries as Hydra config-store nodes, kept equal to their registries (stored again after every change).

- The metric sets of eval/registry.py are Hydra's ``metrics`` group: ``metrics=paper``, ``metrics=paper_tiny``,
  ``metrics=default``, ``metrics=none`` (and every set registered later, e.g. by a plugin module) compose the set's
  nodes, which per-key overrides then change like any config (``metrics.clip_tgt.model=ViT-L-14``, ``~metrics.tifa``).
- The datasets of datasets/registry.py are ``dataset_entry/<name>``, which ``conf/dataset/<name>.yaml`` names in
  its defaults (``/dataset_entry/<name>@_here_``) and adds its own values to.
- The model families of videoshop/families.py are the ``model`` group and its ``model/kind`` subgroup:
  ``model=wan21_i2v model/kind=tiny`` composes the family's tiny mapping (``model_entry/<family>/<kind>``, declared
  once in the family's entry); ``model=<name>`` for every mapping's own name (``svd``, ``svd_xt``, ``tiny``,
  ``toy``, ``wan21_i2v_tiny``, ...) selects its family with that kind, so ``model=tiny model/kind=random`` is
  ``svd_random``. A family without the kind asked for is Hydra's one error listing the family's kinds.

Imported by ``experiments/__init__.py``, so any code that uses the experiments package composes with them."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from videoshop_bench.datasets.registry import DATASETS, ENTRY_GROUP, dataset_node
from videoshop_bench.eval.registry import METRIC_SETS, METRICS, config_names, set_config
from videoshop.families import FAMILIES, model_mapping

GROUP = "metrics"
MODEL_GROUP, KIND_GROUP, MODEL_ENTRY_GROUP = "model", "model/kind", "model_entry"
_stored: dict[str, set[str]] = {}


def _store(group: str, nodes: dict[str, dict], package: str | None = None) -> None:
    """Put ``nodes`` into the config store's ``group`` (and take out the ones this module stored before and no
    longer has)."""
    cs = ConfigStore.instance()
    for stale in _stored.get(group, set()) - set(nodes):
        _remove(cs, group, stale)
    for name, node in nodes.items():
        cs.store(group=group, name=name, node=node, package=package)
    _stored[group] = set(nodes)


def _remove(cs: ConfigStore, group: str, name: str) -> None:
    folder = cs.repo
    for part in group.split("/"):
        folder = folder.get(part, {})
    folder.pop(f"{name}.yaml", None)


def store_metric_configs() -> None:
    """Every ``metrics=`` choice (a set naming an unregistered metric fails here, at its registration)."""
    _store(GROUP, {name: set_config(name) for name in config_names()})


def store_dataset_entries() -> None:
    """Every dataset entry's node, for the defaults of conf/dataset/<name>.yaml."""
    _store(ENTRY_GROUP, {e.name: dataset_node(e.name) for e in DATASETS})


def model_choice_node(family: str, kind: str) -> dict:
    """``model=<name>``: the family's entry at ``model/kind`` (default ``kind``), which ``model/kind=`` changes."""
    return {"defaults": [{"kind": kind}, {f"/{MODEL_ENTRY_GROUP}/{family}@_here_": "${model/kind}"}, "_self_"]}


def store_model_configs() -> None:
    """Every family's mappings (``model_entry/<family>/<kind>``), every ``model=`` name and every ``model/kind``."""
    choices, kinds = {}, set()
    for fam in FAMILIES:
        family_kinds = fam.kinds()
        _store(f"{MODEL_ENTRY_GROUP}/{fam.name}", {k: model_mapping(fam.name, k) for k in family_kinds})
        choices[fam.name] = model_choice_node(fam.name, next(iter(family_kinds)))
        choices.update({fam.model_name(k): model_choice_node(fam.name, k) for k in family_kinds})
        kinds |= set(family_kinds)
    for group in [g for g in _stored if g.startswith(f"{MODEL_ENTRY_GROUP}/")]:
        if group.split("/", 1)[1] not in FAMILIES:
            _store(group, {})
    _store(MODEL_GROUP, choices)
    _store(KIND_GROUP, {k: {} for k in sorted(kinds)}, package="_global_")  # a choice only: the entry holds values


METRICS.subscribe(store_metric_configs)
METRIC_SETS.subscribe(store_metric_configs)
DATASETS.subscribe(store_dataset_entries)
FAMILIES.subscribe(store_model_configs)
