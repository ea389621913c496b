"""The experiment runner (the Hydra edge): for each sample, edit, save, score, record; then tables and logs.

A rerun skips samples whose record matches the current edit settings (and recomputes only the metrics if just the
metric settings changed); a failing sample is recorded with its one-line error and the run goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import resource
import time
import traceback
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from datasets.base import select_ids
from datasets.schema import Sample

from eval.cache import fingerprint

from .prepare import fit_edited_image, fit_frame_count, to_sample_size
from .store import ResultStore
from .tables import records_to_frame, write_tables

log = logging.getLogger(__name__)


def one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sample_seed(seed: int, sample_id: str) -> int:
    """Per-sample seed: independent of order and subset, so resumed and sharded runs match full ones."""
    return int(hashlib.sha256(f"{seed}:{sample_id}".encode()).hexdigest()[:15], 16)


def _container(node) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def input_hash(sample: Sample) -> str:
    """What an edit is made from: the (prepared) source video, edited first frame and edit mask."""
    mask = None if sample.edit_mask is None else np.asarray(sample.edit_mask, dtype=bool)
    return fingerprint(sample.source_video, sample.edited_image, mask)


class Runner:
    """Plain object holding what one run needs; ``run()`` processes every selected sample."""

    def __init__(self, cfg: DictConfig, label: Optional[str] = None):
        from hydra.utils import instantiate

        from .common import build_pipeline

        self.cfg = cfg
        self.out = Path(cfg.paths.output)
        self.store = ResultStore(self.out)
        self.label = label or cfg.method.name
        self.task = cfg.task
        self.dataset = instantiate(cfg.dataset.loader)
        self.ids = select_ids(self.dataset.sample_ids(), cfg.dataset.get("limit"), cfg.dataset.get("ids"))
        self.pipeline = build_pipeline(cfg.model, cfg.device, _container(cfg.get("runtime")))  # fails fast on missing weights
        self.pipeline.set_progress_bar_config(disable=not cfg.get("progress_bars", False), leave=False)
        self.method = instantiate(cfg.method, pipeline=self.pipeline, _convert_="all")
        self.metrics = {k: _instantiate_metric(k, v) for k, v in (cfg.get("metrics") or {}).items()}
        self.edit_hash = stable_hash({k: _container(cfg.get(k)) for k in ("task", "seed", "frames_policy", "method", "model", "runtime")}
                                     | {"dataset": _container(cfg.dataset.loader)})
        self.metrics_hash = stable_hash(_container(cfg.get("metrics")))
        self._set_metric_done: set[str] = set()  # samples already fed to the set metrics (FVD) during the loop

    # ------------------------------------------------------------------ one sample
    def prepare(self, sample_id: str) -> tuple[Sample, list[str]]:
        sample = self.dataset.load(sample_id)
        if self.task == "reconstruct":
            sample = sample.as_reconstruction()
        if getattr(self.method, "handles_any_length", False):  # e.g. block-recurrent long-video editing
            notes: list[str] = []
        else:
            sample, notes = fit_frame_count(sample, int(self.cfg.model.num_frames), self.cfg.frames_policy)
        sample, more = fit_edited_image(sample)
        return sample.validate(), notes + more

    def score(self, sample: Sample, frames: np.ndarray, finite: bool) -> tuple[dict[str, float], list[str]]:
        values: dict[str, float] = {}
        errors: list[str] = []
        for key, metric in self.metrics.items():
            if not metric.per_sample:
                continue
            if not finite:
                values.update({n: math.nan for n in metric.names})
                continue
            try:
                values.update({n: v for n, v in metric.score(sample, frames).items() if v is not None})
            except Exception as e:  # noqa: BLE001
                errors.append(f"metric {key}: {one_line(e)}")
                values.update({n: math.nan for n in metric.names})
        return values, errors

    def base_record(self, sample_id: str) -> dict[str, Any]:
        return dict(sample_id=sample_id, label=self.label, method=self.cfg.method.name, task=self.task,
                    dataset=self.cfg.dataset.name, model=self.cfg.model.name, edit_hash=self.edit_hash,
                    metrics_hash=self.metrics_hash, status="failed", error=None, notes=[], metrics={})

    def process(self, sample_id: str) -> dict[str, Any]:
        rec = self.base_record(sample_id)
        try:
            sample, rec["notes"] = self.prepare(sample_id)
            rec["edit_type"], rec["input_hash"] = sample.edit_type, input_hash(sample)
        except Exception as e:  # noqa: BLE001  (unreadable or invalid sample: record and go on)
            return self._fail(rec, "load", e)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            result = self.method.edit(sample, torch.Generator().manual_seed(sample_seed(self.cfg.seed, sample_id)))
        except Exception as e:  # noqa: BLE001
            return self._fail(rec, "edit", e)
        rec.update(seconds=time.perf_counter() - t0, nfe=result.nfe, finite=result.finite, info=result.info,
                   peak_mem_mb=_peak_memory_mb())
        if not result.finite:
            rec["notes"].append("non-finite latents: metrics recorded as NaN")
            log.warning("%s: non-finite latents (metrics are NaN)", sample_id)
        frames = to_sample_size(result.frames, sample)
        rec["metrics"], metric_errors = self.score(sample, frames, result.finite)
        rec["status"] = "failed" if metric_errors else "ok"
        rec["error"] = "; ".join(metric_errors) or None
        if rec["status"] == "ok" and result.finite:  # feed set metrics now: no reload from disk at the end
            for m in self.metrics.values():
                if not m.per_sample:
                    m.update(sample, frames)
            self._set_metric_done.add(sample_id)
        self.store.write(sample_id, rec, frames, fps=sample.fps, save_mp4=self.cfg.get("save_mp4", True))
        return rec

    def _fail(self, rec: dict, stage: str, e: BaseException) -> dict:
        rec.update(error=f"{stage}: {one_line(e)}", traceback=traceback.format_exc(limit=8))
        log.error("%s failed at %s: %s", rec["sample_id"], stage, one_line(e))
        self.store.write(rec["sample_id"], rec)
        return rec

    def rescore(self, sample_id: str, rec: dict, sample: Sample) -> dict:
        """Edit settings unchanged, metric settings changed: recompute metrics from the saved lossless frames."""
        frames = self.store.edited_frames(sample_id)
        rec["metrics"], errors = self.score(sample, frames, bool(rec.get("finite", True)))
        rec.update(metrics_hash=self.metrics_hash, status="failed" if errors else "ok", error="; ".join(errors) or None)
        self.store.write(sample_id, rec, frames, fps=sample.fps, save_mp4=self.cfg.get("save_mp4", True))
        return rec

    def reusable(self, sample_id: str, rec: dict) -> Optional[Sample]:
        """The prepared sample when a finished record was made from these very inputs, else None (edit again).

        Same settings are not enough: a rebuilt dataset or a changed generator can give a sample id other content.
        """
        try:
            sample, _ = self.prepare(sample_id)
        except Exception:  # noqa: BLE001  (process() records the failure)
            return None
        if rec.get("input_hash") != input_hash(sample):
            log.info("%s: inputs changed since the saved result, editing again", sample_id)
            return None
        return sample

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, pd.DataFrame]:
        records = []
        for sid in tqdm(self.ids, desc=f"{self.label} on {self.cfg.dataset.name}", disable=not self.ids):
            old = self.store.load_record(sid)
            if old and old.get("status") == "ok" and old.get("edit_hash") == self.edit_hash and not self.cfg.get("overwrite"):
                sample = self.reusable(sid, old)
                if sample is not None:
                    records.append(old if old.get("metrics_hash") == self.metrics_hash else self.rescore(sid, old, sample))
                    continue
            records.append(self.process(sid))
        df = records_to_frame(records)
        set_df, set_notes = self.set_metrics(records)
        protocol = {"model": self.cfg.model.name, "task": self.task, "seed": self.cfg.seed}
        for m in self.metrics.values():
            protocol.update(m.protocol())
            if m.per_sample:
                set_notes.update(getattr(m, "notes", lambda: {})())
        tables = write_tables(df, self.out, protocol, set_df)
        if not set_df.empty:
            set_df.to_csv(self.out / "set_metrics.csv")
        (self.out / "protocol.json").write_text(json.dumps(protocol | set_notes, indent=1, default=str))
        log.info("results in %s\n%s", self.out, tables["summary"].to_string(index=False))
        self.log(tables)
        return tables

    def set_metrics(self, records: list[dict]) -> tuple[pd.DataFrame, dict]:
        """Dataset-level metrics (FVD): updated with every successful, finite sample, computed once."""
        set_metrics = {k: m for k, m in self.metrics.items() if not m.per_sample}
        if not set_metrics:
            return pd.DataFrame(), {}
        for r in records:
            if r.get("status") != "ok" or not r.get("finite", True) or r["sample_id"] in self._set_metric_done:
                continue
            sample, _ = self.prepare(r["sample_id"])
            frames = self.store.edited_frames(r["sample_id"])
            for m in set_metrics.values():
                m.update(sample, frames)
        row: dict[str, Any] = {}
        notes: dict[str, str] = {}
        for m in set_metrics.values():
            row.update({k: float(v) for k, v in m.compute().items()})
            notes.update({f"{k}_warning": v for k, v in getattr(m, "notes", lambda: {})().items()})
        row.update(notes)
        return pd.DataFrame([row], index=pd.Index([self.label], name="label")), notes

    def log(self, tables: dict[str, pd.DataFrame]) -> None:
        from .loggers import make_logger

        cfg_log = _container(self.cfg.get("logger"))
        try:
            logger = make_logger(cfg_log, _container(self.cfg), default_dir=str(self.out))
            videos = {sid: str(self.store.sample_dir(sid) / "edited.mp4") for sid in self.ids
                      if (self.store.sample_dir(sid) / "edited.mp4").is_file()}
            logger.log_tables(tables, videos)
            logger.finish()
        except Exception as e:  # noqa: BLE001  (logging must never lose the results already written)
            log.error("logger %s failed: %s", (cfg_log or {}).get("name"), one_line(e))


class ConfigError(RuntimeError):
    """A component could not be built from its config (one line naming the key)."""


def _instantiate_metric(key: str, node):
    """Build one metric; a failure (e.g. missing weights) becomes one line naming metrics.<key>."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node)
    except InstantiationException as e:
        cause = e.__cause__ or e
        raise ConfigError(f"metrics.{key}: {one_line(cause)}") from cause


def _peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process high-water mark (CPU)


def main_task(cfg: DictConfig, label: Optional[str] = None):
    """Dispatch on ``task``: edit | reconstruct (run the method on the dataset) | build (make a dataset)."""
    if cfg.task in ("edit", "reconstruct"):
        return Runner(cfg, label).run()
    if cfg.task == "build":
        from .build import run_build

        return run_build(cfg)
    if cfg.task == "train_toy":
        from .train_toy import run_train

        return run_train(cfg)
    raise ValueError(f"task={cfg.task!r}: expected edit, reconstruct, build or train_toy")
