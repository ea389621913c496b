"""The experiment runner (the Hydra edge): for each sample, edit, save, score, record; then tables and logs.

A rerun skips samples whose record matches the current edit settings (and recomputes only the metrics if just the
metric settings changed); a failing sample is recorded with its one-line error and the run goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import resource
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from datasets.base import select_ids, shard_ids
from datasets.schema import Sample

from eval.cache import fingerprint

from videoshop.method import sample_seed  # noqa: F401  (re-exported: experiments.runner.sample_seed)
from videoshop.video_io import InputLimits

from .prepare import check_aspect, check_input_limits, fit_edited_image, fit_frame_count, to_sample_size
from .claims import HOST, ClaimBook, ClaimLost
from .merge import class_path, counts_for_set_metrics, set_metric_frame, write_run_tables
from .store import ResultStore
from .tables import skip_protocol

log = logging.getLogger(__name__)


def one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


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

        from videoshop.models import build_pipeline

        self.cfg = cfg
        self.out = Path(cfg.paths.output)
        claim = cfg.get("claim") or {}
        try:
            self.claims = ClaimBook(self.out / ".claims", claim.get("stale_after_s", 300), claim.get("heartbeat_s", 10))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.poll_s = float(claim.get("poll_s", 2))
        self.prefetch = bool(cfg.get("prefetch", True))  # load + prepare the next sample while this one is edited
        self._prepared: dict[str, Any] = {}  # sample id -> Future of prepare(id)
        self._loader: Optional[ThreadPoolExecutor] = None
        self.store = ResultStore(self.out, claims=self.claims)
        self.label = label or cfg.method.name
        self.task = cfg.task
        self.dataset = instantiate(cfg.dataset.loader)
        if hasattr(self.dataset, "set_limits"):  # sizes refused from headers, before decoding (docs/reliability.md)
            self.dataset.set_limits(InputLimits.from_mapping(_container(cfg.get("limits"))))
        self.ids = select_ids(self.dataset.sample_ids(), cfg.dataset.get("limit"), cfg.dataset.get("ids"))
        self.num_shards, self.shard = int(cfg.dataset.get("num_shards", 1)), int(cfg.dataset.get("shard", 0))
        try:
            self.ids = shard_ids(self.ids, self.num_shards, self.shard)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if cfg.method.get("uses_video_model", True):
            self.pipeline = build_pipeline(cfg.model, cfg.device, _container(cfg.get("runtime")))  # fails fast: weights
            self.pipeline.set_progress_bar_config(disable=not cfg.get("progress_bars", False), leave=False)
            m = int(getattr(self.pipeline, "size_multiple", 1) or 1)
            bad = [f"{k}={cfg.model[k]}" for k in ("height", "width") if int(cfg.model[k]) % m]
            if bad:  # known only once the model is built; still before the first sample
                raise ConfigError(f"model.{bad[0]}: must be a multiple of {m} for model={cfg.model.name}")
            self.method = instantiate(cfg.method, pipeline=self.pipeline, _convert_="all")
        else:  # a method with its own models (text-driven baselines): no SVD pipeline, the device instead
            self.pipeline = None
            self.method = _instantiate_own_model_method(cfg)
        prompts_file = cfg.dataset.get("prompts")
        self.prompt_overrides = _read_prompt_overrides(prompts_file) if prompts_file else None
        self.metrics = {k: _instantiate_metric(k, v) for k, v in (cfg.get("metrics") or {}).items()}
        self.edit_hash = stable_hash({k: _container(cfg.get(k)) for k in ("task", "seed", "frames_policy", "method", "model", "runtime")}
                                     | {"dataset": _container(cfg.dataset.loader)}
                                     | ({"prompts": self.prompt_overrides} if self.prompt_overrides else {}))
        self.metrics_hash = stable_hash(_container(cfg.get("metrics")))
        self.set_metrics_ = {k: m for k, m in self.metrics.items() if not m.per_sample}  # FVD: features per sample

    # ------------------------------------------------------------------ one sample
    def prepare(self, sample_id: str) -> tuple[Sample, list[str]]:
        sample = self.dataset.load(sample_id)
        notes = [str(n) for n in (sample.meta.get("load_notes") or [])]
        check_input_limits(sample, self.cfg.get("limits") or {})
        if self.task == "reconstruct":
            sample = sample.as_reconstruction()
        if not getattr(self.method, "handles_any_length", False):  # e.g. block-recurrent long-video editing
            sample, more = fit_frame_count(sample, int(self.cfg.model.num_frames), self.cfg.frames_policy)
            notes += more
        notes += check_aspect(sample, int(self.cfg.model.height), int(self.cfg.model.width),
                              self.cfg.get("aspect_policy", "note"),
                              float((self.cfg.get("limits") or {}).get("aspect_tolerance", 0.02)))
        if sample.edit_mask is not None and sample.edit_mask.all():
            notes.append("edit mask covers the whole frame: metrics that compare outside the region are skipped")
        sample, more = fit_edited_image(sample)
        if self.prompt_overrides is not None:  # dataset.prompts=FILE wins over the dataset's own prompts
            from baselines.text.prompts import apply_prompt_overrides

            sample = apply_prompt_overrides(sample, self.prompt_overrides, self.cfg.dataset.prompts)
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

    def score(self, sample: Sample, frames: np.ndarray, finite: bool) -> tuple[dict[str, float], list[str]]:
        """This sample's metric values and errors; names a metric could not compute go to ``self.last_skipped``
        (name -> reason), recorded as the record's ``skipped`` and counted in the tables, never a NaN."""
        values: dict[str, float] = {}
        errors: list[str] = []
        self.last_skipped: dict[str, str] = {}
        self.last_notes: list[str] = []
        for key, metric in self.metrics.items():
            if not metric.per_sample:
                continue
            if not finite:
                values.update({n: math.nan for n in metric.names})
                continue
            try:
                got = metric.score(sample, frames)
            except Exception as e:  # noqa: BLE001
                errors.append(f"metric {key}: {one_line(e)}")
                values.update({n: math.nan for n in metric.names})
                continue
            for n in metric.names:
                v = got.get(n)
                if v is None:
                    self.last_skipped[n] = metric.skip_reason(n, sample)
                else:
                    values[n] = v
            self.last_notes += metric.sample_notes(sample)
        return values, errors

    def base_record(self, sample_id: str) -> dict[str, Any]:
        return dict(sample_id=sample_id, label=self.label, method=self.cfg.method.name, task=self.task,
                    dataset=self.cfg.dataset.name, model=self.cfg.model.name, edit_hash=self.edit_hash,
                    metrics_hash=self.metrics_hash, status="failed", error=None, notes=[], metrics={},
                    edit_type="unknown", instruction="",  # the sample's, once it loads (a failed load keeps these)
                    worker=f"{HOST}:{os.getpid()}")

    def process(self, sample_id: str) -> dict[str, Any]:
        """Load, validate, edit, score and write one sample; any failure is recorded as one line naming the stage
        (load | edit | score | write) and the file or field, and the run goes on."""
        rec = self.base_record(sample_id)
        try:
            sample, rec["notes"] = self.prepared(sample_id)
            rec.update(edit_type=sample.edit_type, instruction=sample.instruction, input_hash=input_hash(sample))
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
        try:
            frames = to_sample_size(result.frames, sample)
            rec["metrics"], metric_errors = self.score(sample, frames, result.finite)
            rec["skipped"], rec["notes"] = self.last_skipped, rec["notes"] + self.last_notes
            rec["status"] = "failed" if metric_errors else "ok"
            rec["error"] = "; ".join(metric_errors) or None
            features = self.set_features(rec, sample, frames)
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

    def set_features(self, rec: dict, sample: Sample, frames: np.ndarray) -> dict[str, Any]:
        """This sample's set-metric inputs (I3D features for FVD), stored with its record so FVD can be computed
        over any union of shards or workers (experiments/merge.py). A failure fails the sample (one line)."""
        features: dict[str, np.ndarray] = {}
        meta: dict[str, str] = {}
        if not counts_for_set_metrics(rec):
            return {}
        for key, metric in self.set_metrics_.items():
            try:
                features.update({f"{key}/{n}": a for n, a in metric.sample_features(sample, frames).items()})
                meta[key] = class_path(metric)
            except Exception as e:  # noqa: BLE001
                rec.update(status="failed", error="; ".join(filter(None, [rec.get("error"), f"metric {key}: {one_line(e)}"])))
                return {}
        return {"features": features, "features_meta": meta}

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
        rec["metrics"], errors = self.score(sample, frames, bool(rec.get("finite", True)))
        rec.update(metrics_hash=self.metrics_hash, status="failed" if errors else "ok", error="; ".join(errors) or None,
                   skipped=self.last_skipped)
        features = self.set_features(rec, sample, frames)
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
    def run(self) -> dict[str, pd.DataFrame]:
        records = self.run_samples()
        set_df, set_notes = self.set_metrics(records)
        protocol = {"model": self.cfg.model.name, "task": self.task, "seed": self.cfg.seed}
        for m in self.metrics.values():
            protocol.update(m.protocol())
        protocol |= skip_protocol(records)  # counted over every record of the run (resumed ones included)
        # a shard's tables cover its own samples: the run's come from `python -m experiments.merge RUN_DIR`
        out = self.out if self.num_shards == 1 else self.out / "shards" / f"{self.shard}-of-{self.num_shards}"
        tables = write_run_tables(out, records, protocol, set_df, set_notes)
        log.info("results in %s\n%s", out, tables["summary"].to_string(index=False))
        from .report import report_run, write_run_media  # media beside each edited video, gallery.html, plots

        if self.num_shards > 1:  # this shard's media now; the gallery and plots when the shards are merged
            log.info("shard %d of %d done; when every shard is, merge them: python -m experiments.merge %s",
                     self.shard, self.num_shards, self.out)
            self.log(tables, write_run_media(self.out / "samples", self.ids, lambda sid: self.prepare(sid)[0]))
        else:
            self.log(tables, *report_run(self.out, self.ids, lambda sid: self.prepare(sid)[0]))
        return tables

    def run_samples(self) -> list[dict]:
        """Every selected sample's record, each edited by exactly one of the workers sharing this run folder.

        A sample is claimed before it is looked at (experiments/claims.py); one claimed by another live worker is
        revisited after this worker's other samples, until that worker finishes it or its claim goes stale.
        """
        self.store.cleanup(older_than_s=max(3600.0, self.claims.stale_after_s))
        started = time.time()
        done: dict[str, dict] = {}
        pending = list(self.ids)
        bar = tqdm(total=len(pending), desc=f"{self.label} on {self.cfg.dataset.name}", disable=not pending)
        while pending:
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
        return [done[sid] for sid in self.ids]

    def resume_or_process(self, sample_id: str, since: float) -> dict:
        """Under this sample's claim: keep a record another worker wrote during this run (even a failed one: one
        try per sample and run), reuse or rescore a finished one, else edit."""
        old = self.store.load_record(sample_id)
        if old is None:
            return self.process(sample_id)
        if (self._written_since(sample_id, since) and old.get("edit_hash") == self.edit_hash
                and old.get("metrics_hash") == self.metrics_hash):
            return old
        if old.get("status") == "ok" and old.get("edit_hash") == self.edit_hash and not self.cfg.get("overwrite"):
            sample = self.reusable(sample_id, old)
            if sample is not None:
                if old.get("metrics_hash") == self.metrics_hash:
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

    def set_metrics(self, records: list[dict]) -> tuple[pd.DataFrame, dict]:
        """Dataset-level metrics (FVD) over every successful, finite sample, from the features stored with each
        record (experiments/merge.py computes them the same way over the union of shards)."""
        if not self.set_metrics_:
            return pd.DataFrame(), {}
        for r in records:
            sid = r["sample_id"]
            arrays, meta = self.store.load_features(sid)
            if not counts_for_set_metrics(r) or all(k in meta for k in self.set_metrics_):
                continue
            try:  # a record from before features were stored with it: compute them once from its saved frames
                sample, _ = self.prepare(sid)
                extra = self.set_features(dict(r), sample, self.store.edited_frames(sid))
            except Exception as e:  # noqa: BLE001
                log.error("%s: no set-metric features (%s); left out of FVD", sid, one_line(e))
                continue
            if extra:
                self.store.write_features(sid, arrays | extra["features"], meta | extra["features_meta"])
        return set_metric_frame(records, self.store.load_features, {k: class_path(m) for k, m in self.set_metrics_.items()})

    def log(self, tables: dict[str, pd.DataFrame], media: Optional[dict] = None, plots: Optional[dict] = None) -> None:
        from .loggers import make_logger, multirun_group

        cfg_log = _container(self.cfg.get("logger"))
        try:
            logger = make_logger(multirun_group(cfg_log, self.cfg), _container(self.cfg), default_dir=str(self.out))
            logger.log_tables(tables, media or {}, plots)
            logger.finish()
        except Exception as e:  # noqa: BLE001  (logging must never lose the results already written)
            log.error("logger %s failed: %s", (cfg_log or {}).get("name"), one_line(e))


