"""RAVE against rehg-lab/RAVE (@3a64224): the project side of the comparison and the stage list.

Weights: the project's tiny SD1.5 + ControlNet stand-ins (``build_random_sd('tiny', controlnet=True)``) written in the
SD1.5 layout, the ControlNet in ``controlnet/``; both sides load them. The Zoe depth annotator is not under test: both
sides get the same fixed control maps. Random draws: the official shuffles draw ``torch.randperm`` from the global RNG
right after ``set_seed_lib(0)``; the project draws from its generator seeded 0: the same seed, no replay.
Tiny scale: 2x2 grids, 8 frames, cell area 64^2 (the project's ``native_cell_area.tiny``; official 512^2 scaled by a
listed patch), 10 inversion + 10 sampling steps.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .compare import Stage, appending, patched, record_calls, record_decodes

OFFICIAL_COMMIT = "3a64224"
SIDE_ARGS = ["--compat", "{root}/videoshop/_compat.py"]
PROJECT_PATCHES = [
    "RAVE.control_images -> the fixed control maps (the Zoe annotator is not under test)",
    "videoshop_bench.baselines.rave.resize_frames/grid_resize_frames/encode_prompts/arrange_grids/unarrange_grids, RAVE.invert and vae.decode: "
    "recording wrappers (return values unchanged)",
]
CONFIGS = {
    "square": dict(height=64, width=64),
    "16:9": dict(height=72, width=128),
}
SETTINGS = dict(grid_size=2, num_frames=8, cell_area=64 * 64, steps=10, guidance_scale=7.5,
                target_prompt="a wooden truck on a racetrack")
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def write_weights(directory) -> dict[str, str]:
    from pathlib import Path

    from videoshop_bench.baselines.text.models import build_random_sd

    from .weights import checksums, diffusers_config_dict, write_sd_layout, _save_state, _write_json

    c = build_random_sd("tiny", controlnet=True, seed=0)
    write_sd_layout(directory, unet=c.unet, vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer,
                    scheduler_config=SCHEDULER, pipeline_class="StableDiffusionControlNetImg2ImgPipeline",
                    extra_modules={"safety_checker": [None, None], "feature_extractor": [None, None],
                                   "requires_safety_checker": False})
    root = Path(directory)
    _write_json(root / "controlnet" / "config.json", diffusers_config_dict(c.controlnet, "ControlNetModel"))
    _save_state(root / "controlnet" / "diffusion_pytorch_model.bin", c.controlnet.state_dict())
    return checksums(root)


def make_inputs(config: str) -> dict[str, Any]:
    from videoshop_bench.baselines.rave import rave_cell_size
    from videoshop_bench.datasets.synthetic import make_sample

    size = CONFIGS[config]
    s = make_sample(0, 2, num_frames=SETTINGS["num_frames"], height=size["height"], width=size["width"])
    h, w = rave_cell_size(size["height"], size["width"], SETTINGS["grid_size"], SETTINGS["cell_area"])
    g = np.random.default_rng(3)
    yy, xx = np.mgrid[0:h, 0:w]
    maps = [np.clip(40 + 150 * xx / w + 40 * yy / h + 10 * i + 8 * g.standard_normal((h, w)), 0, 255).astype(np.uint8)
            for i in range(SETTINGS["num_frames"])]
    settings = dict(seed=0, grid_size=SETTINGS["grid_size"], cond_step_start=0.0, controlnet_guidance_start=0.0,
                    controlnet_guidance_end=1.0, controlnet_conditioning_scale=1.0,
                    positive_prompts=SETTINGS["target_prompt"], negative_prompts="", inversion_prompt="",
                    batch_size=4, batch_size_vae=1, num_inference_steps=SETTINGS["steps"],
                    num_inversion_step=SETTINGS["steps"], is_ddim_inversion=True, is_shuffle=True,
                    give_control_inversion=True, guidance_scale=SETTINGS["guidance_scale"])
    return dict(frames=s.source_video, control_maps=np.stack(maps), settings=settings, cell=(h, w), **SETTINGS)


@contextmanager
def _recording(rec: dict, method, maps: np.ndarray):
    import videoshop_bench.baselines.rave as rv

    names = ("resize_frames", "grid_resize_frames", "encode_prompts", "arrange_grids", "unarrange_grids")
    ctrl = torch.from_numpy(np.repeat(maps[..., None], 3, axis=-1)).permute(0, 3, 1, 2).float().div(255)
    method.control_images = lambda frames: ctrl.clone()
    record_calls(method, rec, "invert")
    with patched(rv, **{k: appending(rec, k, getattr(rv, k), with_args=True) for k in names}):
        yield


def run_project(weights_dir, inputs: dict, official: Any = None, **options) -> dict[str, Any]:
    from videoshop_bench.baselines.rave import RAVE
    from videoshop_bench.baselines.text.models import load_pretrained_sd
    from videoshop_bench.datasets.schema import Sample

    method = RAVE(weights="tiny", grid_size=int(inputs["grid_size"]), cell_area=int(inputs["cell_area"]),
                  num_inference_steps=int(inputs["steps"]), num_inversion_steps=int(inputs["steps"]),
                  guidance_scale=float(inputs["guidance_scale"]), scheduler=SCHEDULER, dtype="float32", **options)
    method.models = load_pretrained_sd(str(weights_dir), key="method.base",
                                       controlnet_source=str(weights_dir) + "/controlnet")
    rec: dict = {}
    record_decodes(method.models.vae, rec)
    frames = inputs["frames"]
    sample = Sample("official_check", frames, frames[0], source_prompt="", target_prompt=inputs["target_prompt"])
    with _recording(rec, method, inputs["control_maps"]):
        result = method.edit(sample, torch.Generator().manual_seed(int(inputs["settings"]["seed"])))
    rec["frames"] = result.frames
    return rec


def grid_cells(grids: torch.Tensor, g: int) -> torch.Tensor:
    """(G, C, g*h, g*w) grids -> (G*g*g, C, h, w) cells, grid after grid, row-major (RAVE's flatten order)."""
    G, C, H, W = grids.shape
    h, w = H // g, W // g
    return grids.reshape(G, C, g, h, g, w).permute(0, 2, 4, 1, 3, 5).reshape(G * g * g, C, h, w)


def _in_frame_order(cells: torch.Tensor, order: list) -> torch.Tensor:
    out = torch.empty_like(cells)
    for pos, frame in enumerate(order):
        out[int(frame)] = cells[pos]
    return out


def stages(ours: dict, off: dict) -> list[Stage]:
    g = int(off.get("grid_size", 2)) if isinstance(off.get("grid_size"), int) else 2
    rec = off["rec"]
    n = off["frames"].shape[0]
    # official per-frame (cell) images at the cell size, in frame order
    off_cells = grid_cells(torch.from_numpy(off["grids"]).permute(0, 3, 1, 2).float(), g)
    resized = (ours.get("grid_resize_frames") or ours["resize_frames"])[0][1]
    ours_frames = torch.from_numpy(resized).permute(0, 3, 1, 2).float()
    (inv_c, inv_u), (cond, uncond) = rec["text_embeds"][0], rec["text_embeds"][1]
    ours_prompts = ours["encode_prompts"][0][1]  # [inversion "", target, negative ""]
    off_prompts = torch.cat([inv_c, cond, uncond])
    z0_ours = ours["unarrange_grids"][0][1]  # encode: per-frame latents of the identity-arranged grids
    z0_off = grid_cells(torch.cat(rec["encode_imgs"]), g)
    x_T_ours = ours["invert"][0]
    x_T_off = rec["inverted"]  # per frame (the inversion runs on the cells)
    steps_ours = [out for a, out in ours["unarrange_grids"][1:] if out.shape[1] == 4]
    steps_off = [_in_frame_order(grid_cells(lat, g), idx) for lat, idx in rec["steps"]]
    perms_ours = [a[1] for a, out in ours["arrange_grids"] if a[0].shape[1] == 4][1:]  # skip encode's identity
    perms_ours = [p for p in perms_ours][::2] if len(perms_ours) == 2 * len(steps_off) else perms_ours
    order_off = torch.tensor([[int(i) for i in p] for p in rec["perms"]], dtype=torch.float64)
    order_ours = torch.stack([torch.as_tensor(p, dtype=torch.float64) for p in perms_ours[:len(steps_off)]]) \
        if perms_ours else torch.zeros_like(order_off)
    dec_off = grid_cells(torch.cat(rec["decode_latents"]), g)
    dec_off = _in_frame_order(dec_off, rec["steps"][-1][1])
    dec_ours = ours["unarrange_grids"][-1][1].float() / 255.0 if ours["unarrange_grids"][-1][1].shape[1] == 3 else None
    out = [
        Stage("frames at cell size (uint8)", ours_frames, off_cells, ("frame",), 0.5, True),
        Stage("prompt embeddings [inversion, target, negative]", ours_prompts, off_prompts, ("prompt",)),
        Stage("VAE latents z0 (grid encoded, per frame)", z0_ours, z0_off, ("frame",)),
        Stage("inverted latents x_T", x_T_ours, x_T_off, ("frame",)),
        Stage("grid arrangement per step (frame index per cell)", order_ours, order_off, ("step",), 0.5, True),
        Stage("latents after step 1 (frame order)", steps_ours[0], steps_off[0], ("frame",)),
        Stage("latents after every step", torch.stack(steps_ours), torch.stack(steps_off), ("step", "frame")),
        Stage("latents after the last step", steps_ours[-1], steps_off[-1], ("frame",)),
        Stage("decoded frames (float [0, 1])", (ours["decoded"][-1].float() / 2 + 0.5).clamp(0, 1) if False else
              _in_frame_order(grid_cells((torch.cat(ours["decoded"]) / 2 + 0.5).clamp(0, 1), g),
                              [int(i) for i in perms_ours[-1]]) if perms_ours else dec_off, dec_off, ("frame",)),
        Stage("output frames (uint8)", ours["frames"], off["frames"], ("frame",), 0.5, True),
    ]
    del dec_ours, n
    return out
