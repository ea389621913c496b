"""RAVE (Kara et al., CVPR 2024): randomized noise shuffling for zero-shot video editing with an image diffusion
model and ControlNet, on current diffusers (official code: rehg-lab/RAVE; shared/paper/baseline_notes.md Sec. 4).

Per video (``RAVE.edit``):
1. frames resized so that one grid cell has an area of about 512^2 with the aspect kept, sides multiples of 8
   (``rave_cell_size``); Zoe depth per frame at that size, normalised by its 2nd/85th percentiles and inverted
   (the ControlNet annotator), as a grayscale ControlNet depth image;
2. frames tiled into grid_size x grid_size grids (3 x 3), each grid VAE-encoded (posterior mean), latents split per
   frame; DDIM inversion of every frame on its own, with the inversion prompt ("") conditional only, ControlNet on
   at scale 1, 50 steps;
3. 50 DDIM steps with CFG 7.5 (negative prompt ""), where before every step the frames are randomly permuted and
   regrouped into new grids (``arrange_grids``), the control images with them; grids are denoised in batches of 4
   with ControlNet (scale 1, the whole schedule) on both CFG halves. With ``cond_step_start = 0`` the official test
   ``cond_step_start < i / T`` is false at step 0, so the first step runs at guidance 0 (the negative-prompt
   prediction alone); kept as in the code;
4. the last step's grids are decoded and split back into frames in their original order.

Frame counts that are not a multiple of grid_size^2: the official code keeps only full grids (14 frames, 3 x 3 ->
9). ``frame_policy=all`` (default, what the tables use) keeps every frame: the last grid's empty cells are filled
with copies of other frames of the same step's permutation, whose outputs are discarded (every real frame is in
exactly one cell, ``arrange_grids``). ``frame_policy=official`` edits the full grids only and repeats the last
edited frame for the dropped ones.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from videoshop_bench.datasets.schema import SampleError
from videoshop.method import EditResult
from videoshop.options import MAX_BATCH, MAX_STEPS, build_options, option

from .text.ddim import classifier_free_guidance, ddim_invert, ddim_schedule, ddim_transfer
from .text.method import TextDrivenMethod, TextMethodOptions
from .text.models import load_sd_family
from .text.sd import NFECounter, encode_prompts, frames_to_tensor, resize_frames, vae_decode, vae_encode, \
    zoe_control_image

Tensor = torch.Tensor


# ------------------------------------------------------------------------------------------- grids
def rave_cell_size(height: int, width: int, grid_size: int, cell_area: int = 512 * 512) -> tuple[int, int]:
    """Cell (frame) size inside a grid: RAVE's ``prepare_video_to_grid`` scales the grid so that each cell has an area
    of about ``cell_area`` with the aspect ratio kept and each grid side a multiple of 8 * grid_size."""
    g = int(grid_size)
    w, h = width * g, height * g
    a = math.sqrt(w * h / (cell_area * g * g))
    w1 = int((w // a) // (g * 8)) * g * 8
    h1 = int((h // a) // (g * 8)) * g * 8
    return h1 // g, w1 // g


def grid_resize_frames(frames: np.ndarray, grid_size: int, height: int, width: int) -> np.ndarray:
    """RAVE's ``prepare_video_to_grid`` resize: each group of grid_size^2 frames is tiled into one grid image (float
    frames / 255, ``to_pil_image`` = ``mul(255).byte()``, i.e. truncation), the whole grid resized with PIL's default
    filter (bicubic) to grid_size x the cell size, and cut back into cells; the bicubic kernel reaches across cell
    borders, as in the official grids. A last group short of grid_size^2 frames (``frame_policy=all``) is completed
    with copies of its last frame for the resize. (T, height, width, 3) uint8."""
    from PIL import Image

    g, cells = int(grid_size), int(grid_size) ** 2
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(255)
    out = []
    for start in range(0, x.shape[0], cells):
        group = x[start:start + cells]
        real = group.shape[0]
        if real < cells:
            group = torch.cat([group, group[-1:].expand(cells - real, -1, -1, -1)])
        grid = tile(group, g).mul(255).byte()[0].permute(1, 2, 0).numpy()
        img = np.array(Image.fromarray(grid).resize((width * g, height * g)))
        cut = untile(torch.from_numpy(img).permute(2, 0, 1)[None], g)[:real]
        out.append(cut.permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def frames_kept(num_frames: int, grid_size: int, policy: str) -> int:
    """Frames edited: all (``all``), or only those filling whole grids (``official``, e.g. 14 -> 9 at 3 x 3)."""
    cells = grid_size * grid_size
    if policy == "all":
        return num_frames
    if policy == "official":
        kept = num_frames // cells * cells
        if kept == 0:
            raise SampleError(f"{num_frames} frames do not fill one {grid_size}x{grid_size} grid "
                              f"(method.frame_policy=official); use frame_policy=all or a smaller grid_size")
        return kept
    raise ValueError(f"method.frame_policy={policy!r}: expected all or official")


def grid_cells(perm: Tensor, grid_size: int) -> Tensor:
    """Frame index of every cell, grid after grid (row-major inside a grid): the permutation, then, where the last
    grid is not full, its leading frames again as fillers. Shape (n_grids * grid_size^2,)."""
    cells = grid_size * grid_size
    n = perm.numel()
    pad = -n % cells
    return torch.cat([perm, perm[:pad].repeat(math.ceil(pad / max(n, 1)))[:pad]]) if pad else perm


def tile(x: Tensor, grid_size: int) -> Tensor:
    """(n * g^2, C, h, w) -> (n, C, g h, g w): cells row-major into grids (torchvision's make_grid, padding 0)."""
    g = grid_size
    n, c, h, w = x.shape[0] // (g * g), x.shape[1], x.shape[2], x.shape[3]
    return x.view(n, g, g, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(n, c, g * h, g * w)


def untile(grids: Tensor, grid_size: int) -> Tensor:
    """Inverse of ``tile``: (n, C, g h, g w) -> (n * g^2, C, h, w)."""
    g = grid_size
    n, c, gh, gw = grids.shape
    h, w = gh // g, gw // g
    return grids.view(n, c, g, h, g, w).permute(0, 2, 4, 1, 3, 5).reshape(n * g * g, c, h, w)


def arrange_grids(frames: Tensor, perm: Tensor, grid_size: int) -> Tensor:
    """Grids of the frames in permutation order (RAVE's ``shuffle_latents``), fillers completing the last grid."""
    return tile(frames[grid_cells(perm, grid_size)], grid_size)


def unarrange_grids(grids: Tensor, perm: Tensor, grid_size: int) -> Tensor:
    """Frames back in their original order from grids made by ``arrange_grids`` (fillers dropped)."""
    cells = untile(grids, grid_size)
    n = perm.numel()
    out = torch.empty_like(cells[:n])
    out[perm] = cells[:n]
    return out


# ------------------------------------------------------------------------------------------- the method
# DDIMScheduler.from_config(SD1.5's scheduler config): timesteps 981 ... 1
SD15_DDIM = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}


@dataclass
class RAVEOptions(TextMethodOptions):
    """RAVE's options; defaults are the official code's (rehg-lab/RAVE @3a64224, configs/truck.yaml;
    shared/paper/baseline_notes.md Sec. 4)."""

    base: dict = option({"hub_id": "stable-diffusion-v1-5/stable-diffusion-v1-5", "path": None, "variant": None},
                        "dict", "SD1.5 (runwayml/stable-diffusion-v1-5 in the code, withdrawn; the same weights)")
    controlnet: dict = option({"hub_id": "lllyasviel/control_v11f1p_sd15_depth", "path": None}, "dict",
                              "preprocessor depth_zoe -> control_v11f1p_sd15_depth (utils/constants.py)")
    depth: dict = option({"hub_id": "Intel/zoedepth-nyu", "path": None}, "dict",
                         "ZoeD_M12_N (lllyasviel/Annotators) = ZoeDepth NYU, as a transformers checkpoint")
    scheduler: dict = option(SD15_DDIM, "dict", "DDIM from SD1.5's scheduler config: timesteps 981 ... 1")
    num_inference_steps: int = option(50, "int", "DDIM steps of the editing pass", min=1, max=MAX_STEPS)
    num_inversion_steps: int = option(50, "int", "num_inversion_step: 50 in the configs (the YAML ties it to "
                                      "num_inference_steps)", min=1, max=MAX_STEPS)
    guidance_scale: float = option(7.5, "float", "CFG of the editing pass", min=0)
    negative_prompt: str = option("", "str", "negative prompt of the editing pass")
    inversion_prompt: str = option("", "str", "prompt of the inversion (RAVE uses only the target prompt)")
    grid_size: int = option(3, "int", "frames per grid side (3: 3x3 grids of 9 frames)", min=1, max=8)
    batch_size: int = option(4, "int", "grids per denoising batch (inversion: batch_size * grid_size^2 frames)",
                             min=1, max=MAX_BATCH)
    native_cell_area: dict = option({"pretrained": 262144, "random": 262144, "tiny": 4096}, "dict",
                                    "cell area per weights; the YAML sets cell_area from it (tiny: 64 x 64 cells)")
    cell_area: int = option(512 * 512, "int", "official: each cell ~512^2 px, aspect kept, sides multiples of 8",
                            min=64)
    shuffle: bool = option(True, "bool", "is_shuffle: new random grids before every step")
    inversion: bool = option(True, "bool", "is_ddim_inversion (false: forward-noise to the first timestep)")
    cond_step_start: float = option(0.0, "float", "guidance 0 while cond_step_start >= i/T (so step 0 is unguided, "
                                    "as in the code)", min=0, max=1)
    controlnet_conditioning_scale: float = option(1.0, "float", "ControlNet residual scale", min=0)
    controlnet_guidance_start: float = option(0.0, "float", "ControlNet on from this fraction of the steps",
                                              min=0, max=1)
    controlnet_guidance_end: float = option(1.0, "float", "ControlNet off after this fraction of the steps",
                                            min=0, max=1)
    control_inversion: bool = option(True, "bool", "give_control_inversion (ControlNet at scale 1 during inversion)")
    depth_percentiles: list = option([2.0, 85.0], "list", "Zoe annotator normalisation (min, max percentiles), "
                                     "then inverted")
    frame_policy: str = option("all", "str", "all: every frame, filler cells complete the last grid (the tables) | "
                               "official: full grids only", choices=("all", "official"))
    vae_batch_size: int = option(1, "int", "frames per VAE call (memory only)", min=1, max=MAX_BATCH)
    resize: str = option("grid_pil_bicubic", "str", "official: whole grids resized with PIL bicubic (cells bleed at "
                         "borders) | antialias_bilinear per frame", choices=("grid_pil_bicubic", "antialias_bilinear"))
    uint8_rounding: str = option("floor", "str", "official torch_to_pil_img truncates (astype uint8) | round",
                                 choices=("floor", "round"))


class RAVE(TextDrivenMethod):
    """``method=rave``. Every option is declared once, in ``RAVEOptions``, with the official default."""

    options = RAVEOptions

    def __init__(self, name: str = "rave", device: str = "cpu", **options) -> None:
        o = build_options(RAVEOptions, options, owner="videoshop_bench.baselines.rave.RAVE")
        super().__init__(name, device, o.weights, o.dtype, o.allow_download, o.prompts)
        self.base, self.controlnet_src, self.depth_src = dict(o.base), dict(o.controlnet), dict(o.depth)
        self.scheduler_config = dict(o.scheduler)
        self.num_inference_steps, self.num_inversion_steps = int(o.num_inference_steps), int(o.num_inversion_steps)
        self.guidance_scale, self.negative_prompt, self.inversion_prompt = float(o.guidance_scale), o.negative_prompt, o.inversion_prompt
        self.grid_size, self.batch_size, self.cell_area = int(o.grid_size), int(o.batch_size), int(o.cell_area)
        self.shuffle, self.inversion, self.cond_step_start = bool(o.shuffle), bool(o.inversion), float(o.cond_step_start)
        self.cn_scale = float(o.controlnet_conditioning_scale)
        self.cn_start, self.cn_end = float(o.controlnet_guidance_start), float(o.controlnet_guidance_end)
        self.control_inversion, self.depth_percentiles = bool(o.control_inversion), tuple(o.depth_percentiles)
        self.frame_policy, self.vae_batch_size = o.frame_policy, int(o.vae_batch_size)
        self.resize, self.uint8_rounding = o.resize, o.uint8_rounding
        self.models = load_sd_family(self.weights, base=self.base, controlnet=self.controlnet_src, depth=self.depth_src,
                                     depth_kind="zoe", allow_download=self.allow_download, dtype=self.dtype,
                                     seed=int(o.seed), key="method").to(self.device, self.dtype)

    # ------------------------------------------------------------------------------------- network
    def eps(self, x: Tensor, t: int, context: Tensor, control: Optional[Tensor], cn_scale: float) -> Tensor:
        """UNet eps with ControlNet residuals (``control`` None: ControlNet off)."""
        m, dt = self.models, self.dtype
        x, context = x.to(dt), context.to(dt)
        down = mid = None
        if control is not None:
            down, mid = m.controlnet(x, t, encoder_hidden_states=context, controlnet_cond=control.to(dt),
                                     conditioning_scale=cn_scale, return_dict=False)
        return m.unet(x, t, encoder_hidden_states=context, down_block_additional_residuals=down,
                      mid_block_additional_residual=mid).sample.float()

    @torch.no_grad()
    def zoe_depth(self, frames: np.ndarray) -> Tensor:
        """ZoeDepth per frame at frame size, (T, H, W): like the annotator's ``model.infer`` (ZoeDepth's defaults
        ``pad_input=True, with_flip_aug=True``): the processor pads, the flipped frames' depth is averaged in, the
        padding is removed and the map resized to the frame (``post_process_depth_estimation``)."""
        from PIL import Image

        m, dev = self.models, self.device
        pv = m.depth_processor(images=[Image.fromarray(f) for f in frames], return_tensors="pt").pixel_values
        pv = pv.to(device=dev, dtype=next(m.depth_estimator.parameters()).dtype)
        out, out_flip = m.depth_estimator(pv), m.depth_estimator(torch.flip(pv, dims=[3]))
        sizes = [tuple(frames.shape[1:3])] * frames.shape[0]
        post = m.depth_processor.post_process_depth_estimation(out, source_sizes=sizes, outputs_flipped=out_flip)
        return torch.stack([p["predicted_depth"].float() for p in post])

    def control_images(self, frames: np.ndarray) -> Tensor:
        """(T, 3, H, W) in [0, 1]: Zoe depth per frame at frame size, percentile-normalised and inverted."""
        d = self.zoe_depth(frames)
        if d.shape[-2:] != frames.shape[1:3]:
            d = torch.nn.functional.interpolate(d[:, None], size=frames.shape[1:3], mode="bilinear")[:, 0]
        imgs = np.stack([zoe_control_image(x.cpu().numpy(), *self.depth_percentiles) for x in d])
        return torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255).to(self.device)

    # ------------------------------------------------------------------------------------- steps
    def encode(self, frames: np.ndarray) -> Tensor:
        """Per-frame latents from VAE-encoded grids (identity order, as RAVE encodes its grid images)."""
        g, n = self.grid_size, frames.shape[0]
        ident = torch.arange(n)
        grids = arrange_grids(frames_to_tensor(frames, self.device, self.dtype), ident, g)
        return unarrange_grids(vae_encode(self.models.vae, grids, self.vae_batch_size).float(), ident, g)

    def invert(self, z0: Tensor, control: Tensor, inv_ctx: Tensor, nfe: NFECounter) -> Tensor:
        """x_T per frame: DDIM inversion with the inversion prompt, ControlNet at scale 1 (give_control_inversion)."""
        sched = ddim_schedule(self.scheduler_config, self.num_inversion_steps)
        out = []
        for sl in torch.arange(z0.shape[0]).split(self.batch_size * self.grid_size ** 2):
            ctx = inv_ctx.expand(len(sl), -1, -1)

            def eps_fn(x, t, k, sl=sl, ctx=ctx):
                nfe.add("unet_inversion", x.shape[0])
                if self.control_inversion:
                    nfe.add("controlnet_inversion", x.shape[0])
                return self.eps(x, t, ctx, control[sl] if self.control_inversion else None, 1.0)

            out.append(ddim_invert(eps_fn, z0[sl], sched)[-1])
        return torch.cat(out)

    def denoise(self, z: Tensor, control: Tensor, cond: Tensor, uncond: Tensor, generator: torch.Generator,
                nfe: NFECounter) -> tuple[Tensor, Tensor]:
        """The shuffled-grid DDIM loop; returns the final grids and the last step's permutation."""
        sched, g, n = ddim_schedule(self.scheduler_config, self.num_inference_steps), self.grid_size, z.shape[0]
        perm = torch.arange(n)
        grids = arrange_grids(z, perm, g)
        for i in range(len(sched)):
            pct = i / len(sched)
            if self.shuffle:  # the official shuffle permutes the current arrangement (indices = indices[randperm])
                perm = perm[torch.randperm(n, generator=generator)]
            grids, ctrl = arrange_grids(z, perm, g), arrange_grids(control, perm, g)
            w = self.guidance_scale if self.cond_step_start < pct else 0.0
            use_cn = self.cn_start <= pct <= self.cn_end
            t = int(sched.timesteps[i])
            new = []
            for gx, gc in zip(grids.split(self.batch_size), ctrl.split(self.batch_size)):
                b = gx.shape[0]
                ctx = torch.cat([uncond.expand(b, -1, -1), cond.expand(b, -1, -1)])
                e = self.eps(torch.cat([gx, gx]), t, ctx, torch.cat([gc, gc]) if use_cn else None, self.cn_scale)
                nfe.add("unet_sampling", 2 * b)
                if use_cn:
                    nfe.add("controlnet_sampling", 2 * b)
                eps = classifier_free_guidance(tuple(e.chunk(2)), w)
                new.append(ddim_transfer(gx, eps, sched.alpha[i], sched.alpha_prev[i])[0])
            grids = torch.cat(new)
            z = unarrange_grids(grids, perm, g)
        return grids, perm

    # ------------------------------------------------------------------------------------- the method
    @torch.no_grad()
    def edit(self, sample, generator: torch.Generator) -> EditResult:
        t0 = time.perf_counter()
        prompts = self.resolve_prompts(sample)
        n = frames_kept(sample.num_frames, self.grid_size, self.frame_policy)
        h, w = rave_cell_size(*sample.size, self.grid_size, self.cell_area)
        if self.resize == "grid_pil_bicubic":
            frames = grid_resize_frames(sample.source_video[:n], self.grid_size, h, w)
        else:
            frames = resize_frames(sample.source_video[:n], h, w)
        edited, nfe = self.edit_frames(frames, prompts.target_prompt, generator)
        info = {"prompts": prompts.to_dict(), "frames_edited": n, "frame_policy": self.frame_policy,
                "cell_size": [h, w], "grids_per_step": math.ceil(n / self.grid_size ** 2),
                "network_passes": dict(nfe.by_name), "method_seconds": time.perf_counter() - t0}
        if n < sample.num_frames:
            info["note"] = f"official full grids only: frames {n}..{sample.num_frames - 1} repeat the last edited frame"
            edited = np.concatenate([edited, np.repeat(edited[-1:], sample.num_frames - n, axis=0)])
        unet_passes = sum(v for k, v in nfe.by_name.items() if k.startswith("unet"))
        return EditResult(frames=edited, nfe=unet_passes, info=info)

    def edit_frames(self, frames: np.ndarray, target_prompt: str, generator: torch.Generator
                    ) -> tuple[np.ndarray, NFECounter]:
        """Edit (T, h, w, 3) uint8 frames already at cell size; RAVE needs only the target prompt."""
        m, nfe, g = self.models, NFECounter(), self.grid_size
        control = self.control_images(frames)
        nfe.add("depth_estimator", 2 * frames.shape[0])  # with the flipped frames
        z0 = self.encode(frames)
        inv, cond, uncond = encode_prompts(m.tokenizer, m.text_encoder,
                                           [self.inversion_prompt, target_prompt, self.negative_prompt],
                                           self.device).float().split(1)
        if self.inversion:
            x_T = self.invert(z0, control, inv, nfe)
        else:  # is_ddim_inversion false: forward-noise the latents to the first timestep
            sched = ddim_schedule(self.scheduler_config, self.num_inference_steps)
            a = sched.alpha[0].float()
            x_T = a.sqrt() * z0 + (1 - a).sqrt() * torch.randn(z0.shape, generator=generator).to(z0.device)
        grids, perm = self.denoise(x_T, control, cond, uncond, generator, nfe)
        decoded = torch.from_numpy(vae_decode(m.vae, grids.to(self.dtype), self.vae_batch_size,
                                              rounding=self.uint8_rounding)).permute(0, 3, 1, 2)
        out = unarrange_grids(decoded, perm, g).permute(0, 2, 3, 1).numpy()
        return out, nfe
