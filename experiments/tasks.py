"""What `python run.py` does with a composed config: validate all of it before any work, then run its ``task``.

Each task is one plain function ``fn(cfg, label=None)`` in its own module, named by the config's ``tasks`` table
(conf/config.yaml: ``tasks.<name>._target_``): edit | reconstruct (experiments/runner.py), build
(experiments/build.py), train_toy (experiments/train_toy.py), regression (experiments/regression.py), trajectory
(experiments/trajectory.py). A new task is one function plus one entry in that table.
"""

from __future__ import annotations

from typing import Optional

from hydra.utils import instantiate
from omegaconf import DictConfig

from .errors import ConfigErrors


def main_task(cfg: DictConfig, label: Optional[str] = None):
    """Validate the whole config (experiments/config_schema.py; ConfigErrors lists every problem), then run it."""
    from .config_schema import validate_config

    problems = validate_config(cfg)
    if problems:
        raise ConfigErrors(problems)
    return instantiate(cfg.tasks[cfg.task])(cfg, label)
