"""AnyV2V against TIGER-AI-Lab/AnyV2V (@bc540be, ``i2vgen-xl/``): the project side of the comparison and the stages.

Weights: the project's tiny random I2VGen-XL stand-in (``build_random_i2vgen('tiny', seed=0)``: ``I2VGenXLUNet`` with
the real block layout at toy width, ``AutoencoderKL``, CLIP text + vision towers) written in the I2VGen-XL pipeline
layout transformers 4.38 / diffusers 0.26 load (``write_i2vgen_layout``); both sides read these files.
The official side runs the two scripts' ``main`` functions as the README does (``run_group_ddim_inversion.py``, then
``run_group_pnp_edit.py``, each with its template config and one ``group_config.json`` entry), so their frame loading,
per-timestep latent files and PnP registration are the official ones.
Random draws: both sides draw the VAE posterior samples from torch's default-algorithm CPU generators with the
official seed (8888): the official code draws from the global RNG after ``seed_everything(seed)``, once per script
(the edit script re-seeds with ``torch.manual_seed(seed)`` before sampling); the project draws from its generator
and restarts it at its seed for the sampling phase (``edit_seeding: restart``). No draw is replayed.
Tiny scale: 64 px stands for 512 (the template's ``image_size``), 4 frames for 16, 10 inversion and 10 sampling steps
(injection on steps 0-1 / 0-1 / 0-4 for the fractions 0.2 / 0.2 / 0.5), CFG 9.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .compare import Stage, appending, padded_rows, patched, record_calls, record_decodes

OFFICIAL_COMMIT = "bc540be"
SIDE_ARGS = ["--compat", "{root}/videoshop/_compat.py"]
PROJECT_PATCHES = [
    "AnyV2V.models -> the components loaded from the written weights (the same files as the official side)",
    "videoshop_bench.baselines.anyv2v.resize_frames/video_latents/first_frame_latents/clip_image_embedding/ddim_sample, AnyV2V.text, "
    "AnyV2V.invert and vae.decode: recording wrappers (return values unchanged); AnyV2V.trace records the PnP sites",
]
CONFIGS = {
    # native square size; the official start step of every group_config entry (t_idx 0)
    "square": dict(height=64, width=64, init_step=0),
    # the paper's 16:9 frames, resized to the square method size; the template's start step (t_idx 1)
    "16:9": dict(height=72, width=128, init_step=1),
}
SETTINGS = dict(side=64, num_frames=4, steps=10, inversion_steps=10, guidance_scale=9.0, seed=8888, target_fps=8,
                pnp_f_t=0.2, pnp_spatial_attn_t=0.2, pnp_temp_attn_t=0.5,
                target_prompt="a red sports car driving on a road at night")


def write_weights(directory) -> dict[str, str]:
    from videoshop_bench.baselines.text.i2vgen import build_random_i2vgen

    from .weights import write_i2vgen_layout

    return write_i2vgen_layout(directory, build_random_i2vgen("tiny", seed=0))


def make_inputs(config: str) -> dict[str, Any]:
    from videoshop_bench.datasets.synthetic import make_sample

    c = CONFIGS[config]
    s = make_sample(0, 1, num_frames=SETTINGS["num_frames"], height=c["height"], width=c["width"])
    return dict(frames=s.source_video, edited=np.asarray(s.edited_image), init_step=int(c["init_step"]), **SETTINGS)


@contextmanager
def _recording(rec: dict, method):
    import videoshop_bench.baselines.anyv2v as av

    names = ("resize_frames", "video_latents", "first_frame_latents", "clip_image_embedding")
    orig_sample = av.ddim_sample

    def ddim_sample(eps_fn, x, sched, guidance, callback=None, start_step=0):
        def cb(i, t, x_prev, x0):
            rec.setdefault("steps", []).append(x_prev.clone())
        return orig_sample(eps_fn, x, sched, guidance, callback=cb, start_step=start_step)

    record_calls(method, rec, "text", "invert")
    method.trace = rec.setdefault("trace", [])
    with patched(av, ddim_sample=ddim_sample, **{k: appending(rec, k, getattr(av, k)) for k in names}):
        yield


def run_project(weights_dir, inputs: dict, official: Any = None, **options) -> dict[str, Any]:
    from videoshop_bench.baselines.anyv2v import AnyV2V
    from videoshop_bench.baselines.text.i2vgen import load_i2vgen_components
    from videoshop_bench.datasets.schema import Sample

    n = int(inputs["steps"])
    method = AnyV2V(weights="tiny", height=int(inputs["side"]), width=int(inputs["side"]), num_inference_steps=n,
                    num_inversion_steps=int(inputs["inversion_steps"]), guidance_scale=float(inputs["guidance_scale"]),
                    init_step=int(inputs["init_step"]), target_fps=int(inputs["target_fps"]),
                    conv_injection=float(inputs["pnp_f_t"]), spatial_attn_injection=float(inputs["pnp_spatial_attn_t"]),
                    temporal_attn_injection=float(inputs["pnp_temp_attn_t"]), dtype="float32", **options)
    method.models = load_i2vgen_components("pretrained", {"path": str(weights_dir)}, allow_download=False)
    from videoshop_bench.baselines.text.ddim import ddim_schedule

    method.schedule = ddim_schedule(method.models.scheduler_config, n)
    method.inversion_schedule = ddim_schedule(method.models.scheduler_config, method.num_inversion_steps)
    rec: dict = {"timesteps": [int(t) for t in method.schedule.timesteps]}
    record_decodes(method.models.vae, rec)
    frames = inputs["frames"]
    sample = Sample("official_check", frames, inputs["edited"], source_prompt="", target_prompt=inputs["target_prompt"])
    with _recording(rec, method):
        result = method.edit(sample, torch.Generator().manual_seed(int(inputs["seed"])))
    rec["frames"] = result.frames
    return rec


def _sites(trace: list, timesteps: list, kind: str) -> dict:
    """{(layer, t): tensor} of the injected sites of one kind (the values after injection: source chunk copied)."""
    out = {}
    for e in trace:
        if e["kind"] == kind and e["injected"]:
            layer = e["layer"].replace(".processor", "").replace(".conv2", "")
            out[(layer, timesteps[e["step"]])] = torch.stack([e["q"], e["k"]]) if kind != "conv" else e["out"]
    return out


def _site_stage(name: str, ours: dict, off: dict) -> Stage:
    keys = sorted(ours)
    missing = [k for k in keys if k not in off]
    if missing or not keys:
        return Stage(name, np.zeros(1), np.ones(1), note=f"official side lacks {missing[:2]}" if keys else "no sites")
    return Stage(name, padded_rows([ours[k] for k in keys]), padded_rows([off[k] for k in keys]), ("site",),
                 note=f"{len(keys)} (layer, step) sites, steps {sorted({t for _, t in keys}, reverse=True)}")



def stages(ours: dict, off: dict) -> list[Stage]:
    rec = off["rec"]
    ts = ours["timesteps"]
    frames_ours, edited_ours = ours["resize_frames"][0], ours["resize_frames"][1][0]
    inv_text = ours["text"][0][0]
    src_txt, neg, tgt = ours["text"][1]
    prompts_ours = torch.cat([inv_text, src_txt, neg, tgt])
    prompts_off = torch.cat([rec["prompt_inversion"], rec["prompt_source_branch"], rec["prompt_negative"],
                             rec["prompt_target"]])
    clip_ours = torch.cat(ours["clip_image_embedding"])  # inversion source, edited, source branch
    clip_off = torch.cat(rec["image_embeds"])
    img_lat_ours = torch.cat(ours["first_frame_latents"])
    img_lat_off = torch.cat(rec["image_latents"])
    z0_ours, z0_off = ours["video_latents"][0], rec["video_latents"]
    inv = ours["invert"][0]
    inv_ts = sorted(inv, reverse=True)
    missing = [t for t in inv_ts if t not in rec["inverted"]]
    inv_off = torch.stack([rec["inverted"].get(t, torch.full_like(inv[t], float("nan"))) for t in inv_ts])
    steps_ours = torch.stack([s[0].permute(1, 0, 2, 3) for s in ours["steps"]])  # (S, F, C, h, w)
    steps_off = torch.stack(rec["steps"])
    dec_ours = torch.cat(ours["decoded"])
    dec_off = rec["decoded"]
    site_stages = [_site_stage(f"injected {label} (after injection, all chunks)", _sites(ours["trace"], ts, kind),
                               rec["sites"][kind])
                   for kind, label in (("conv", "conv features up_blocks.1.resnets.1"),
                                       ("spatial", "spatial attn1 [Q; K], decoder blocks 4-11"),
                                       ("temporal", "temporal attn1 [Q; K], decoder blocks 4-11"))]
    return [
        Stage("frames at model size (uint8)", frames_ours, rec["frames"], ("frame",), 0.5, True),
        Stage("edited first frame at model size (uint8)", edited_ours, rec["edited"], (), 0.5, True),
        Stage("prompt embeddings [inversion, source branch, negative, target]", prompts_ours, prompts_off, ("prompt",)),
        Stage("CLIP image embeddings [source, edited, source]", clip_ours, clip_off, ("call",)),
        Stage("VAE latents z0 (posterior samples, seed 8888)", z0_ours, z0_off, ()),
        Stage("first-frame image latents [source, edited, source]", img_lat_ours, img_lat_off, ("call",)),
        Stage("inverted latents (every timestep, 901..1)", torch.stack([inv[t] for t in inv_ts]), inv_off, ("t",),
              note=f"missing official files {missing}" if missing else ""),
        *site_stages,
        Stage("latents after the first step", steps_ours[0], steps_off[0], ("frame",)),
        Stage("latents after every step", steps_ours, steps_off, ("step", "frame")),
        Stage("latents after the last step", steps_ours[-1], steps_off[-1], ("frame",)),
        Stage("decoded frames (float [-1, 1])", dec_ours, dec_off, ("frame",)),
        Stage("output frames (uint8)", ours["frames"], off["frames"], ("frame",), 0.5, True),
    ]
