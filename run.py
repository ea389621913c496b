"""Entry point: `python run.py [group=option ...] [key=value ...]`, `python run.py -m key=a,b` for sweeps.

Composes conf/ with Hydra and hands the config to experiments.runner; no logic of its own.
"""

import os
import sys

os.environ.setdefault("WANDB_SILENT", "true")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from videoshop import _compat  # noqa: E402,F401


def job_label(cfg: DictConfig) -> str:
    """Method name plus this job's method.* overrides, e.g. 'videoshop[threshold=2]'."""
    from hydra.core.hydra_config import HydraConfig

    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:
        return cfg.method.name
    own = sorted(o.split(".", 1)[1] for o in overrides if o.startswith("method.") and "=" in o)
    return f"{cfg.method.name}[{','.join(own)}]" if own else cfg.method.name


SMOKE_SWITCH = {"smoke=true": "smoke=on", "smoke=false": "smoke=off"}


def smoke_switch(argv: list[str]) -> list[str]:
    """``smoke=true|false`` on the command line selects the ``smoke`` config group's ``on``/``off`` option
    (conf/smoke/): Hydra parses a bare ``true`` as a bool, which cannot name a config group option."""
    return [SMOKE_SWITCH.get(a.lower(), a) for a in argv]


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    from experiments.runner import ConfigError, main_task
    from videoshop.models import MissingWeightsError

    try:
        main_task(cfg, job_label(cfg))
    except (ConfigError, MissingWeightsError) as e:  # one line, no traceback: the message says what to set
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    sys.argv = smoke_switch(sys.argv)
    main()
