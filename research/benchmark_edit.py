"""Time one edit, stage by stage, beside diffusers' own StableVideoDiffusionPipeline at equal work (a script).

    python -m videoshop_bench.research.benchmark_edit                                   # toy model, CPU, embedded default
    python -m videoshop_bench.research.benchmark_edit model=svd_random device=cuda      # full-size SVD, random weights, fp16
    python -m videoshop_bench.research.benchmark_edit model=svd_random device=cuda runtime=fast bench.repeats=5
    python -m videoshop_bench.research.benchmark_edit model=tiny method=videoshop_no_extrapolation bench.reference=false

Composed by Hydra like run.py (conf/benchmark_edit.yaml = conf/config.yaml + ``bench.*``), so any model, method,
runtime option, dataset or metric set can be timed. The edit runs on the dataset's first sample, through the same
objects the runner uses (dataset, method, metrics). Per repetition it reports:

- our stages: VAE ``encode`` (source video, conditioning images), ``invert``, ``generate``, ``decode`` (with the
  Eq. 8 rescaling), the whole ``edit`` (the method's call), ``metrics`` (every per-sample metric of the metric
  set; the source-side cache is warm after the warm-up), and the runner's per-sample ``overhead``: loading and
  preparing the sample, resizing the output and writing frames + record, i.e. everything outside model calls;
- ``reference``: diffusers' StableVideoDiffusionPipeline on the SAME components, resolution, frame count and dtype,
  running exactly as many UNet forward passes of each batch size as our edit did (counted with a forward hook:
  Videoshop's defaults give 13 passes of batch 1 for the inversion and 13 classifier-free-guided passes of batch 2
  for the generation, so the reference runs 13 CFG steps, then 13 steps without CFG returning latents);
- NFE, peak memory (videoshop.speed.peak_memory_mb over the edit. CUDA: torch.cuda.max_memory_allocated; CPU on
  Linux: the process's peak resident memory during the edit, VmHWM reset before it, weights loaded before included).

Warm-up: ``bench.warmup`` untimed repetitions first (they include torch.compile's compilation when
``runtime.compile=true``, reported separately as ``first_call_s``). Then ``bench.repeats`` timed repetitions,
summarised as min and median. Results go to ``bench.out`` (JSON + Markdown) and are printed.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import hydra
from omegaconf import DictConfig, OmegaConf

from videoshop import _compat  # noqa: F401
import videoshop_bench.experiments  # noqa: F401,E402  (the config store: metric sets, dataset entries, model families, before composing)
from videoshop.speed import peak_memory_mb, reset_peak_memory

log = logging.getLogger("benchmark_edit")


class UNetCallCounter:
    """Counts UNet forward passes by batch size (a forward hook; removed with ``close``)."""

    def __init__(self, unet):
        self.by_batch: dict[int, int] = {}
        self._handle = unet.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        b = int(args[0].shape[0])
        self.by_batch[b] = self.by_batch.get(b, 0) + 1

    def reset(self) -> None:
        self.by_batch = {}

    def close(self) -> None:
        self._handle.remove()


def _sync(device) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable, device) -> tuple[Any, float]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


def reference_pipeline(pipe):
    """diffusers' StableVideoDiffusionPipeline sharing ``pipe``'s five components (no copies)."""
    from diffusers import StableVideoDiffusionPipeline

    ref = StableVideoDiffusionPipeline(vae=pipe.vae, image_encoder=pipe.image_encoder, unet=pipe.unet,
                                       scheduler=pipe.scheduler, feature_extractor=pipe.feature_extractor)
    ref.set_progress_bar_config(disable=True)
    return ref


def run_reference(ref, image, num_frames: int, height: int, width: int, passes: dict[int, int], guidance: float,
                  noise_aug: float, seed: int, device) -> None:
    """Equal work: ``passes[2]`` CFG steps (batch-2 UNet passes, decoded to frames), then ``passes[1]`` steps without
    CFG (batch-1 passes, latents only), each with its own scheduler run (diffusers needs >= 1 step per call)."""
    import torch
    from PIL import Image

    img = Image.fromarray(image)
    common = dict(num_frames=num_frames, height=height, width=width, noise_aug_strength=noise_aug,
                  decode_chunk_size=num_frames)
    if passes.get(2):
        ref(img, num_inference_steps=passes[2], min_guidance_scale=guidance, max_guidance_scale=guidance,
            generator=torch.Generator(device="cpu").manual_seed(seed), output_type="np", **common)
    if passes.get(1):
        ref(img, num_inference_steps=passes[1], min_guidance_scale=1.0, max_guidance_scale=1.0,
            generator=torch.Generator(device="cpu").manual_seed(seed), output_type="latent", **common)


class StageClock:
    """Wraps bound methods of the runner so that each call's wall time is added to a named stage."""

    def __init__(self, device):
        self.device, self.seconds = device, {}

    def wrap(self, obj, attr: str, stage: str) -> None:
        fn = getattr(obj, attr)

        def timed(*a, **kw):
            out, dt = _timed(lambda: fn(*a, **kw), self.device)
            self.seconds[stage] = self.seconds.get(stage, 0.0) + dt
            return out

        setattr(obj, attr, timed)


