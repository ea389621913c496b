"""What one edit or reconstruct run is made of, built from its config before the first sample: the dataset and the
ids this worker's shard selects, the video pipeline, the method, the metrics, prompt overrides, and the two hashes
that decide on resumption whether a saved sample is still valid (``edit_hash``) or only needs rescoring
(``metrics_hash``). Every failure is a ``ConfigError`` naming the key, before any sample is loaded."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from videoshop_bench.datasets.base import select_ids, shard_ids
from videoshop.video_io import InputLimits

from .errors import ConfigError, one_line
from .job import job_overrides
from .methods import uses_video_model

EDIT_KEYS = ("task", "seed", "frames_policy", "method", "model", "runtime")  # with dataset.loader: what edit_hash hashes


NAMESPACE = "videoshop_bench."


def without_namespace(obj: Any) -> Any:
    """``obj`` with the install namespace's prefix ``videoshop_bench.`` dropped from every string that starts with it
    (a ``_target_`` then reads as the folder path it had before): where the project's code is imported from is not
    part of what a run computed, so hashes of runs made before the namespace (issue 33, Build 6) still match."""
    if isinstance(obj, str):
        return obj[len(NAMESPACE):] if obj.startswith(NAMESPACE) else obj
    if isinstance(obj, dict):
        return {k: without_namespace(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [without_namespace(v) for v in obj]
    return obj


def stable_hash(obj: Any) -> str:
    """Short SHA-256 of ``obj`` as sorted JSON, install namespace dropped (``without_namespace``)."""
    return hashlib.sha256(json.dumps(without_namespace(obj), sort_keys=True, default=str).encode()).hexdigest()[:16]


def container(node) -> Any:
    """A config node as plain Python (interpolations resolved); anything else unchanged."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


@dataclass
class Components:
    """The built parts of a run. ``label`` names the job in tables (the method plus its swept method options);
    ``overrides`` holds the values that distinguish this job within its sweep, as data (experiments/job.py)."""

    dataset: Any
    ids: list[str]
    num_shards: int
    shard: int
    pipeline: Any
    method: Any
    metrics: dict[str, Any]
    prompt_overrides: Optional[dict]
    edit_hash: str
    metrics_hash: str
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)
    first_frame: Any = None  # videoshop_bench.experiments.first_frame.FirstFrameStage (first_frame.editor; none: samples unchanged)
    windows: tuple = ()  # videoshop_bench.eval.windows.FrameWindow: the metrics scored again on part of each video (frame_windows)

    @property
    def set_metrics(self) -> dict[str, Any]:
        """The dataset-level metrics (FVD): features per sample, the value over the set."""
        return {k: m for k, m in self.metrics.items() if not m.per_sample}


def build_components(cfg: DictConfig, label: Optional[str] = None) -> Components:
    """Every component of the run, in the order that fails fastest: ids, video pipeline (weights), method, metrics."""
    dataset = _instantiate_node("dataset.loader", cfg.dataset.loader)
    if hasattr(dataset, "set_limits"):  # sizes refused from headers, before decoding (docs/reliability.md)
        dataset.set_limits(InputLimits.from_mapping(container(cfg.get("limits"))))
    ids, num_shards, shard = selected_ids(cfg, dataset)
    first_frame = build_first_frame(cfg)  # the image editor's weights fail here, before the video model loads
    if uses_video_model(cfg.method.get("_target_")):
        pipeline = build_video_pipeline(cfg)
        method = _instantiate_node("method", cfg.method, pipeline=pipeline, _convert_="all")
    else:  # a method with its own models (text-driven baselines): no SVD pipeline, the device instead
        pipeline, method = None, _instantiate_own_model_method(cfg)
    prompts_file = cfg.dataset.get("prompts")
    prompt_overrides = _read_prompt_overrides(prompts_file) if prompts_file else None
    metrics = {k: _instantiate_metric(k, v) for k, v in (cfg.get("metrics") or {}).items()}
    windows = frame_windows(cfg)
    return Components(dataset=dataset, ids=ids, num_shards=num_shards, shard=shard, pipeline=pipeline, method=method,
                      metrics=metrics, prompt_overrides=prompt_overrides, edit_hash=edit_hash(cfg, prompt_overrides),
                      metrics_hash=metrics_hash(cfg), label=label or cfg.method.name,
                      overrides=job_overrides(cfg), first_frame=first_frame, windows=windows)


