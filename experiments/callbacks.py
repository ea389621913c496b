"""Hydra callback: at the end of a multirun, combine every job's records into one table."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from .merge import combine_for_task, combine_runs, sweep_run_dirs
from videoshop.files import atomic_write_text

log = logging.getLogger(__name__)

JOBS = ".jobs"  # <sweep dir>/.jobs/<job num>.json: each job's output folder, written by the job's own process


class CombineTables(Callback):
    """Collects each job's output folder and, at the end of the multirun, writes one combined table.

    Jobs may run in other processes or on other machines (hydra/launcher=submitit_local, submitit_slurm): there
    ``on_job_end`` runs in the job's process, on a copy of this callback, so each job also leaves its folder in
    ``<sweep dir>/.jobs/<job num>.json``, which the launching process reads in ``on_multirun_end``.
    """

    def __init__(self) -> None:
        self.job_dirs: list[Path] = []

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self.job_dirs = []
        shutil.rmtree(Path(config.hydra.sweep.dir) / JOBS, ignore_errors=True)

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        try:
            hydra_cfg = job_return.hydra_cfg.hydra
            out = Path(hydra_cfg.runtime.output_dir)
            self.job_dirs.append(out)
            jobs = Path(hydra_cfg.sweep.dir) / JOBS
            jobs.mkdir(parents=True, exist_ok=True)
            atomic_write_text(jobs / f"{hydra_cfg.job.num}.json", json.dumps({"output_dir": str(out)}))
        except Exception as e:  # noqa: BLE001  (a single run, or a job that failed before Hydra set it up)
            log.debug("CombineTables: no job folder recorded (%s)", e)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        dirs = list(dict.fromkeys(self.job_dirs + sweep_run_dirs(config.hydra.sweep.dir)))
        if dirs:
            from omegaconf import OmegaConf

            from .report import report_multirun

            out = Path(config.hydra.sweep.dir)
            tables = combine_runs(dirs, out, config.get("paper_table"))
            combine_for_task(config.get("task"), dirs, out)  # e.g. first_frame_editors' table and plot over editors
            logger = OmegaConf.to_container(config.logger, resolve=True) if config.get("logger") else None
            report_multirun(dirs, out, tables, logger, f"{config.get('task', 'edit')}/{config.get('sweep_name', 'sweep')}")