def summarise(reps: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = sorted({k for r in reps for k in r})
    return {k: {"min": min(r[k] for r in reps if k in r), "median": statistics.median(r[k] for r in reps if k in r)}
            for k in keys}


def benchmark(cfg: DictConfig) -> dict[str, Any]:
    from videoshop_bench.experiments.runner import Runner

    b = cfg.bench
    t0 = time.perf_counter()
    runner = Runner(cfg, label=cfg.method.name)
    load_s = time.perf_counter() - t0
    pipe = runner.pipeline
    pipe.sync_timings = True
    device = pipe.compute_device
    sid = runner.ids[0]
    clock = StageClock(device)
    for attr, stage in (("prepare", "prepare"), ("score", "metrics")):
        clock.wrap(runner, attr, stage)
    clock.wrap(runner.method, "edit", "edit")
    clock.wrap(runner.store, "write", "write")
    counter = UNetCallCounter(pipe.unet)

    def run_once() -> dict[str, float]:
        clock.seconds = {}
        counter.reset()
        reset_peak_memory(device)
        rec, total = _timed(lambda: runner.process(sid), device)
        if rec.get("status") != "ok":
            raise RuntimeError(f"the benchmark edit failed: {rec.get('error')}")
        row = dict(clock.seconds)
        row.update({k: v for k, v in (rec.get("info", {}).get("timings") or {}).items()})
        row["sample_total"] = total
        row["overhead"] = total - row.get("edit", 0.0) - row.get("metrics", 0.0)
        row["peak_mem_mb"] = peak_memory_mb(device)
        row["nfe"] = float(rec.get("nfe", 0))
        return row

    first, first_s = _timed(run_once, device)
    for _ in range(max(0, int(b.warmup) - 1)):
        run_once()
    passes = dict(counter.by_batch)
    reps = [run_once() for _ in range(int(b.repeats))]
    counter.close()
    result: dict[str, Any] = {
        "model": cfg.model.name, "method": cfg.method.name, "device": str(device), "dtype": str(pipe.unet.dtype),
        "runtime": OmegaConf.to_container(cfg.runtime), "frames": int(cfg.model.num_frames),
        "height": int(cfg.model.height), "width": int(cfg.model.width), "sample": sid,
        "load_s": load_s, "first_call_s": first_s, "warmup": int(b.warmup), "repeats": int(b.repeats),
        "unet_passes_by_batch": passes, "ours": summarise(reps),
    }
    if b.reference and hasattr(pipe, "unet"):
        result["reference"] = reference_timing(cfg, runner, sid, passes, device)
        result["ratio_edit_to_reference_median"] = result["ours"]["edit"]["median"] / result["reference"]["total"]["median"]
    return result


def reference_timing(cfg: DictConfig, runner, sid: str, passes: dict, device) -> dict[str, Any]:
    """diffusers' own StableVideoDiffusionPipeline on the same components, at the same UNet passes as our edit."""
    import torch

    from videoshop.method import sample_seed

    b, pipe = cfg.bench, runner.pipeline
    sample, _ = runner.prepare(sid)
    ref = reference_pipeline(pipe)
    m = runner.method.config if hasattr(runner.method, "config") else None
    guidance = float(m.max_guidance_scale) if m is not None else 3.0
    noise_aug = float(m.noise_aug_strength) if m is not None else 0.02
    ref_counter = UNetCallCounter(pipe.unet)
    args = (sample.edited_image, int(cfg.model.num_frames), int(cfg.model.height), int(cfg.model.width), passes,
            guidance, noise_aug, sample_seed(cfg.seed, sid), device)
    with torch.no_grad():
        for _ in range(int(b.warmup)):
            run_reference(ref, *args)
        ref_counter.reset()
        ref_reps = []
        for _ in range(int(b.repeats)):
            reset_peak_memory(device)
            _, dt = _timed(lambda: run_reference(ref, *args), device)
            ref_reps.append({"total": dt, "peak_mem_mb": peak_memory_mb(device)})
    ref_passes = {k: v // int(b.repeats) for k, v in ref_counter.by_batch.items()}
    ref_counter.close()
    if ref_passes != passes:
        raise RuntimeError(f"reference ran UNet passes {ref_passes}, ours {passes}: not equal work")
    return summarise(ref_reps)


def to_markdown(r: dict[str, Any]) -> str:
    lines = [f"# Edit benchmark: {r['method']} on {r['model']} ({r['frames']} x {r['height']} x {r['width']}, "
             f"{r['dtype']}, {r['device']})", "",
             f"runtime options: {json.dumps(r['runtime'])}; UNet passes by batch size: {r['unet_passes_by_batch']}; "
             f"model load {r['load_s']:.2f} s; first call (warm-up, incl. any compilation) {r['first_call_s']:.2f} s; "
             f"{r['warmup']} warm-up + {r['repeats']} timed repetitions", "",
             "| stage | min (s) | median (s) |", "|---|---|---|"]
    order = ["prepare", "encode", "invert", "generate", "decode", "edit", "metrics", "write", "overhead", "sample_total"]
    for k in order + sorted(set(r["ours"]) - set(order) - {"peak_mem_mb", "nfe"}):
        if k in r["ours"]:
            lines.append(f"| {k} | {r['ours'][k]['min']:.4f} | {r['ours'][k]['median']:.4f} |")
    lines.append(f"| peak memory (MB) | {r['ours']['peak_mem_mb']['min']:.0f} | {r['ours']['peak_mem_mb']['median']:.0f} |")
    lines.append(f"| NFE | {r['ours']['nfe']['min']:.0f} | {r['ours']['nfe']['median']:.0f} |")
    if "reference" in r:
        ref = r["reference"]
        lines += ["", "diffusers StableVideoDiffusionPipeline, same components and UNet passes:", "",
                  f"| reference total | {ref['total']['min']:.4f} | {ref['total']['median']:.4f} |",
                  f"| reference peak memory (MB) | {ref['peak_mem_mb']['min']:.0f} | {ref['peak_mem_mb']['median']:.0f} |",
                  "", f"**edit / reference (medians): {r['ratio_edit_to_reference_median']:.3f}**"]
    return "\n".join(lines) + "\n"


@hydra.main(version_base="1.3", config_path="../conf", config_name="benchmark_edit")
def main(cfg: DictConfig) -> None:
    result = benchmark(cfg)
    out = Path(cfg.bench.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(result, indent=1, default=str))
    md = to_markdown(result)
    (out / "benchmark.md").write_text(md)
    print(md)
    print(f"written to {out}/benchmark.{{json,md}}")


if __name__ == "__main__":
    main()