def frame_windows(cfg: DictConfig) -> tuple:
    """``frame_windows`` as videoshop_bench.eval.windows.FrameWindow objects; a bad entry is one line naming it."""
    from videoshop_bench.eval.windows import parse_windows

    node = cfg.get("frame_windows")
    try:
        return parse_windows(OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def metrics_hash(cfg: DictConfig) -> str:
    """What saved scores were computed with: the metrics, and the frame windows when there are any (so runs
    without windows keep their hashes)."""
    node = cfg.get("frame_windows")
    windows = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    metrics = container(cfg.get("metrics"))
    return stable_hash(metrics if not windows else {"metrics": metrics, "frame_windows": windows})


def edit_hash(cfg: DictConfig, prompt_overrides: Optional[dict] = None) -> str:
    """What a saved edit was made with: task, seed, frame policy, method, model, runtime, dataset loader, prompts,
    first-frame editor (when one is set)."""
    first_frame = first_frame_config(cfg)
    return stable_hash({k: container(cfg.get(k)) for k in EDIT_KEYS} | {"method": hashed_method(cfg)}
                       | {"dataset": container(cfg.dataset.loader)}
                       | ({"prompts": prompt_overrides} if prompt_overrides else {})
                       | ({"first_frame": first_frame} if first_frame else {}))


def hashed_method(cfg: DictConfig) -> Any:
    """The method as ``edit_hash`` sees it: its composed node (every declared option, interpolations resolved),
    plus ``uses_video_model: false`` for a method that loads its own models. That was a key of those methods'
    YAML files until the class attribute became its one declaration; it stays in the hash so that their saved
    edits keep their hashes (research/method_fingerprints.py measures this)."""
    node = container(cfg.get("method"))
    if isinstance(node, dict) and not uses_video_model(node.get("_target_")):
        node = {**node, "uses_video_model": False}
    return node


FIRST_FRAME_RUNTIME = ("device", "cpu_offload", "cache")  # first_frame keys that do not change the edited frame


def first_frame_config(cfg: DictConfig) -> Optional[dict]:
    """What makes the edited first frames (``first_frame.*`` less runtime keys), None for ``editor=none`` (so runs
    and their hashes without an editor are as before)."""
    node = container(cfg.get("first_frame")) or {}
    if node.get("editor", "none") == "none":
        return None
    return {k: v for k, v in node.items() if k not in FIRST_FRAME_RUNTIME}


def build_first_frame(cfg: DictConfig):
    """The first-frame stage (experiments/first_frame.py); missing editor weights are one line naming first_frame.*."""
    from .first_frame import build_stage

    return build_stage(container(cfg.get("first_frame")) or {}, str(cfg.paths.cache) if cfg.get("paths") else None)


def selected_ids(cfg: DictConfig, dataset) -> tuple[list[str], int, int]:
    """The ids this worker edits: ``dataset.limit`` / ``dataset.ids``, then shard ``dataset.shard`` of
    ``dataset.num_shards``."""
    ids = select_ids(dataset.sample_ids(), cfg.dataset.get("limit"), cfg.dataset.get("ids"))
    num_shards, shard = int(cfg.dataset.get("num_shards", 1)), int(cfg.dataset.get("shard", 0))
    try:
        return shard_ids(ids, num_shards, shard), num_shards, shard
    except ValueError as e:
        raise ConfigError(str(e)) from None


def build_video_pipeline(cfg: DictConfig):
    """The video model's pipeline (fails fast on missing weights), its size multiple checked against the config."""
    from videoshop.models import build_pipeline

    pipeline = build_pipeline(cfg.model, cfg.device, container(cfg.get("runtime")))
    pipeline.set_progress_bar_config(disable=not cfg.get("progress_bars", False), leave=False)
    m = int(getattr(pipeline, "size_multiple", 1) or 1)
    bad = [f"{k}={cfg.model[k]}" for k in ("height", "width") if int(cfg.model[k]) % m]
    if bad:  # known only once the model is built; still before the first sample
        raise ConfigError(f"model.{bad[0]}: must be a multiple of {m} for model={cfg.model.name}")
    return pipeline


def _instantiate_node(key: str, node, **kw):
    """``instantiate(node)``; a failure (a missing folder, missing weights) becomes one line naming ``key``."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kw)
    except InstantiationException as e:
        cause = e.__cause__ or e
        raise ConfigError(f"{key}: {one_line(cause)}") from cause


def _instantiate_metric(key: str, node):
    """Build one metric; a failure (e.g. missing weights) becomes one line naming metrics.<key>."""
    return _instantiate_node(f"metrics.{key}", node)


def _instantiate_own_model_method(cfg: DictConfig):
    """A method whose class says ``uses_video_model = False`` (it loads its own models): built with ``device=`` instead of
    ``pipeline=``; its missing weights raise the loader's one-line error (MissingWeightsError) at start-up."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from videoshop.models import resolve_device

    node = OmegaConf.to_container(cfg.method, resolve=True)
    try:
        return instantiate(node, device=str(resolve_device(cfg.device)), _convert_="all")
    except InstantiationException as e:
        cause = e.__cause__ or e
        if isinstance(cause, (RuntimeError, ValueError, OSError)) and "\n" not in str(cause).strip():
            raise cause from None
        raise ConfigError(f"method ({cfg.method.name}): {one_line(cause)}") from cause


def _read_prompt_overrides(path: str) -> dict:
    from videoshop_bench.baselines.text.prompts import read_prompt_overrides

    try:
        return read_prompt_overrides(str(path))
    except (OSError, ValueError) as e:
        raise ConfigError(one_line(e)) from None
