"""Hydra callback: at the end of a multirun, combine every job's records into one table."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback

from .store import ResultStore
from .tables import records_to_frame, write_tables

log = logging.getLogger(__name__)


def combine_runs(job_dirs: list[Path], out_dir: Path) -> dict[str, pd.DataFrame]:
    """Concatenate the records (and set metrics) of several runs and write combined_* tables into ``out_dir``."""
    records, set_frames, protocol = [], [], {}
    for d in job_dirs:
        records.extend(ResultStore(d).records())
        if (d / "set_metrics.csv").is_file():
            set_frames.append(pd.read_csv(d / "set_metrics.csv", index_col="label"))
        if (d / "protocol.json").is_file():
            protocol.update(json.loads((d / "protocol.json").read_text()))
    set_df = pd.concat(set_frames) if set_frames else None
    tables = write_tables(records_to_frame(records), out_dir, protocol, set_df, prefix="combined_")
    log.info("combined table of %d runs: %s\n%s", len(job_dirs), out_dir / "combined_summary.md",
             tables["summary"].to_string(index=False))
    return tables


class CombineTables(Callback):
    def __init__(self) -> None:
        self.job_dirs: list[Path] = []

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self.job_dirs = []

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        try:
            self.job_dirs.append(Path(job_return.hydra_cfg.hydra.runtime.output_dir))
        except Exception:  # noqa: BLE001
            pass

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        if self.job_dirs:
            from omegaconf import OmegaConf

            from .report import report_multirun

            out = Path(config.hydra.sweep.dir)
            tables = combine_runs(self.job_dirs, out)
            logger = OmegaConf.to_container(config.logger, resolve=True) if config.get("logger") else None
            report_multirun(self.job_dirs, out, tables, logger, f"{config.task}/{config.get('sweep_name', 'sweep')}")
