"""Glue between configs and the library: build the pipeline a model config describes."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from videoshop import _compat  # noqa: F401


def build_pipeline(model_cfg: Mapping[str, Any], device: str = "auto", runtime: Optional[Mapping[str, Any]] = None):
    """A ``VideoshopPipeline`` on ``device`` from a conf/model/*.yaml mapping (fails fast on missing weights), set up
    with the speed/memory options of a conf/runtime/*.yaml mapping (``videoshop.speed.RuntimeOptions``)."""
    import torch

    from videoshop.models import load_components, resolve_device, resolve_dtype
    from videoshop.pipeline import VideoshopPipeline
    from videoshop.speed import RuntimeOptions, apply_runtime_options

    options = RuntimeOptions.from_dict(dict(runtime or {}))

    dev = resolve_device(device)
    dtype = resolve_dtype(str(model_cfg.get("dtype", "auto")), dev)
    comps = load_components(
        model_cfg["kind"], hub_id=model_cfg.get("hub_id"), path=model_cfg.get("path"), seed=int(model_cfg.get("seed", 0)),
        num_frames=int(model_cfg.get("num_frames", 14)), dtype=dtype, variant=model_cfg.get("variant"),
        allow_download=bool(model_cfg.get("allow_download", True)),
    )
    pipe = VideoshopPipeline(**comps)
    if options.offload == "model":  # weights stay on the CPU; each stage moves its modules to `dev` while it runs
        pipe.execution_device = dev
    else:
        pipe = pipe.to(dev)
    apply_runtime_options(pipe, options)
    if dev.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads()))
    return pipe
