"""What a run leaves to look at, after its tables: media per sample, ``gallery.html`` (experiments/gallery.py),
plots (experiments/plots.py), and for a multirun one combined W&B run in the sweep's group."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import pandas as pd

from .gallery import read_records, write_gallery, write_run_media
from .merge import read_protocol
from .plots import write_plots, write_sigma_sweep_plot, write_time_and_cost_plots

log = logging.getLogger(__name__)


def report_run(out: Path, ids: Iterable[str], load: Callable[[str], Any]) -> tuple[dict, dict]:
    """After a run's tables: media per sample, ``gallery.html`` and plots; returns (media, plots) for the logger.
    Never raises: the results are already written."""
    media, plots = {}, {}
    try:
        media = write_run_media(Path(out) / "samples", ids, load)
        write_gallery([out], Path(out) / "gallery.html", title=f"videoshop-bench: {Path(out).name}")
        tables = {k: pd.read_csv(Path(out) / f"{k}.csv") for k in ("summary", "by_edit_type")
                  if (Path(out) / f"{k}.csv").is_file()}
        plots = write_plots(tables, out)
        plots |= write_time_and_cost_plots([out], tables.get("summary"), out, read_protocol(Path(out)))
    except Exception as e:  # noqa: BLE001
        log.error("report of %s failed: %s: %s", out, type(e).__name__, e)
    return media, plots



def report_multirun(job_dirs: list[Path], out: Path, tables: dict[str, pd.DataFrame], logger_cfg: Optional[dict],
                    group: Optional[str]) -> Optional[str]:
    """After a multirun's combined tables: one gallery over every job, plots, and one W&B run in the sweep's group
    holding the combined tables with their media; returns that W&B run's group (None without W&B)."""
    from .loggers import make_logger

    try:
        write_gallery(job_dirs, Path(out) / "gallery.html", title=f"videoshop-bench: {Path(out).name}")
        plots = write_plots(tables, out, prefix="combined_")
        protocol: dict = {}
        for d in job_dirs:
            protocol.update(read_protocol(Path(d)))
        plots |= write_time_and_cost_plots(job_dirs, tables.get("summary"), Path(out), protocol, "combined_")
        sweep = write_sigma_sweep_plot(tables["results"], out) if "results" in tables else None
        if sweep is not None:
            plots["sigma_sweep"] = sweep
        media: dict = {}
        records, files, _ = read_records(job_dirs)
        for rec, f in zip(records, files):
            media[(rec.get("label"), rec.get("sample_id"))] = f
        cfg = dict(logger_cfg or {})
        if cfg.get("name") == "wandb":
            cfg["group"] = cfg.get("group") or group
            logger = make_logger(cfg, {"jobs": [str(d) for d in job_dirs]}, default_dir=str(out))
            logger.run.name = "combined"
            logger.log_tables(tables, media, plots, prefix="combined_")
            joined = logger.run.group
            logger.finish()
            return joined
    except Exception as e:  # noqa: BLE001
        log.error("report of multirun %s failed: %s: %s", out, type(e).__name__, e)
    return None
