"""What distinguishes one job of a sweep from the others, read from Hydra's record of its command-line overrides:
``job_overrides`` as data (stored in every sample's record; tables and plots read it), ``job_label`` as the name a
table row shows (``videoshop[threshold=2]``). Outside a Hydra job (a config composed in-process) both fall back to
nothing: no overrides, the method's name."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def _task_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:  # no Hydra job (compose API, tests)
        return []


def _excluded_keys() -> set[str]:
    """``hydra.job.config.override_dirname.exclude_keys``: overrides that do not name a job's run folder."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return set(HydraConfig.get().job.config.override_dirname.exclude_keys)
    except ValueError:
        return set()


def job_overrides(cfg: DictConfig) -> dict[str, Any]:
    """This job's ``key=value`` overrides that name its run folder, each with the value the run uses (typed, as
    resolved in ``cfg``), e.g. ``{"method.threshold": 2.0}``. Config group choices (``method=bdia``: the record's
    own ``method`` field), deletions and the keys Hydra's ``override_dirname`` excludes are left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(_task_overrides())
    excluded = _excluded_keys()
    out: dict[str, Any] = {}
    for o in parsed:
        key = o.key_or_group
        if o.is_delete() or "." not in key or key in excluded:
            continue
        value = OmegaConf.select(cfg, key, default=None)
        out[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return dict(sorted(out.items()))


def job_label(cfg: DictConfig) -> str:
    """Method name plus this job's ``method.*`` overrides as typed, e.g. ``'videoshop[threshold=2]'``."""
    own = sorted(o.split(".", 1)[1] for o in _task_overrides() if o.startswith("method.") and "=" in o)
    return f"{cfg.method.name}[{','.join(own)}]" if own else cfg.method.name
