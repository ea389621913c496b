"""The per-sample loop of a run: claim each selected sample (one worker per sample), load and prepare it (the next
one on a background thread), edit, score and write its record; resume what an earlier run finished.

A rerun skips samples whose record matches the current edit settings (and recomputes only the metrics if just the
metric settings changed); a failing sample is recorded with its one-line error and the run goes on.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from videoshop_bench.datasets.schema import Sample

from videoshop_bench.eval.cache import fingerprint

from videoshop.method import sample_seed
from videoshop.speed import peak_memory_mb, reset_peak_memory

from .claims import HOST, ClaimBook, ClaimLost
from .components import Components
from .errors import ConfigError, one_line
from .merge import counts_for_set_metrics
from .prepare import check_aspect, check_input_limits, fit_edited_image, fit_frame_count, to_sample_size
from .scoring import Scores, SetFeatureError, score_sample, set_metric_features
from .store import ResultStore

log = logging.getLogger(__name__)


def input_hash(sample: Sample) -> str:
    """What an edit is made from: the (prepared) source video, edited first frame and edit mask."""
    mask = None if sample.edit_mask is None else np.asarray(sample.edit_mask, dtype=bool)
    return fingerprint(sample.source_video, sample.edited_image, mask)


def claim_book(cfg: DictConfig) -> ClaimBook:
    """The run folder's claims (``claim.*``); a bad setting is a ConfigError."""
    claim = cfg.get("claim") or {}
    try:
        return ClaimBook(Path(cfg.paths.output) / ".claims", claim.get("stale_after_s", 300),
                         claim.get("heartbeat_s", 10))
    except ValueError as e:
        raise ConfigError(str(e)) from None


