"""The end of a run, after its samples: set metrics (FVD) from the features stored with the records, the tables
(experiments/tables.py via merge.write_run_tables), protocol.json, the media, gallery and plots
(experiments/report.py), and the loggers (experiments/loggers.py). A shard writes its own tables and media; the
run's come from ``python -m videoshop_bench.experiments.merge RUN_DIR`` once every shard is done."""

from __future__ import annotations

import logging
from typing import Optional

import pandas as pd
from omegaconf import DictConfig

from .components import container
from .errors import one_line
from .merge import class_path, counts_for_set_metrics, set_metric_frame, write_run_tables
from .sample_loop import SampleLoop
from .tables import skip_protocol, with_intervals
from .uncertainty import IntervalOptions

log = logging.getLogger(__name__)


def finish_run(loop: SampleLoop, records: list[dict]) -> dict[str, pd.DataFrame]:
    """Tables, reports and logs of the run ``loop`` has just processed into ``records``."""
    cfg, parts, out = loop.cfg, loop.parts, loop.store.root
    set_df, set_notes = set_metrics(loop, records)
    protocol = {"model": cfg.model.name, "task": cfg.task, "seed": cfg.seed}
    for m in parts.metrics.values():
        protocol.update(m.protocol())
    protocol["higher_is_better"] = {n: m.column_higher_is_better(n) for m in parts.metrics.values() for n in m.names
                                    if m.column_higher_is_better(n) is not None}
    protocol |= window_protocol(parts, protocol)
    protocol["intervals"] = IntervalOptions.from_dict(container(cfg.get("tables"))).as_dict()
    protocol |= skip_protocol(records)  # counted over every record of the run (resumed ones included)
    sharded = parts.num_shards > 1
    tables_dir = out / "shards" / f"{parts.shard}-of-{parts.num_shards}" if sharded else out
    tables = write_run_tables(tables_dir, records, protocol, set_df, set_notes)
    log.info("results in %s\n%s", tables_dir, with_intervals(tables["summary"]).to_string(index=False))
    from .gallery import write_run_media
    from .report import report_run  # media beside each edited video, gallery.html, plots

    load = lambda sid: loop.prepare(sid)[0]  # noqa: E731
    if sharded:  # this shard's media now; the gallery and plots when the shards are merged
        log.info("shard %d of %d done; when every shard is, merge them: python -m videoshop_bench.experiments.merge %s",
                 parts.shard, parts.num_shards, out)
        log_run(cfg, str(out), tables, write_run_media(out / "samples", parts.ids, load))
    else:
        log_run(cfg, str(out), tables, *report_run(out, parts.ids, load))
    return tables


def set_metrics(loop: SampleLoop, records: list[dict]) -> tuple[pd.DataFrame, dict]:
    """Dataset-level metrics (FVD) over every successful, finite sample, from the features stored with each
    record (experiments/merge.py computes them the same way over the union of shards). A record from before
    features were stored with it gets them computed once from its saved frames."""
    wanted = loop.parts.set_metrics
    if not wanted:
        return pd.DataFrame(), {}
    for r in records:
        sid = r["sample_id"]
        arrays, meta = loop.store.load_features(sid)
        if not counts_for_set_metrics(r) or all(k in meta for k in wanted):
            continue
        try:
            sample, _ = loop.prepare(sid)
            extra = loop.set_features(dict(r), sample, loop.store.edited_frames(sid))
        except Exception as e:  # noqa: BLE001
            log.error("%s: no set-metric features (%s); left out of FVD", sid, one_line(e))
            continue
        if extra:
            loop.store.write_features(sid, arrays | extra["features"], meta | extra["features_meta"])
    expected = {k: class_path(m) for k, m in wanted.items()}  # and each frame window's (fvd[1:])
    expected |= {k + w.suffix: class_path(m) for w in loop.parts.windows for k, m in wanted.items() if w.applies(k)}
    return set_metric_frame(records, loop.store.load_features, expected)


def window_protocol(parts, protocol: dict) -> dict:
    """protocol.json entries of the frame windows' columns (eval/windows.py): each metric's own protocol with the
    frames it covers, its direction, and how a window is scored."""
    out: dict = {}
    if not parts.windows:
        return out
    higher = dict(protocol.get("higher_is_better") or {})
    for w in parts.windows:
        for key, m in parts.metrics.items():
            if not w.applies(key):
                continue
            for n in m.names:
                out[w.column(n)] = f"{protocol.get(n, n)}; over {w.describe()} only"
                if n in higher:
                    higher[w.column(n)] = higher[n]
    out["higher_is_better"] = higher
    out["frame_windows"] = ("the windowed columns (<metric>[start:stop]) score the same metrics on frames start.."
                            "stop-1: source, ground truth and edited videos cut to them; the edited first frame and "
                            "its mask kept as references; edit regions tracked on the whole video, then cut")
    return out


def log_run(cfg: DictConfig, out: str, tables: dict[str, pd.DataFrame], media: Optional[dict] = None,
            plots: Optional[dict] = None) -> None:
    """Hand the tables, media and plots to the configured logger; a logger failure never loses written results."""
    from .loggers import make_logger, multirun_group

    cfg_log = container(cfg.get("logger"))
    try:
        logger = make_logger(multirun_group(cfg_log, cfg), container(cfg), default_dir=out)
        logger.log_tables(tables, media or {}, plots)
        logger.finish()
    except Exception as e:  # noqa: BLE001  (logging must never lose the results already written)
        log.error("logger %s failed: %s", (cfg_log or {}).get("name"), one_line(e))
