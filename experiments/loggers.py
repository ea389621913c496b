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


MEDIA_COLUMNS = (("source", "source_video"), ("first_frame", "edited_first_frame"), ("mask", "mask"),
                 ("output", "output_video"))


class NullLogger:
    """No tracker: accepts a tracker's arguments and logs nothing."""

    def __init__(self, **_: Any):
        pass

    def log_tables(self, tables: dict[str, pd.DataFrame], media: dict[str, dict[str, Any]],
                   plots: Optional[dict[str, Any]] = None, prefix: str = "") -> None:
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

    def log_tables(self, tables: dict[str, pd.DataFrame], media: dict[str, dict[str, Any]],
                   plots: Optional[dict[str, Any]] = None, prefix: str = "") -> None:
        """Summary (means with their interval columns), per-edit-type, paired-difference and protocol (each metric's
        direction and protocol) tables; the per-sample table with its media stored in the run (source video,
        edited first frame, mask, output video) beside every metric; plots (PNG paths) as images."""
        import wandb

        for key in ("summary", "by_edit_type", "paired", "protocol"):
            if key in tables and tables[key] is not None and not tables[key].empty:
                self.run.log({prefix + key: wandb.Table(dataframe=_plain(tables[key]))})
        df = tables.get("results")
        if df is not None and not df.empty:
            self.run.log({prefix + "samples": samples_table(self.run, df, media if self.log_videos else {}, prefix)})
        for name, path in (plots or {}).items():
            self.run.log({f"{prefix}plots/{name}": wandb.Image(str(path))})

    def finish(self) -> None:
        self.run.finish()


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype(object).where(df.notna(), None)


def samples_table(run, df: pd.DataFrame, media: dict[Any, dict[str, Any]], prefix: str = ""):
    """A wandb.Table, one row per sample: info, the media as wandb.Video / wandb.Image cells, the path of each
    stored media file inside the run (``<column>_file``, relative to the run's files/ folder), then every column of
    the per-sample results. ``media`` is keyed by sample id, or by (label, sample id) for a combined table.

    Each row's media are first logged as one step under ``<prefix>sample_media/``: that copies them into the run
    (files/media/videos, files/media/images), so an offline run holds the files themselves (a table cell alone is
    serialised offline as the bare word "Video")."""
    import wandb

    plain = _plain(df)
    rest = [c for c in df.columns if c not in ("label", "sample_id")]
    columns = (["label", "sample_id"] + [c for _, c in MEDIA_COLUMNS] + [f"{c}_file" for _, c in MEDIA_COLUMNS]
               + rest)
    rows = []
    for (_, r), (_, p) in zip(df.iterrows(), plain.iterrows()):
        files = media.get((r["label"], r["sample_id"])) or media.get(r["sample_id"]) or {}
        cells: dict[str, Any] = {}
        for kind, col in MEDIA_COLUMNS:
            f = files.get(kind)
            if f is not None and Path(f).is_file():
                cells[col] = wandb.Video(str(f), format="mp4") if str(f).endswith(".mp4") else wandb.Image(str(f))
        if cells:
            run.log({f"{prefix}sample_media/{k}": v for k, v in cells.items()})
        stored = [os.path.relpath(cells[c]._path, run.dir) if c in cells else None for _, c in MEDIA_COLUMNS]
        rows.append([p["label"], p["sample_id"], *[cells.get(c) for _, c in MEDIA_COLUMNS], *stored,
                     *[p[c] for c in rest]])
    return wandb.Table(columns=columns, data=rows)


def make_logger(cfg: Optional[dict[str, Any]], run_config: Optional[dict] = None, default_dir: Optional[str] = None):
    """The logger conf/logger/*.yaml names with ``_target_`` (its other keys are the class's arguments; ``name`` is
    the option's label), given the run's config and its output folder as the default ``dir``."""
    if not cfg:
        return NullLogger()
    from hydra.utils import get_class

    kwargs = {k: v for k, v in cfg.items() if k not in ("name", "_target_")}
    kwargs["dir"] = kwargs.get("dir") or default_dir
    if "_target_" not in cfg:
        raise ValueError(f"logger.name={cfg.get('name')}: no logger._target_ (e.g. videoshop_bench.experiments.loggers.WandbLogger)")
    return get_class(cfg["_target_"])(config=run_config, **kwargs)


def multirun_group(cfg: Optional[dict[str, Any]], run_cfg) -> Optional[dict[str, Any]]:
    """Inside a Hydra multirun, every job's W&B run joins one group, ``<task>/<sweep_name>`` (unless logger.group
    is set), where the combined run of the sweep also goes."""
    if not cfg or cfg.get("name") != "wandb" or cfg.get("group"):
        return cfg
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return cfg
    except Exception:  # noqa: BLE001  (no Hydra: a plain run)
        return cfg
    return {**cfg, "group": f"{run_cfg.task}/{run_cfg.get('sweep_name', 'sweep')}"}