class SampleLoop:
    """Every selected sample of ``parts`` through ``process`` (or resumed), each claimed first."""

    def __init__(self, cfg: DictConfig, parts: Components, claims: ClaimBook):
        self.cfg, self.parts, self.claims = cfg, parts, claims
        self.task = cfg.task
        self.poll_s = float((cfg.get("claim") or {}).get("poll_s", 2))
        self.prefetch = bool(cfg.get("prefetch", True))  # load + prepare the next sample while this one is edited
        self._prepared: dict[str, Any] = {}  # sample id -> Future of prepare(id)
        self._loader: Optional[ThreadPoolExecutor] = None
        self.store = ResultStore(Path(cfg.paths.output), claims=claims)

    # ------------------------------------------------------------------ loading
    def prepare(self, sample_id: str) -> tuple[Sample, list[str]]:
        """The sample as the method receives it (validated) and the notes on what was fitted to the model."""
        sample = self.parts.dataset.load(sample_id)
        notes = [str(n) for n in (sample.meta.get("load_notes") or [])]
        limits = self.cfg.get("limits") or {}
        check_input_limits(sample, limits)
        if self.task == "reconstruct":
            sample = sample.as_reconstruction()
        elif self.parts.first_frame is not None:  # first_frame.editor: the edited first frame (and its mask)
            sample, more = self.parts.first_frame.apply(sample)
            notes += more
        if not getattr(self.parts.method, "handles_any_length", False):  # e.g. block-recurrent long-video editing
            sample, more = fit_frame_count(sample, int(self.cfg.model.num_frames), self.cfg.frames_policy)
            notes += more
        notes += check_aspect(sample, int(self.cfg.model.height), int(self.cfg.model.width),
                              self.cfg.get("aspect_policy", "note"), float(limits.get("aspect_tolerance", 0.02)))
        if sample.edit_mask is not None and sample.edit_mask.all():
            notes.append("edit mask covers the whole frame: metrics that compare outside the region are skipped")
        sample, more = fit_edited_image(sample)
        if self.parts.prompt_overrides is not None:  # dataset.prompts=FILE wins over the dataset's own prompts
            from videoshop_bench.baselines.text.prompts import apply_prompt_overrides

            sample = apply_prompt_overrides(sample, self.parts.prompt_overrides, self.cfg.dataset.prompts)
        return sample.validate(), notes + more

    def prefetch_sample(self, sample_id: str) -> None:
        """Start loading and preparing ``sample_id`` on a background thread (``prefetch=true``), so that reading its
        frames overlaps the current sample's edit; ``prepared`` picks the result up (or its exception, unchanged)."""
        if not self.prefetch or sample_id in self._prepared:
            return
        if self._loader is None:
            self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
        self._prepared[sample_id] = self._loader.submit(self.prepare, sample_id)

    def prepared(self, sample_id: str) -> tuple[Sample, list[str]]:
        """``prepare(sample_id)``, from the prefetch thread when it was started there."""
        future = self._prepared.pop(sample_id, None)
        return future.result() if future is not None else self.prepare(sample_id)

    # ------------------------------------------------------------------ one sample
    def score(self, sample: Sample, frames: np.ndarray, finite: bool) -> Scores:
        return score_sample(self.parts.metrics, sample, frames, finite, self.parts.windows)

    def base_record(self, sample_id: str) -> dict[str, Any]:
        p = self.parts
        return dict(sample_id=sample_id, label=p.label, overrides=p.overrides, method=self.cfg.method.name,
                    task=self.task, dataset=self.cfg.dataset.name, model=self.cfg.model.name, edit_hash=p.edit_hash,
                    metrics_hash=p.metrics_hash, status="failed", error=None, notes=[], metrics={},
                    edit_type="unknown", instruction="",  # the sample's, once it loads (a failed load keeps these)
                    worker=f"{HOST}:{os.getpid()}", threads=torch.get_num_threads())

    def process(self, sample_id: str) -> dict[str, Any]:
        """Load, validate, edit, score and write one sample; any failure is recorded as one line naming the stage
        (load | edit | score | write) and the file or field, and the run goes on."""
        rec = self.base_record(sample_id)
        try:
            sample, rec["notes"] = self.prepared(sample_id)
            rec.update(edit_type=sample.edit_type, instruction=sample.instruction, input_hash=input_hash(sample),
                       first_frame=sample.meta.get("first_frame") or {"editor": "none"})
        except Exception as e:  # noqa: BLE001  (unreadable or invalid sample: record and go on)
            return self._fail(rec, "load", e)
        mem_device = "cuda" if torch.cuda.is_available() else "cpu"
        mem_scope = reset_peak_memory(mem_device)
        t0 = time.perf_counter()
        try:
            result = self.parts.method.edit(sample, torch.Generator().manual_seed(sample_seed(self.cfg.seed, sample_id)))
        except Exception as e:  # noqa: BLE001
            return self._fail(rec, "edit", e)
        rec.update(seconds=time.perf_counter() - t0, nfe=result.nfe, finite=result.finite, info=result.info,
                   peak_mem_mb=peak_memory_mb(mem_device), peak_mem_scope=mem_scope)
        if not result.finite:
            rec["notes"].append("non-finite latents: metrics recorded as NaN")
            log.warning("%s: non-finite latents (metrics are NaN)", sample_id)
        try:
            frames = to_sample_size(result.frames, sample)
            features = self.score_into(rec, sample, frames, result.finite)
        except Exception as e:  # noqa: BLE001
            return self._fail(rec, "score", e)
        try:
            self.store.write(sample_id, rec, frames, fps=sample.fps, save_mp4=self.cfg.get("save_mp4", True), **features)
        except ClaimLost:
            raise
        except Exception as e:  # noqa: BLE001
            return self._fail(rec, "write", e)
        log.info("%s: edited by %s, %s", sample_id, rec["worker"], rec["status"])
        return rec

    def score_into(self, rec: dict, sample: Sample, frames: np.ndarray, finite: bool,
                   add_notes: bool = True) -> dict[str, Any]:
        """Score ``frames`` into ``rec`` (metrics, skipped, status, error, and the metrics' notes unless
        ``add_notes`` is false); returns the set-metric features to store with it."""
        s = self.score(sample, frames, finite)
        rec.update(metrics=s.values, skipped=s.skipped, curves=s.curves)
        if add_notes:
            rec["notes"] = rec["notes"] + s.notes
        rec.update(status="failed" if s.errors else "ok", error="; ".join(s.errors) or None)
        return self.set_features(rec, sample, frames)

    def set_features(self, rec: dict, sample: Sample, frames: np.ndarray) -> dict[str, Any]:
        """This sample's set-metric inputs (none unless it counts for set metrics); a failure fails the sample."""
        if not counts_for_set_metrics(rec):
            return {}
        try:
            out = set_metric_features(self.parts.set_metrics, sample, frames, self.parts.windows)
        except SetFeatureError as e:
            rec.update(status="failed", error="; ".join(filter(None, [rec.get("error"), str(e)])))
            return {}
        rec["set_skipped"] = out.pop("skipped")  # frame windows too short for a set metric (the set table says why)
        return out

    def _fail(self, rec: dict, stage: str, e: BaseException) -> dict:
        rec.update(status="failed", error=f"{stage}: {one_line(e)}", traceback=traceback.format_exc(limit=8))
        log.error("%s failed at %s: %s", rec["sample_id"], stage, one_line(e))
        try:  # the failure record alone (no frames); if even that cannot be written, keep it for the tables
            self.store.write(rec["sample_id"], rec)
        except Exception as w:  # noqa: BLE001
            rec["error"] += f"; record not written: {one_line(w)}"
            log.error("%s: record not written: %s", rec["sample_id"], one_line(w))
        return rec

    def rescore(self, sample_id: str, rec: dict, sample: Sample) -> dict:
        """Edit settings unchanged, metric settings changed: recompute metrics from the saved lossless frames."""
        frames = self.store.edited_frames(sample_id)
        rec["metrics_hash"] = self.parts.metrics_hash
        features = self.score_into(rec, sample, frames, bool(rec.get("finite", True)), add_notes=False)
        self.store.write(sample_id, rec, frames, fps=sample.fps, save_mp4=self.cfg.get("save_mp4", True), **features)
        return rec

    def reusable(self, sample_id: str, rec: dict) -> Optional[Sample]:
        """The prepared sample when a finished record was made from these very inputs, else None (edit again).

        Same settings are not enough: a rebuilt dataset or a changed generator can give a sample id other content.
        """
        try:
            sample, _ = self.prepared(sample_id)
        except Exception:  # noqa: BLE001  (process() records the failure)
            return None
        if rec.get("input_hash") != input_hash(sample):
            log.info("%s: inputs changed since the saved result, editing again", sample_id)
            return None
        return sample

    # ------------------------------------------------------------------ the loop
    def run_samples(self) -> list[dict]:
        """Every selected sample's record, each edited by exactly one of the workers sharing this run folder.

        A sample is claimed before it is looked at (experiments/claims.py); one claimed by another live worker is
        revisited after this worker's other samples, until that worker finishes it or its claim goes stale.
        """
        self.store.cleanup(older_than_s=max(3600.0, self.claims.stale_after_s))
        started = time.time()
        done: dict[str, dict] = {}
        pending = list(self.parts.ids)
        bar = tqdm(total=len(pending), desc=f"{self.parts.label} on {self.cfg.dataset.name}", disable=not pending)
        while pending:
            waiting = self._one_pass(pending, done, started, bar)
            if waiting:
                if waiting != pending:  # say it once per change, not every poll
                    log.info("waiting for %d sample(s) claimed by other workers: %s", len(waiting), waiting[:5])
                time.sleep(self.poll_s)
            pending = waiting
        bar.close()
        self._prepared.clear()
        if self._loader is not None:
            self._loader.shutdown(wait=True)
            self._loader = None
        self.store.cleanup(older_than_s=max(3600.0, self.claims.stale_after_s))  # what workers killed meanwhile left
        return [done[sid] for sid in self.parts.ids]

    def _one_pass(self, pending: list[str], done: dict[str, dict], started: float, bar) -> list[str]:
        """Claim and finish each of ``pending`` in turn; returns those another worker holds (to revisit)."""
        waiting = []
        for k, sid in enumerate(pending):
            if k + 1 < len(pending):
                self.prefetch_sample(pending[k + 1])
            claim = self.claims.acquire(sid)
            if claim is None:
                waiting.append(sid)
                continue
            try:
                with claim:
                    done[sid] = self.resume_or_process(sid, started)
                bar.update()
            except ClaimLost as e:  # we were judged dead: the new holder writes this sample
                log.warning("%s", e)
                waiting.append(sid)
        return waiting

    def resume_or_process(self, sample_id: str, since: float) -> dict:
        """Under this sample's claim: keep a record another worker wrote during this run (even a failed one: one
        try per sample and run), reuse or rescore a finished one, else edit."""
        old = self.store.load_record(sample_id)
        if old is None:
            return self.process(sample_id)
        same_edit, same_metrics = (old.get("edit_hash") == self.parts.edit_hash,
                                   old.get("metrics_hash") == self.parts.metrics_hash)
        if self._written_since(sample_id, since) and same_edit and same_metrics:
            return old
        if old.get("status") == "ok" and same_edit and not self.cfg.get("overwrite"):
            sample = self.reusable(sample_id, old)
            if sample is not None:
                if same_metrics:
                    return old
                try:
                    return self.rescore(sample_id, old, sample)
                except ClaimLost:
                    raise
                except Exception as e:  # noqa: BLE001
                    return self._fail(dict(old, metrics={}), "score", e)
        return self.process(sample_id)

    def _written_since(self, sample_id: str, since: float) -> bool:
        try:
            return self.store.record_path(sample_id).stat().st_mtime >= since
        except FileNotFoundError:
            return False

