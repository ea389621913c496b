"""The Hydra edge of the dataset builders: ``python run.py task=build dataset=<magicbrush|expert|...>``.

``run_build(cfg)`` reads ``cfg.dataset.build`` (plus ``cfg.dataset.limit`` / ``cfg.dataset.ids``, ``cfg.model``,
``cfg.seed``, ``cfg.device``) and calls the builder function ``dataset.build._target_`` names, one per kind
(datasets/registry.py: ``_target_: videoshop_bench.experiments.build.${dataset.build.kind}_from_config``), each a thin adapter onto
the plain library builders in ``datasets/``: ``magicbrush`` (SVD-animated MagicBrush turns), ``expert`` (raw user
videos from a manifest or folder), ``hdvila_sample`` (seeded selection of downloaded HD-VILA-100M clips for an expert
set). A new builder is one ``<kind>_from_config(cfg, build, out, limit, ids, seed, shard)`` function.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from videoshop_bench.datasets.registry import BUILD_KEYS, DATASETS, FROM_VIDEO_KEYS

log = logging.getLogger(__name__)

BUILDERS = ("magicbrush", "expert", "hdvila_sample",  # the kinds this module has a <kind>_from_config for
            "editversebench", "five_bench", "v2vbench", "davis")
FRAME_KEYS = ("num_frames", "height", "width")  # BUILD_KEYS that default to the model's


def _plain(node) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _model_info(model: dict) -> dict:
    keys = ("name", "kind", "hub_id", "path", "variant", "dtype", "seed")
    return {k: model.get(k) for k in keys if k in model}


def _require(build: dict, key: str, hint: str = "") -> Any:
    value = build.get(key)
    if value in (None, ""):
        raise ValueError(f"dataset.build.{key} is not set{': ' + hint if hint else ''}")
    return value


def buildable() -> list[str]:
    """The datasets ``task=build`` makes (the registry's entries with a builder)."""
    return [e.name for e in DATASETS if e.builder is not None]


def shared_options(cfg, build: dict, from_video: bool = True) -> dict:
    """The keys every builder reads, declared once by the dataset registry (datasets/registry.py ``BUILD_KEYS``;
    ``FROM_VIDEO_KEYS`` too for a builder cutting clips from videos), with this build's values: the frame count and
    size (null: the model's), ``overwrite``, and ``fit`` / ``sample_fps``."""
    model = _plain(cfg.get("model")) or {}
    out: dict[str, Any] = {}
    for key in FRAME_KEYS:
        value = build.get(key) if build.get(key) is not None else model.get(key)
        if value is None:
            raise ValueError(f"dataset.build.{key} is not set (and there is no model.{key})")
        out[key] = int(value)
    out["overwrite"] = bool(build.get("overwrite", BUILD_KEYS["overwrite"]))
    if from_video:
        out.update({key: build.get(key, default) for key, default in FROM_VIDEO_KEYS.items()})
    return out


def own_options(builder: Callable, build: dict, taken: dict) -> dict:
    """The build node's values of ``builder``'s own keyword-only options (its signature declares them once: name,
    type, default; conf/dataset/<name>.yaml overrides), each checked before any work (one line naming
    ``dataset.build.<key>``), beside the options in ``taken``."""
    import inspect

    from videoshop.options import signature_checks

    checks, _ = signature_checks(builder)
    keyword_only = {n for n, p in inspect.signature(builder).parameters.items() if p.kind is p.KEYWORD_ONLY}
    out = {}
    for key, value in build.items():
        if key in checks and key in keyword_only and key not in taken:
            why = checks[key].problem(value)
            if why:
                raise ValueError(f"dataset.build.{key}={value!r}: {why}")
            out[key] = value
    return {**out, **taken}


def run_build(cfg, label: Optional[str] = None) -> dict:
    """Build the dataset ``cfg.dataset`` describes; returns the build report (also written next to the data)."""
    from hydra.utils import get_method

    dataset = cfg.dataset
    build = _plain(dataset.get("build")) if "build" in dataset else None
    if not build:
        raise ValueError(f"dataset={dataset.get('name')} has nothing to build (no dataset.build node); "
                         f"buildable datasets: {', '.join(buildable())}")
    kind, target = build.get("kind") or dataset.get("name"), build.get("_target_")
    if not target:
        raise ValueError("dataset.build._target_ is not set: the builder function (e.g. "
                         "videoshop_bench.experiments.build.magicbrush_from_config)")
    try:
        builder = get_method(target)
    except Exception:  # noqa: BLE001  (hydra wraps the import error)
        raise ValueError(f"dataset.build.kind={kind!r}: no builder {target} (expected one of {BUILDERS})") from None
    limit, ids = _plain(dataset.get("limit")), _plain(dataset.get("ids"))
    if isinstance(ids, str):
        ids = [s for s in ids.replace(",", " ").split() if s]
    seed = int(build["seed"] if build.get("seed") is not None else cfg.get("seed", 0) or 0)
    shard = {key: int(build.get(key) or BUILD_KEYS[key]) for key in ("shard_index", "num_shards")}
    out = _require(build, "out", "where the built samples go")
    report = builder(cfg, build, out=out, limit=limit, ids=ids, seed=seed, shard=shard)
    log.info("build %s: %s", kind, report.get("counts"))
    return report


def magicbrush_from_config(cfg, build: dict, out: str, limit, ids, seed: int, shard: dict) -> dict:
    """MagicBrush turns animated with the configured SVD (``cfg.model`` on ``cfg.device``)."""
    from videoshop_bench.datasets.magicbrush import build_magicbrush
    from videoshop.models import build_pipeline

    model = _plain(cfg.model)
    device = str(cfg.get("device", "auto") or "auto")

    def pipeline():
        log.info("loading model %s on %s", model.get("name", model.get("kind")), device)
        pipe = build_pipeline(model, device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    source = _require(build, "source", "a hub id (osunlp/MagicBrush) or a folder of its parquet files")
    taken = dict(shared_options(cfg, build, from_video=False), limit=limit, ids=ids, seed=seed,
                 model_info=_model_info(model), **shard)
    return build_magicbrush(source, out, pipeline, **own_options(build_magicbrush, build, taken))


def expert_from_config(cfg, build: dict, out: str, limit, ids, seed: int, shard: dict) -> dict:
    """Raw user videos (a manifest or a folder of sample folders) converted to the model's frames and size."""
    from videoshop_bench.datasets.expert import build_expert

    source = _require(build, "source", "a CSV/JSONL manifest or a folder of sample folders")
    taken = dict(shared_options(cfg, build), name=str(cfg.dataset.get("name") or "expert"), limit=limit, ids=ids,
                 **shard)
    return build_expert(source, out, **own_options(build_expert, build, taken))


def hdvila_sample_from_config(cfg, build: dict, out: str, limit, ids, seed: int, shard: dict) -> dict:
    """A seeded selection of downloaded HD-VILA-100M clips, written as a manifest for the experts to fill in."""
    from videoshop_bench.datasets.hdvila import sample_hdvila_clips, write_selection

    settings = {"metadata": _require(build, "metadata", "a local HD-VILA-100M metadata JSONL file"),
                "clips_dir": _require(build, "clips_dir", "the folder of downloaded clips"),
                **own_options(sample_hdvila_clips, build, dict(seed=seed))}
    chosen = sample_hdvila_clips(**settings)
    out = build.get("selection_out") or out
    manifest = write_selection(chosen, out, export_first_frames=bool(build.get("export_first_frames", True)),
                               settings=settings)
    return {"root": str(out), "manifest": str(manifest), "selected": [c["clip_id"] for c in chosen],
            "counts": {"selected": len(chosen)}, "settings": settings}


# ----------------------------------------------------------------------------- published editing benchmarks
def benchmark_from_config(builder: Callable, source_hint: str, cfg, build: dict, out: str, limit, ids,
                          shard: dict) -> dict:
    """A benchmark builder (``videoshop_bench.datasets.benchmarks.build_benchmark`` underneath) with the shared keys and its own."""
    taken = dict(shared_options(cfg, build), limit=limit, ids=ids, **shard)
    return builder(_require(build, "source", source_hint), out, **own_options(builder, build, taken))


def editversebench_from_config(cfg, build: dict, out: str, limit, ids, seed: int, shard: dict) -> dict:
    """EditVerseBench entries (test.json) with their shipped edited first frames and masks."""
    from videoshop_bench.datasets.editversebench import build_editversebench

    return benchmark_from_config(build_editversebench, "the EditVerseBench folder (test.json, videos/, ...)", cfg,
                                 build, out, limit, ids, shard)


def five_bench_from_config(cfg, build: dict, out: str, limit, ids, seed: int, shard: dict) -> dict:
    """FiVE-Bench entries (edit_prompt/edit<k>_FiVE.json) with masks and judge questions."""
    from videoshop_bench.datasets.five_bench import build_five_bench

    return benchmark_from_config(build_five_bench, "the FiVE-Bench data folder (edit_prompt/, images/, bmasks/)",
                                 cfg, build, out, limit, ids, shard)


def v2vbench_from_config(cfg, build: dict, out: str, limit, ids, seed: int, shard: dict) -> dict:
    """V2VBench: 50 videos x 3 edit prompts (config.yaml)."""
    from videoshop_bench.datasets.v2vbench import build_v2vbench

    return benchmark_from_config(build_v2vbench, "the V2VBench folder (config.yaml and the videos)", cfg, build, out,
                                 limit, ids, shard)


def davis_from_config(cfg, build: dict, out: str, limit, ids, seed: int, shard: dict) -> dict:
    """DAVIS 2017 sequences with an edits manifest, or as reconstruction samples."""
    from videoshop_bench.datasets.davis import build_davis

    return benchmark_from_config(build_davis, "the DAVIS 2017 folder (JPEGImages/, Annotations/)", cfg, build, out,
                                 limit, ids, shard)
