"""What `python run.py` does with a composed config: validate all of it before any work, then run its ``task``
(the function of its entry in experiments/task_registry.py ``TASKS``)."""

from __future__ import annotations

from typing import Optional

from omegaconf import DictConfig

from videoshop.registry import load_object

from .config_schema import validate_config
from .errors import ConfigErrors
from .task_registry import TASKS


def main_task(cfg: DictConfig, label: Optional[str] = None):
    """Validate the whole config (experiments/config_schema.py; ConfigErrors lists every problem), then run it."""
    problems = validate_config(cfg)
    if problems:
        raise ConfigErrors(problems)
    run = TASKS.get(cfg.task).run
    return (load_object(run) if isinstance(run, str) else run)(cfg, label)
