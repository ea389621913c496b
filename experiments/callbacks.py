"""Hydra callback: at the end of a multirun, combine every job's records into one table."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback

from .merge import merge_run, read_protocol, set_metric_frame, sweep_run_dirs
from .store import ResultStore, atomic_write_text
from .tables import records_to_frame, write_tables

log = logging.getLogger(__name__)

JOBS = ".jobs"  # <sweep dir>/.jobs/<job num>.json: each job's output folder, written by the job's own process


def combine_runs(job_dirs: list[Path], out_dir: Path, paper_table: str | None = None) -> dict[str, pd.DataFrame]:
    """Concatenate the records of several runs and write combined_* tables into ``out_dir``; with ``paper_table``
    (e.g. ``table2``) also ``combined_vs_paper.{csv,md}``: ours beside the paper's numbers.

    Set metrics (FVD) are computed per run from the features stored with its records (so a run written by
    several shards or workers counts all its samples); a sharded run's own tables are merged first.
    """
    records, set_frames, protocol = [], [], {}
    for d in dict.fromkeys(Path(p) for p in job_dirs):  # shards of one config share a folder: once each
        if (d / "shards").is_dir():
            merge_run(d)
        store = ResultStore(d)
        run_records = list(store.records())
        records.extend(run_records)
        set_df, _ = set_metric_frame(run_records, store.load_features)
        if set_df.empty and (d / "set_metrics.csv").is_file():  # a run from before features were stored
            set_df = pd.read_csv(d / "set_metrics.csv", index_col="label")
        if not set_df.empty:
            set_frames.append(set_df)
        protocol.update(read_protocol(d))
    set_df = pd.concat(set_frames) if set_frames else None
    tables = write_tables(records_to_frame(records), out_dir, protocol, set_df, prefix="combined_")
    log.info("combined table of %d runs: %s\n%s", len(job_dirs), out_dir / "combined_summary.md",
             tables["summary"].to_string(index=False))
    if paper_table:
        from .paper import write_paper_comparison

        summary = pd.read_csv(out_dir / "combined_summary.csv")
        vs = write_paper_comparison(summary, paper_table, out_dir)
        tables["vs_paper"] = vs
        log.info("ours / paper / difference (%s): %s\n%s", paper_table, out_dir / "combined_vs_paper.md",
                 vs.to_string(index=False))
    return tables


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
            logger = OmegaConf.to_container(config.logger, resolve=True) if config.get("logger") else None
            report_multirun(dirs, out, tables, logger, f"{config.task}/{config.get('sweep_name', 'sweep')}")
