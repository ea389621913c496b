"""Registry entries as Hydra config-store nodes, kept equal to their registries (stored again after every change).

- The metric sets of eval/registry.py are Hydra's ``metrics`` group: ``metrics=paper``, ``metrics=paper_tiny``,
  ``metrics=default``, ``metrics=none`` (and every set registered later, e.g. by a plugin module) compose the set's
  nodes, which per-key overrides then change like any config (``metrics.clip_tgt.model=ViT-L-14``, ``~metrics.tifa``).
- The datasets of datasets/registry.py are ``dataset_entry/<name>``, which ``conf/dataset/<name>.yaml`` names in
  its defaults (``/dataset_entry/<name>@_here_``) and adds its own values to.

Imported by ``experiments/__init__.py``, so any code that uses the experiments package composes with them."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from videoshop_bench.datasets.registry import DATASETS, ENTRY_GROUP, dataset_node
from videoshop_bench.eval.registry import METRIC_SETS, METRICS, config_names, set_config

GROUP = "metrics"
_stored: dict[str, set[str]] = {GROUP: set(), ENTRY_GROUP: set()}


def _store(group: str, nodes: dict[str, dict]) -> None:
    """Put ``nodes`` into the config store's ``group`` (and take out the ones this module stored before and no
    longer has)."""
    cs = ConfigStore.instance()
    for stale in _stored[group] - set(nodes):
        cs.repo.get(group, {}).pop(f"{stale}.yaml", None)
    for name, node in nodes.items():
        cs.store(group=group, name=name, node=node)
    _stored[group] = set(nodes)


def store_metric_configs() -> None:
    """Every ``metrics=`` choice (a set naming an unregistered metric fails here, at its registration)."""
    _store(GROUP, {name: set_config(name) for name in config_names()})


def store_dataset_entries() -> None:
    """Every dataset entry's node, for the defaults of conf/dataset/<name>.yaml."""
    _store(ENTRY_GROUP, {e.name: dataset_node(e.name) for e in DATASETS})


METRICS.subscribe(store_metric_configs)
METRIC_SETS.subscribe(store_metric_configs)
DATASETS.subscribe(store_dataset_entries)
