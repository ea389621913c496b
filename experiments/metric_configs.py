"""The metric sets of eval/registry.py as Hydra's ``metrics`` config group: ``metrics=paper``, ``metrics=paper_tiny``,
``metrics=default``, ``metrics=none`` (and every set registered later, e.g. by a plugin module) compose the set's
nodes, which per-key overrides then change like any config (``metrics.clip_tgt.model=ViT-L-14``,
``~metrics.tifa``). Kept equal to the registry: stored again after every change of METRICS or METRIC_SETS.
Imported by ``experiments/__init__.py``, so any code that uses the experiments package composes with them."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from eval.registry import METRIC_SETS, METRICS, config_names, set_config

GROUP = "metrics"
_stored: set[str] = set()


def store_metric_configs() -> None:
    """Put every ``metrics=`` choice into Hydra's config store (and take out the ones no longer registered)."""
    cs = ConfigStore.instance()
    names = config_names()
    for stale in _stored - set(names):
        cs.repo.get(GROUP, {}).pop(f"{stale}.yaml", None)
    for name in names:  # a set naming an unregistered metric fails here, at its registration: one line naming it
        cs.store(group=GROUP, name=name, node=set_config(name))
        _stored.add(name)


METRICS.subscribe(store_metric_configs)
METRIC_SETS.subscribe(store_metric_configs)
