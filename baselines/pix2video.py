"""Pix2Video (Ceylan, Huang, Mitra, ICCV 2023): text-guided video editing with an image diffusion model, here on
current diffusers through its attention-processor API (official code: duyguceylan/pix2video; the facts we follow
are in shared/paper/baseline_notes.md, Sec. 1).

Per video (``Pix2Video.edit``):
1. frames resized to 512 x 512 (aspect not kept; PIL's bicubic, as the official ``load_512``), MiDaS/DPT depth per frame (the SD2-depth repo's estimator),
   bilinearly resized to the latent size and min-max normalised to [-1, 1]: the UNet's 5th input channel;
2. VAE posterior mean of every frame; DDIM inversion of every frame on its own with the *source* prompt
   (guidance 1, i.e. conditional only), 50 steps, depth-conditioned; only x_T is kept;
3. DDIM sampling from each frame's x_T with the *target* prompt and CFG 7.5, frames one after another at each
   step: frame 0 is edited as a plain image; for frame i >= 1 every decoder (up-block) self-attention takes its
   keys and values from the first and the previous frame's features at the same step and layer (Sec. 3.2,
   "self-attention feature injection"), and after each of the first 26 steps the latent moves towards the previous
   frame's predicted x0: x_{t-1} <- x_{t-1} - (2 w / N) (x0_hat - x0_hat_prev), w = 100 (Sec. 3.3, "guided latent
   update", the gradient of w * MSE(x0_hat_prev, x0_hat) with respect to x0_hat);
4. VAE decode; uint8 by truncation (the official ``latent2image``: ``astype(np.uint8)``).

The official loop finishes each frame's 50 steps before the next frame. Frame i only needs, at step s, the first and
previous frames' features and x0 at the same step s, so running all frames step by step (this file) computes the
same numbers while keeping one step's features instead of 50.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from videoshop_bench.datasets.schema import SampleError
from videoshop.method import EditResult
from videoshop.options import MAX_BATCH, MAX_FRAMES, MAX_STEPS, build_options, option

from .text.attention import FrameFeatureBank, cross_frame_processors, installed_processors
from .text.ddim import ddim_invert, ddim_sample, ddim_schedule
from .text.method import DTYPES, TextDrivenMethod, TextMethodOptions
from .text.models import load_sd_family
from .text.sd import (RESIZE_FILTERS, NFECounter, depth_condition, encode_prompts, frames_to_tensor, predicted_depth,
                      resize_frames, vae_decode, vae_encode)

Tensor = torch.Tensor


def select_frames(num_frames: int, policy: str, max_frames: int) -> int:
    """How many leading frames the method edits: all of them (``all``) or the official cap (``official``: the
    code hard-codes noFrames = 10)."""
    if policy == "all":
        return num_frames
    if policy == "official":
        return min(num_frames, int(max_frames))
    raise ValueError(f"method.frame_policy={policy!r}: expected all or official")


def fill_dropped_frames(edited: np.ndarray, num_frames: int) -> np.ndarray:
    """One output per source frame: frames the official policy dropped repeat the last edited frame."""
    if edited.shape[0] >= num_frames:
        return edited
    return np.concatenate([edited, np.repeat(edited[-1:], num_frames - edited.shape[0], axis=0)])


def guided_latent_update(x_prev: Tensor, x0: Tensor, weight: float) -> Tensor:
    """Pix2Video's latent update for frames 1..T-1 (frame 0 untouched): x_{t-1} - grad_{x0_hat} w MSE(x0_prev, x0_hat)
    = x_{t-1} - (2 w / N)(x0_hat - x0_hat_prev), N = elements of one frame's latent, x0_prev = previous frame's x0."""
    if weight == 0 or x0.shape[0] < 2:
        return x_prev
    n = x0[0].numel()
    out = x_prev.clone()
    out[1:] = x_prev[1:] - (2.0 * weight / n) * (x0[1:] - x0[:-1])
    return out


# test_cfg.py:35: DDIM, timesteps 980 ... 0
SD2_DEPTH_DDIM = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                  "beta_schedule": "scaled_linear", "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 0}
SD2_DEPTH = "stabilityai/stable-diffusion-2-depth"


@dataclass
class Pix2VideoOptions(TextMethodOptions):
    """Pix2Video's options; defaults are the official code's (duyguceylan/pix2video @304d318;
    shared/paper/baseline_notes.md Sec. 1)."""

    dtype: str = option("float32", "str", "the official code runs fp32; auto = fp16 on CUDA", choices=DTYPES)
    base: dict = option({"hub_id": SD2_DEPTH, "path": None, "variant": None}, "dict",
                        "SD2-depth: UNet (5 input channels: latent + depth), VAE, OpenCLIP-H text encoder, tokenizer "
                        "(path: a local copy with model_index.json)")
    depth: dict = option({"hub_id": SD2_DEPTH, "path": None, "subfolder": "depth_estimator"}, "dict",
                         "DPT-Hybrid (MiDaS) shipped in the SD2-depth repo (= Intel/dpt-hybrid-midas weights); path "
                         "defaults to base.path when that is set")
    scheduler: dict = option(SD2_DEPTH_DDIM, "dict", "test_cfg.py:35: DDIM, timesteps 980 ... 0")
    num_inference_steps: int = option(50, "int", "DDIM steps of the editing pass", min=1, max=MAX_STEPS)
    num_inversion_steps: Optional[int] = option(None, "int", "null = num_inference_steps (50, the official "
                                                "NUM_DDIM_STEPS)", nullable=True, min=1, max=MAX_STEPS)
    guidance_scale: float = option(7.5, "float", "editing CFG; inversion uses guidance 1 with the source prompt", min=0)
    negative_prompt: str = option("", "str", "the uncond prompt")
    native_side: dict = option({"pretrained": 512, "random": 512, "tiny": 64}, "dict",
                               "frame side per weights; the YAML sets height/width from it (tiny: 64 px, fast tests)")
    height: int = option(512, "int", "official: every frame resized to 512 x 512 (load_512, aspect not kept)",
                         min=8, max=4096)
    width: int = option(512, "int", "see height", min=8, max=4096)
    frame_policy: str = option("all", "str", "all: every source frame (the tables) | official: the first max_frames, "
                               "the rest repeat the last", choices=("all", "official"))
    max_frames: int = option(10, "int", "test_cfg.py:76 hard-codes noFrames = 10", min=1, max=MAX_FRAMES)
    injection: bool = option(True, "bool", "self-attention feature injection (use_self_attention_injection = 1)")
    injection_sources: str = option("anchor_prev", "str", "[first ; previous] frame features | anchor "
                                    "(use_keyframe_only = 1)", choices=("anchor_prev", "anchor"))
    injection_layers: Optional[list] = option(["up_blocks"], "list", "COND_LAYER = 7: the 9 decoder self-attentions, "
                                              "never down/mid", nullable=True)
    latent_update: bool = option(True, "bool", "classifier_guidance_flag = 1, per_frame_classifier_guidance = 1 "
                                 "(previous frame's x0)")
    latent_update_weight: float = option(100.0, "float", "weight of the latent update", min=0)
    latent_update_last_step: int = option(25, "int", "weight 100 for steps 0..25, 0 after (`if i > 25`)", min=0)
    resize: str = option("pil_bicubic", "str", "frames -> 512 x 512 as the official load_512 (PIL's default filter) | "
                         "antialias_bilinear", choices=RESIZE_FILTERS)
    uint8_rounding: str = option("floor", "str", "official latent2image truncates (astype(np.uint8)) | round",
                                 choices=("floor", "round"))
    depth_resize: str = option("bilinear", "str", "Pix2Video's depth resize (diffusers' Depth2Img pipeline uses "
                               "bicubic)", choices=("bilinear", "bicubic"))
    batch_size: int = option(8, "int", "frames per VAE / inversion batch (memory only)", min=1, max=MAX_BATCH)


class Pix2Video(TextDrivenMethod):
    """``method=pix2video``. Every option is declared once, in ``Pix2VideoOptions``, with the official default."""

    options = Pix2VideoOptions

    def __init__(self, name: str = "pix2video", device: str = "cpu", **options) -> None:
        o = build_options(Pix2VideoOptions, options, owner="videoshop_bench.baselines.pix2video.Pix2Video")
        super().__init__(name, device, o.weights, o.dtype, o.allow_download, o.prompts)
        self.base, self.depth = dict(o.base), dict(o.depth)
        if self.base.get("path") and not self.depth.get("path") and self.depth.get("hub_id") in (None, self.base.get("hub_id")):
            self.depth["path"] = self.base["path"]  # SD2-depth ships its estimator in the same directory
        self.scheduler_config = dict(o.scheduler)
        self.num_inference_steps, self.guidance_scale = int(o.num_inference_steps), float(o.guidance_scale)
        self.num_inversion_steps = int(o.num_inversion_steps or o.num_inference_steps)
        self.negative_prompt, self.height, self.width = o.negative_prompt, int(o.height), int(o.width)
        self.frame_policy, self.max_frames = o.frame_policy, int(o.max_frames)
        self.injection, self.injection_sources = bool(o.injection), o.injection_sources
        self.injection_layers = list(o.injection_layers) if o.injection_layers is not None else None
        self.latent_update, self.latent_update_weight = bool(o.latent_update), float(o.latent_update_weight)
        self.latent_update_last_step, self.depth_resize = int(o.latent_update_last_step), o.depth_resize
        self.batch_size = int(o.batch_size)
        self.resize, self.uint8_rounding = o.resize, o.uint8_rounding
        self.trace: Optional[list] = None  # set to a list to record what the cross-frame processors receive
        self.models = load_sd_family(self.weights, base=self.base, depth=self.depth, in_channels=5, sd2=True,
                                     depth_kind="dpt", allow_download=self.allow_download, dtype=self.dtype,
                                     seed=int(o.seed), key="method").to(self.device, self.dtype)

    # ------------------------------------------------------------------------------------- helpers
    def unet_eps(self, x: Tensor, depth: Tensor, t: int, context: Tensor) -> Tensor:
        """eps for a batch of latents with their depth channel (SD2-depth's 5-channel input)."""
        inp = torch.cat([x, depth], dim=1).to(self.dtype)
        return self.models.unet(inp, t, encoder_hidden_states=context.to(self.dtype)).sample.float()

    def invert(self, z0: Tensor, depth: Tensor, source: Tensor, nfe: NFECounter) -> Tensor:
        """x_T of every frame: DDIM inversion with the source prompt (guidance 1 = conditional only)."""
        sched = ddim_schedule(self.scheduler_config, self.num_inversion_steps)
        out = []
        for sl in torch.arange(z0.shape[0]).split(self.batch_size):
            ctx = source.expand(len(sl), -1, -1)

            def eps_fn(x, t, k, sl=sl, ctx=ctx):
                nfe.add("unet_inversion", x.shape[0])
                return self.unet_eps(x, depth[sl], t, ctx)

            out.append(ddim_invert(eps_fn, z0[sl], sched)[-1])
        return torch.cat(out)

    def sample(self, x_T: Tensor, depth: Tensor, target: Tensor, uncond: Tensor, nfe: NFECounter) -> Tensor:
        """Frames denoised one after another at each step, with cross-frame injection and the latent update."""
        sched = ddim_schedule(self.scheduler_config, self.num_inference_steps)
        bank = FrameFeatureBank(self.injection_sources, trace=self.trace)
        ctx = torch.cat([uncond, target])  # [uncond ; cond], as two passes in the official code

        def eps_fn(x, t, i):
            eps = []
            for f in range(x.shape[0]):
                bank.begin_frame(f, "off" if not self.injection else ("record" if f == 0 else "inject"))
                eps.append(self.unet_eps(x[f:f + 1].expand(2, -1, -1, -1), depth[f:f + 1].expand(2, -1, -1, -1), t, ctx))
                bank.end_frame(is_anchor=f == 0)
                nfe.add("unet_sampling", 2)
            eps = torch.stack(eps)  # (T, 2, C, h, w)
            return eps[:, 0], eps[:, 1]

        def latent_update(i, t, x_prev, x0):
            w = self.latent_update_weight if self.latent_update and i <= self.latent_update_last_step else 0.0
            return guided_latent_update(x_prev, x0, w)

        procs = cross_frame_processors(self.models.unet, bank, self.injection_layers) if self.injection else {}
        with installed_processors(self.models.unet, procs):
            return ddim_sample(eps_fn, x_T, sched, self.guidance_scale, callback=latent_update)

    # ------------------------------------------------------------------------------------- the method
    @torch.no_grad()
    def edit(self, sample, generator: torch.Generator) -> EditResult:
        t0 = time.perf_counter()
        prompts = self.resolve_prompts(sample)
        n = select_frames(sample.num_frames, self.frame_policy, self.max_frames)
        frames = resize_frames(sample.source_video[:n], self.height, self.width, filter=self.resize)
        edited, nfe = self.edit_frames(frames, prompts.source_prompt, prompts.target_prompt)
        if not np.isfinite(edited.astype(np.float32)).all():  # pragma: no cover  (uint8 is always finite)
            raise SampleError(f"{sample.sample_id}: non-finite output")
        info = {"prompts": prompts.to_dict(), "frames_edited": n, "frame_policy": self.frame_policy,
                "resolution": [self.height, self.width], "network_passes": dict(nfe.by_name),
                "method_seconds": time.perf_counter() - t0}
        if n < sample.num_frames:
            info["note"] = f"official frame cap: frames {n}..{sample.num_frames - 1} repeat the last edited frame"
        return EditResult(frames=fill_dropped_frames(edited, sample.num_frames), nfe=nfe.total - nfe.by_name.get(
            "depth_estimator", 0), info=info)

    def edit_frames(self, frames: np.ndarray, source_prompt: str, target_prompt: str) -> tuple[np.ndarray, NFECounter]:
        """Edit (T, H, W, 3) uint8 frames at the method resolution; returns the edited frames and the NFE counter."""
        m, dev, nfe = self.models, self.device, NFECounter()
        d = predicted_depth(m.depth_estimator, m.depth_processor, frames, dev)
        nfe.add("depth_estimator", frames.shape[0])
        z0 = vae_encode(m.vae, frames_to_tensor(frames, dev, self.dtype), self.batch_size).float()
        depth = depth_condition(d, tuple(z0.shape[-2:]), self.depth_resize)
        source, target, uncond = encode_prompts(m.tokenizer, m.text_encoder,
                                                [source_prompt, target_prompt, self.negative_prompt], dev).float().split(1)
        x_T = self.invert(z0, depth, source, nfe)
        z = self.sample(x_T, depth, target, uncond, nfe)
        return vae_decode(m.vae, z.to(self.dtype), self.batch_size, rounding=self.uint8_rounding), nfe
