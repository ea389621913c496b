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
from typing import Any, Optional

log = logging.getLogger(__name__)

BUILDERS = ("magicbrush", "expert", "hdvila_sample",  # the kinds this module has a <kind>_from_config for
            "editversebench", "five_bench", "v2vbench", "davis")


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


def run_build(cfg, label: Optional[str] = None) -> dict:
    """Build the dataset ``cfg.dataset`` describes; returns the build report (also written next to the data)."""
    from hydra.utils import get_method

    dataset = cfg.dataset
    build = _plain(dataset.get("build")) if "build" in dataset else None
    if not build:
        raise ValueError(f"dataset={dataset.get('name')} has nothing to build (no dataset.build node); "
                         f"buildable datasets: magicbrush, expert, editversebench, five_bench, v2vbench, davis")
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
    shard = dict(shard_index=int(build.get("shard_index") or 0), num_shards=int(build.get("num_shards") or 1))
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

    report = build_magicbrush(
        _require(build, "source", "a hub id (osunlp/MagicBrush) or a folder of its parquet files"), out,
        pipeline, split=build.get("split", "dev"), turns=build.get("turns", "first"), limit=limit, ids=ids,
        num_frames=int(build.get("num_frames") or model.get("num_frames", 14)),
        height=int(build.get("height") or model.get("height", 576)),
        width=int(build.get("width") or model.get("width", 1024)), fit=build.get("fit", "resize"),
        num_inference_steps=int(build.get("num_inference_steps", 25)),
        noise_aug_strength=float(build.get("noise_aug_strength", 0.02)),
        min_guidance_scale=float(build.get("min_guidance_scale", 1.0)),
        max_guidance_scale=float(build.get("max_guidance_scale", 3.0)), fps=int(build.get("fps", 7)),
        motion_bucket_id=int(build.get("motion_bucket_id", 127)),
        decode_chunk_size=build.get("decode_chunk_size"), seed=seed,
        mask_polarity=build.get("mask_polarity", "auto"),
        replace_first_frame=bool(build.get("replace_first_frame", False)),
        overwrite=bool(build.get("overwrite", False)), model_info=_model_info(model),
        cache_dir=build.get("cache_dir"), **shard)
    return report


def expert_from_config(cfg, build: dict, out: str, limit, ids, seed: int, shard: dict) -> dict:
    """Raw user videos (a manifest or a folder of sample folders) converted to the model's frames and size."""
    dataset = cfg.dataset
    from videoshop_bench.datasets.expert import build_expert

    model = _plain(cfg.get("model")) or {}
    report = build_expert(
        _require(build, "source", "a CSV/JSONL manifest or a folder of sample folders"), out,
        name=str(dataset.get("name") or "expert"),
        num_frames=int(build.get("num_frames") or model.get("num_frames", 14)),
        height=int(build.get("height") or model.get("height", 576)),
        width=int(build.get("width") or model.get("width", 1024)), fit=build.get("fit", "crop"),
        sample_fps=build.get("sample_fps"), require_mask=bool(build.get("require_mask", True)),
        limit=limit, ids=ids, overwrite=bool(build.get("overwrite", False)), **shard)
    return report


def hdvila_sample_from_config(cfg, build: dict, out: str, limit, ids, seed: int, shard: dict) -> dict:
    """A seeded selection of downloaded HD-VILA-100M clips, written as a manifest for the experts to fill in."""
    from videoshop_bench.datasets.hdvila import sample_hdvila_clips, write_selection

    settings = {"metadata": _require(build, "metadata", "a local HD-VILA-100M metadata JSONL file"),
                "clips_dir": _require(build, "clips_dir", "the folder of downloaded clips"),
                "n": int(build.get("n") or 45), "seed": seed, "min_duration": build.get("min_duration"),
                "max_duration": build.get("max_duration"), "one_per_video": bool(build.get("one_per_video", True))}
    chosen = sample_hdvila_clips(**settings)
    out = build.get("selection_out") or out
    manifest = write_selection(chosen, out, export_first_frames=bool(build.get("export_first_frames", True)),
                               settings=settings)
    report = {"root": str(out), "manifest": str(manifest), "selected": [c["clip_id"] for c in chosen],
              "counts": {"selected": len(chosen)}, "settings": settings}
    return report


# ----------------------------------------------------------------------------- published editing benchmarks
def _benchmark_options(cfg, build: dict, limit, ids, shard: dict) -> dict:
    """The options every benchmark builder shares (videoshop_bench.datasets.benchmarks.build_benchmark)."""
    model = _plain(cfg.get("model")) or {}
    return dict(num_frames=int(build.get("num_frames") or model.get("num_frames", 14)),
                height=int(build.get("height") or model.get("height", 576)),
                width=int(build.get("width") or model.get("width", 1024)), fit=build.get("fit", "crop"),
                sample_fps=build.get("sample_fps"), first_frames=build.get("first_frames"), limit=limit, ids=ids,
                overwrite=bool(build.get("overwrite", False)), **shard)


def editversebench_from_config(cfg, build: dict, out: str, limit, ids, seed: int, shard: dict) -> dict:
    """EditVerseBench entries (test.json) with their shipped edited first frames and masks."""
    from videoshop_bench.datasets.editversebench import build_editversebench

    return build_editversebench(_require(build, "source", "the EditVerseBench folder (test.json, videos/, ...)"), out,
                                only_with_first_frame=bool(build.get("only_with_first_frame", True)),
                                types=build.get("types"), **_benchmark_options(cfg, build, limit, ids, shard))


def five_bench_from_config(cfg, build: dict, out: str, limit, ids, seed: int, shard: dict) -> dict:
    """FiVE-Bench entries (edit_prompt/edit<k>_FiVE.json) with masks and judge questions."""
    from videoshop_bench.datasets.five_bench import build_five_bench

    return build_five_bench(_require(build, "source", "the FiVE-Bench data folder (edit_prompt/, images/, bmasks/)"),
                            out, edit_types=build.get("edit_types"), mask_threshold=int(build.get("mask_threshold", 127)),
                            **_benchmark_options(cfg, build, limit, ids, shard))


def v2vbench_from_config(cfg, build: dict, out: str, limit, ids, seed: int, shard: dict) -> dict:
    """V2VBench: 50 videos x 3 edit prompts (config.yaml)."""
    from videoshop_bench.datasets.v2vbench import build_v2vbench

    return build_v2vbench(_require(build, "source", "the V2VBench folder (config.yaml and the videos)"), out,
                          videos=build.get("videos"), **_benchmark_options(cfg, build, limit, ids, shard))


def davis_from_config(cfg, build: dict, out: str, limit, ids, seed: int, shard: dict) -> dict:
    """DAVIS 2017 sequences with an edits manifest, or as reconstruction samples."""
    from videoshop_bench.datasets.davis import build_davis

    return build_davis(_require(build, "source", "the DAVIS 2017 folder (JPEGImages/, Annotations/)"), out,
                       mode=build.get("mode", "edit"), edits=build.get("edits"),
                       resolution=build.get("resolution", "480p"), split=build.get("split", "all"),
                       **_benchmark_options(cfg, build, limit, ids, shard))