class ConfigError(RuntimeError):
    """A component could not be built from its config (one line naming the key)."""


class ConfigErrors(ConfigError):
    """The config failed validation (experiments/config_schema.py): one line per problem in ``problems``."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def run_edit(cfg: DictConfig, label: Optional[str] = None) -> dict[str, pd.DataFrame]:
    """The edit and reconstruct tasks: every selected sample through the method, scored and stored."""
    return Runner(cfg, label).run()


def _anticipated() -> tuple[type[BaseException], ...]:
    """Errors a user can cause and fix (bad config, missing weights or files, bad manifest): one line in run.py."""
    from datasets.schema import SampleError
    from videoshop.models import MissingWeightsError

    return (ConfigError, MissingWeightsError, SampleError, FileNotFoundError, NotADirectoryError, PermissionError,
            KeyError, ValueError)


ANTICIPATED = _anticipated()


def _instantiate_metric(key: str, node):
    """Build one metric; a failure (e.g. missing weights) becomes one line naming metrics.<key>."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node)
    except InstantiationException as e:
        cause = e.__cause__ or e
        raise ConfigError(f"metrics.{key}: {one_line(cause)}") from cause


def _instantiate_own_model_method(cfg: DictConfig):
    """A ``uses_video_model: false`` method (it loads its own models): built with ``device=`` instead of
    ``pipeline=``; its missing weights raise the loader's one-line error (MissingWeightsError) at start-up."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from videoshop.models import resolve_device

    node = OmegaConf.to_container(cfg.method, resolve=True)
    node.pop("uses_video_model", None)
    try:
        return instantiate(node, device=str(resolve_device(cfg.device)), _convert_="all")
    except InstantiationException as e:
        cause = e.__cause__ or e
        if isinstance(cause, (RuntimeError, ValueError, OSError)) and "\n" not in str(cause).strip():
            raise cause from None
        raise ConfigError(f"method ({cfg.method.name}): {one_line(cause)}") from cause


def _read_prompt_overrides(path: str) -> dict:
    from baselines.text.prompts import read_prompt_overrides

    try:
        return read_prompt_overrides(str(path))
    except (OSError, ValueError) as e:
        raise ConfigError(one_line(e)) from None


def _peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process high-water mark (CPU)
