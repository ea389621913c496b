"""What `python run.py` does with a composed config: validate all of it before any work, then run its ``task``.

Each task is one plain function of the config, in its own module: edit | reconstruct (experiments/runner.py),
build (experiments/build.py), train_toy (experiments/train_toy.py), regression (experiments/regression.py),
trajectory (experiments/trajectory.py).
"""

from __future__ import annotations

from typing import Optional

from omegaconf import DictConfig

from .runner import ConfigErrors, Runner


def main_task(cfg: DictConfig, label: Optional[str] = None):
    """Validate the whole config (experiments/config_schema.py; ConfigErrors lists every problem), then run it."""
    from .config_schema import validate_config

    problems = validate_config(cfg)
    if problems:
        raise ConfigErrors(problems)
    if cfg.task in ("edit", "reconstruct"):
        return Runner(cfg, label).run()
    if cfg.task == "build":
        from .build import run_build

        return run_build(cfg)
    if cfg.task == "regression":
        from .regression import run_regression

        return run_regression(cfg)
    if cfg.task == "train_toy":
        from .train_toy import run_train

        return run_train(cfg)
    if cfg.task == "trajectory":
        from .trajectory import run_trajectory

        return run_trajectory(cfg)
    raise ValueError(f"task={cfg.task!r}: expected edit, reconstruct, build, train_toy, regression or trajectory")
