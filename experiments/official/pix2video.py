"""Pix2Video against duyguceylan/pix2video (@304d318): the project side of the comparison and the stage list.

Both sides load the same checkpoint directory (tiny SD2-depth layout, ``weights.write_sd_layout``); the depth
estimator is not under test and is replaced on both sides by the same fixed maps (official: the ``%06d.npy`` depth
cache that ``file_utils.load_depth`` reads; project: ``videoshop_bench.baselines.pix2video.predicted_depth`` patched to return them).
Pix2Video draws no random number that reaches its output (inversion, DDIM eta 0), so no draws need aligning.

Project-side patches (recording wrappers, return values unchanged, plus the depth replacement): see ``PROJECT_PATCHES``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .compare import Stage, appending, patched, record_decodes

OFFICIAL_COMMIT = "304d318"
SIDE_SCRIPT = "pix2video_side.py"
PROJECT_PATCHES = [
    "videoshop_bench.baselines.pix2video.predicted_depth -> the fixed depth maps (the estimator is not under test)",
    "videoshop_bench.baselines.pix2video.resize_frames/encode_prompts/vae_encode/depth_condition/ddim_invert/ddim_sample and "
    "vae.decode: recording wrappers (return values unchanged)",
]
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 clip_sample=False, set_alpha_to_one=False, steps_offset=0)

# Two input configurations: the native square size (frames already at the method's size) and the paper's 16:9
# frames (resized to the square by each side's own preprocessing). Tiny scale: S = 64 px stands for 512.
CONFIGS = {
    "square": dict(height=64, width=64),
    "16:9": dict(height=72, width=128),
}
SETTINGS = dict(side=64, num_frames=3, steps=30, guidance_scale=7.5, source_prompt="a red car on a road",
                target_prompt="a blue car on a road, watercolor")


def write_weights(directory) -> dict[str, str]:
    """The tiny SD2-depth checkpoint (5-channel UNet, SD layout) both sides load; returns sha256 per file."""
    from .weights import build_tiny_sd, write_sd_layout

    comps = build_tiny_sd(in_channels=5, sd2=True, seed=0, sample_size=SETTINGS["side"] // 8)
    return write_sd_layout(directory, **comps, scheduler_config=SCHEDULER,
                           pipeline_class="StableDiffusionDepth2ImgPipeline")


def make_inputs(config: str) -> dict[str, Any]:
    """Frames from the project's synthetic generator at the configuration's size, fixed smooth depth maps (24x24,
    positive), prompts and settings: what both sides receive."""
    from videoshop_bench.datasets.synthetic import make_sample

    size = CONFIGS[config]
    s = make_sample(0, 0, num_frames=SETTINGS["num_frames"], height=size["height"], width=size["width"])
    g = np.random.default_rng(1)
    yy, xx = np.mgrid[0:24, 0:24] / 23.0
    depth = np.stack([1.0 + xx * (0.5 + 0.1 * i) + 0.3 * yy + 0.05 * g.standard_normal((24, 24))
                      for i in range(SETTINGS["num_frames"])]).astype(np.float32)
    return dict(frames=s.source_video, depth=depth, **SETTINGS)


@contextmanager
def _recording(rec: dict, depth: np.ndarray):
    import videoshop_bench.baselines.pix2video as p2v

    orig_sample = p2v.ddim_sample

    def ddim_sample(eps_fn, x_T, sched, g, callback=None, **kw):
        def cb(i, t, x_prev, x0):
            out = callback(i, t, x_prev, x0) if callback is not None else None
            rec.setdefault("x0", []).append(x0.clone())
            rec.setdefault("after_step", []).append((x_prev if out is None else out).clone())
            return out
        return orig_sample(eps_fn, x_T, sched, g, callback=cb, **kw)

    kept = {k: appending(rec, k, getattr(p2v, k))
            for k in ("resize_frames", "encode_prompts", "vae_encode", "depth_condition", "ddim_invert")}
    with patched(p2v, predicted_depth=lambda *a, **kw: torch.from_numpy(depth), ddim_sample=ddim_sample, **kept):
        yield


def run_project(weights_dir, inputs: dict, official: Any = None, **options) -> dict[str, Any]:
    """The project's Pix2Video on ``inputs`` with the checkpoint in ``weights_dir``; returns the recorded stages."""
    from videoshop_bench.baselines.pix2video import Pix2Video
    from videoshop_bench.baselines.text.models import load_pretrained_sd
    from videoshop_bench.datasets.schema import Sample

    side = int(inputs["side"])
    method = Pix2Video(weights="tiny", height=side, width=side, num_inference_steps=int(inputs["steps"]),
                       guidance_scale=float(inputs["guidance_scale"]), scheduler=SCHEDULER, **options)
    method.models = load_pretrained_sd(str(weights_dir), key="method.base")
    method.trace = []
    rec: dict = {}
    record_decodes(method.models.vae, rec)
    frames = inputs["frames"]
    sample = Sample("official_check", frames, frames[0], source_prompt=inputs["source_prompt"],
                    target_prompt=inputs["target_prompt"])
    with _recording(rec, inputs["depth"]):
        result = method.edit(sample, torch.Generator().manual_seed(0))
    rec["frames"] = result.frames
    rec["trace"] = method.trace
    rec["layers"] = sorted({e["layer"] for e in method.trace}, key=[e["layer"] for e in method.trace].index)
    return rec


