"""Entry point: `python run.py [group=option ...] [key=value ...]`, `python run.py -m key=a,b` for sweeps.

Composes conf/ with Hydra, validates the whole config (experiments/config_schema.py: one line and a non-zero exit
per problem, before any work) and hands it to the task it names (experiments/tasks.py). Every error becomes one line on stderr;
`debug=true` (or VIDEOSHOP_DEBUG=1) shows the traceback instead.
"""

import os
import sys

os.environ.setdefault("WANDB_SILENT", "true")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from videoshop import _compat  # noqa: E402,F401

from experiments.methods import register_resolvers  # noqa: E402  (${method_set:...} in presets, before composing)


SMOKE_SWITCH = {"smoke=true": "smoke=on", "smoke=false": "smoke=off"}


def smoke_switch(argv: list[str]) -> list[str]:
    """``smoke=true|false`` on the command line selects the ``smoke`` config group's ``on``/``off`` option
    (conf/smoke/): Hydra parses a bare ``true`` as a bool, which cannot name a config group option."""
    return [SMOKE_SWITCH.get(a.lower(), a) for a in argv]


def _debug(cfg: DictConfig) -> bool:
    return bool(cfg.get("debug", False) is True or os.environ.get("VIDEOSHOP_DEBUG", "") not in ("", "0"))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    from experiments.loggers import set_privacy_env

    set_privacy_env((cfg.get("logger") or {}).get("mode")
                    if (cfg.get("logger") or {}).get("name") == "wandb" else None)  # before any W&B client loads
    from experiments.errors import ANTICIPATED, ConfigErrors
    from experiments.job import job_label
    from experiments.tasks import main_task

    try:
        main_task(cfg, job_label(cfg))  # validates the whole config first (experiments/config_schema.py)
    except ConfigErrors as e:  # one line per problem, nothing started
        if _debug(cfg):
            raise
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        raise SystemExit(2) from None
    except ANTICIPATED as e:  # one line, no traceback: the message names the key or file to fix
        if _debug(cfg):
            raise
        raise SystemExit(f"error: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
    except Exception as e:  # noqa: BLE001  (a bug: one line, the traceback on request)
        if _debug(cfg):
            raise
        msg = str(e).strip().splitlines()
        raise SystemExit(f"error: internal {type(e).__name__}: {msg[0] if msg else ''} "
                         f"(rerun with debug=true for the traceback)") from None


if __name__ == "__main__":
    register_resolvers()
    sys.argv = smoke_switch(sys.argv)
    main()
