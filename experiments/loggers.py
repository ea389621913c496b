"""Result loggers: W&B (offline by default; a wandb.Table of per-sample metrics with the edited videos, and the
summary tables) or none."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import pandas as pd

log = logging.getLogger(__name__)


def set_privacy_env(mode: Optional[str]) -> None:
    """Nothing leaves the machine unless asked: W&B runs offline unless ``logger.mode=online`` (``disabled`` stays
    disabled), whatever WANDB_MODE said; its error reporting and the hub's telemetry are off. Call before the W&B
    client is imported or initialised (run.py does, first thing)."""
    os.environ["WANDB_MODE"] = mode if mode in ("online", "disabled") else "offline"
    if mode != "online":
        os.environ["WANDB_ERROR_REPORTING"] = "false"
        os.environ["WANDB_DISABLE_CODE"] = "true"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


class NullLogger:
    def log_tables(self, tables: dict[str, pd.DataFrame], video_paths: dict[str, str]) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbLogger:
    def __init__(self, project: str = "videoshop-bench", mode: str = "offline", dir: Optional[str] = None,
                 name: Optional[str] = None, group: Optional[str] = None, entity: Optional[str] = None,
                 config: Optional[dict[str, Any]] = None, log_videos: bool = True):
        if mode not in ("offline", "online", "disabled"):
            raise ValueError(f"logger.mode={mode!r}: expected offline, online or disabled")
        set_privacy_env(mode)  # before the client loads its settings
        import wandb

        if dir:
            Path(dir).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        self.log_videos = log_videos
        self.run = wandb.init(project=project, mode=mode, dir=dir, name=name, group=group, entity=entity,
                              config=config, reinit="finish_previous")

    def log_tables(self, tables: dict[str, pd.DataFrame], video_paths: dict[str, str]) -> None:
        import wandb

        for key in ("summary", "by_edit_type"):
            if key in tables:
                self.run.log({key: wandb.Table(dataframe=tables[key].astype(object).where(tables[key].notna(), None))})
        df = tables.get("results")
        if df is None or df.empty:
            return
        df = df.astype(object).where(df.notna(), None)
        if self.log_videos:
            df = df.assign(video=[wandb.Video(video_paths[s], format="mp4") if s in video_paths else None
                                  for s in df["sample_id"]])
        self.run.log({"samples": wandb.Table(dataframe=df)})

    def finish(self) -> None:
        self.run.finish()


def make_logger(cfg: Optional[dict[str, Any]], run_config: Optional[dict] = None, default_dir: Optional[str] = None):
    """From conf/logger/*.yaml: ``name: none`` or ``name: wandb`` with WandbLogger kwargs."""
    if not cfg or cfg.get("name", "none") == "none":
        return NullLogger()
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    kwargs["dir"] = kwargs.get("dir") or default_dir
    return WandbLogger(config=run_config, **kwargs)