def _features_ours(rec: dict, frames: int, steps: int) -> list[np.ndarray]:
    """Per injected layer: (frame, step, 2 [uncond, cond], N, C) from the processors' trace."""
    out = []
    for layer in rec["layers"]:
        entries = [e["query_input"] for e in rec["trace"] if e["layer"] == layer]  # order: step, then frame
        t = torch.stack(entries).reshape(steps, frames, *entries[0].shape)
        out.append(t.transpose(0, 1).numpy())
    return out


def _features_official(off: dict) -> list[np.ndarray]:
    """Per injected layer (COND_LAYER onwards): (frame, step, 2 [uncond, cond], N, C) from img2img's returns."""
    per_frame = off["img2img"]
    n_layers = len(per_frame[0]["feat_cond"][0])
    out = []
    for j in range(n_layers):
        out.append(np.stack([np.stack([torch.cat([fu[j], fc[j]]).numpy()
                                       for fu, fc in zip(f["feat_uncond"], f["feat_cond"])]) for f in per_frame]))
    return out


def stages(ours: dict, off: dict) -> list[Stage]:
    """Every stage both sides expose, in pipeline order."""
    F_, S = len(off["img2img"]), len(off["img2img"][0]["x0"])
    inv_ctx, edit_ctx = off["contexts"][0], off["contexts"][-1]
    off_emb = torch.cat([inv_ctx[1], edit_ctx[1], edit_ctx[0]])  # source, target, uncond ("")
    after = []
    steps_in = off["step_inputs"]
    for f in range(F_):
        ins = steps_in[f * S:(f + 1) * S]
        after.append(torch.cat(ins[1:] + [off["final_latents"][f]]))
    ours_after = torch.stack(ours["after_step"]).transpose(0, 1)  # (frame, step, C, h, w)
    out = [
        Stage("frames at model size (uint8)", ours["resize_frames"][0], off["resized"], ("frame",), 0.5, True),
        Stage("prompt embeddings [source, target, uncond]", ours["encode_prompts"][0], off_emb, ("prompt",)),
        Stage("depth condition", ours["depth_condition"][0], off["depth"], ("frame",)),
        Stage("VAE latents z0", ours["vae_encode"][0], off["z0"], ("frame",)),
        Stage("inversion trajectory", torch.stack(ours["ddim_invert"][0]).transpose(0, 1),
              torch.stack(off["inversion"]), ("frame", "step")),
    ]
    for name, a, b in zip(ours["layers"], _features_ours(ours, F_, S), _features_official(off)):
        out.append(Stage(f"injected features {name.replace('.processor', '')}", a, b, ("frame", "step")))
    out += [
        Stage("predicted x0", torch.stack(ours["x0"]).transpose(0, 1), torch.stack([torch.cat(f["x0"]) for f in
                                                                                   off["img2img"]]),
              ("frame", "step")),
        Stage("latents after step 1", ours_after[:, 0], torch.stack(after)[:, 0], ("frame",)),
        Stage("latents after every step", ours_after, torch.stack(after), ("frame", "step")),
        Stage("latents after the last step", ours_after[:, -1], torch.stack(after)[:, -1], ("frame",)),
        Stage("decoded frames (float)", ours["decoded"][-1], torch.cat(off["decoded"][-F_:]), ("frame",)),
        Stage("output frames (uint8)", ours["frames"], np.stack([f["image"] for f in off["img2img"]]), ("frame",),
              0.5, True),
    ]
    return out
