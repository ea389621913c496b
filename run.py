"""Entry point: `python run.py [group=option ...] [key=value ...]`, `python run.py -m key=a,b` for sweeps.

Composes conf/ with Hydra, validates the whole config (experiments/config_schema.py: one line and a non-zero exit
per problem, before any work) and hands it to the task it names (experiments/tasks.py). Every error becomes one line on stderr;
`debug=true` (or VIDEOSHOP_DEBUG=1) shows the traceback instead.
"""

import logging
import os
import sys

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: idle threads sleep (experiments/cpus.py)

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from videoshop import _compat  # noqa: E402,F401

from videoshop_bench.experiments.methods import register_resolvers  # noqa: E402  (${method_set:...} in presets, before composing)


SMOKE_SWITCH = {"smoke=true": "smoke=on", "smoke=false": "smoke=off"}


def smoke_switch(argv: list[str]) -> list[str]:
    """``smoke=true|false`` on the command line selects the ``smoke`` config group's ``on``/``off`` option
    (conf/smoke/): Hydra parses a bare ``true`` as a bool, which cannot name a config group option."""
    return [SMOKE_SWITCH.get(a.lower(), a) for a in argv]


CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conf")


def group_options(group: str, argv: list[str]) -> list[str]:
    """The options of config group ``group``: conf/<group>/*.yaml, the same under each ``hydra.searchpath`` folder
    given on the command line, and the nodes registered in Hydra's ConfigStore (methods without YAML, metric sets)."""
    from hydra.core.config_store import ConfigStore

    roots = [CONF] + [p.strip().removeprefix("file://") for a in argv if a.startswith("hydra.searchpath=")
                      for p in a.split("=", 1)[1].strip("[]").split(",") if p.strip().startswith(("file://", "/"))]
    names = {f[:-5] for r in roots if os.path.isdir(os.path.join(r, group))
             for f in os.listdir(os.path.join(r, group)) if f.endswith(".yaml")}
    stored = ConfigStore.instance().repo
    for part in group.split("/"):
        stored = stored.get(part, {}) if isinstance(stored, dict) else {}
    names |= {k[:-5] for k in stored if isinstance(k, str) and k.endswith(".yaml")}
    return sorted(names)


STORED_GROUPS = {"metrics": "the metric sets of eval/registry.py"}  # groups with no conf/ folder


def is_group(key: str) -> bool:
    """Whether ``key`` names a config group: a folder of conf/, or a group of Hydra's ConfigStore (``metrics``: the
    metric sets of eval/registry.py, experiments/stored_configs.py)."""
    from hydra.core.config_store import ConfigStore

    return os.path.isdir(os.path.join(CONF, key)) or isinstance(ConfigStore.instance().repo.get(key), dict)


def unknown_group_options(argv: list[str]) -> list[str]:
    """One line per ``group=option`` naming an option that the group does not hold (Hydra's own message is
    11-27 lines); sweeps (``method=a,b``) are checked value by value, interpolations and Hydra's groups skipped."""
    problems = []
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        if key.startswith("hydra") or not is_group(key) or any(c in value for c in "${}[]()*"):
            continue
        options = group_options(key, argv)
        for v in filter(None, value.split(",")):
            if v not in options and v != "null":
                where = f"conf/{key}/" if os.path.isdir(os.path.join(CONF, key)) else STORED_GROUPS.get(key, key)
                problems.append(f"{key}={v}: no option {v} in config group {key} ({where}); choose one of "
                                f"{', '.join(options)}")
    return problems


def local_sweep_jobs(argv: list[str]) -> int:
    """How many jobs ``-m hydra/launcher=local`` starts at once: the product of the sweep overrides' lengths (each
    job then takes its share of the CPUs, experiments/cpus.py); 1 for anything else."""
    if not {"-m", "--multirun"} & set(argv) or "hydra/launcher=local" not in argv:
        return 1
    from hydra.core.override_parser.overrides_parser import OverridesParser

    n = 1
    try:
        for o in OverridesParser.create().parse_overrides([a for a in argv if "=" in a and not a.startswith("-")]):
            if o.is_sweep_override():
                n *= max(1, len(list(o.sweep_string_iterator())))
    except Exception:  # noqa: BLE001  (Hydra reports a bad override itself)
        return 1
    return n


def _positive_int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _launcher_cpus():
    """This job's ``hydra.launcher.cpus_per_task`` (None outside a launcher or when unset)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return _positive_int((HydraConfig.get().get("launcher") or {}).get("cpus_per_task"))
    except ValueError:  # no Hydra config (a library call)
        return None


def _debug(cfg: DictConfig) -> bool:
    return bool(cfg.get("debug", False) is True or os.environ.get("VIDEOSHOP_DEBUG", "") not in ("", "0"))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    from videoshop_bench.experiments.loggers import set_privacy_env

    set_privacy_env((cfg.get("logger") or {}).get("mode")
                    if (cfg.get("logger") or {}).get("name") == "wandb" else None)  # before any W&B client loads
    from videoshop_bench.experiments.errors import ANTICIPATED, ConfigErrors
    from videoshop_bench.experiments.cpus import configure_threads
    from videoshop_bench.experiments.job import job_label
    from videoshop_bench.experiments.tasks import main_task

    logging.getLogger("run").info("cpus: %s", configure_threads(_positive_int(cfg.get("threads")), _launcher_cpus()))

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
    bad_groups = unknown_group_options(sys.argv[1:])
    if bad_groups:  # one line each, before Hydra composes
        for line in bad_groups:
            print(f"error: {line}", file=sys.stderr)
        raise SystemExit(2)
    os.environ.setdefault("VIDEOSHOP_LOCAL_JOBS", str(local_sweep_jobs(sys.argv[1:])))
    main()
