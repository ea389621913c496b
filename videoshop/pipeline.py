"""Videoshop as a diffusers pipeline: edit the first frame, propagate the edit through the video (paper Fig. 2).

Built from the same five components as diffusers' StableVideoDiffusionPipeline, so
``VideoshopPipeline.from_pretrained("stabilityai/stable-video-diffusion-img2vid")`` loads an SVD checkpoint,
and any UNet-like module with SVD's call signature can be passed in.

    pipe = VideoshopPipeline(**components)
    out = pipe(video=frames_uint8, edited_image=edited_uint8, generator=torch.Generator().manual_seed(42))
    out.frames  # (F, H, W, 3) uint8
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from . import _compat  # noqa: F401
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput

from .conditioning import (added_time_ids, clip_image_embeddings, frame_guidance_scales, noise_augmented_image_latent,
                           original_pixels, vae_encode_mode)
from .config import VideoshopConfig
from .denoiser import SVDNetwork
from .edm import karras_sigmas, truncate_by_strength
from .fig2 import Prompts, check_batch, edit_video, generate_video
from .inversion import invert
from .latents import normalize_latents
from .sampling import StopSampling, regenerate, sample_consistency, sample_euler
from .speed import RuntimeOptions, attention_kernel, on_device


def _cat(tensors: list) -> torch.Tensor:
    """torch.cat, except that one tensor is returned as it is (its memory layout, hence its reductions, unchanged)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


@dataclass
class VideoshopOutput(BaseOutput):
    frames: np.ndarray  # (F, H, W, 3) uint8 at the model resolution
    latents: torch.Tensor  # final latents before decoding (B, F, C, h, w)
    nfe: int  # UNet forward passes (inversion + generation)
    inversion_branches: list  # per inversion step: naive | extrapolate | noise
    finite: bool  # False when the latents went non-finite (e.g. the '- Threshold' ablation)
    timings: dict = field(default_factory=dict)  # seconds per stage: encode, invert, generate, decode
    finite_each: list = field(default_factory=list)  # per video of a batch


class VideoshopPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "image_encoder->unet->vae"

    def __init__(self, vae, image_encoder, unet, scheduler, feature_extractor):
        super().__init__()
        self.register_modules(vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler,
                              feature_extractor=feature_extractor)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.runtime = RuntimeOptions()  # speed/memory options (videoshop.speed.apply_runtime_options)
        self.execution_device: Optional[torch.device] = None  # set with model offloading (weights live on the CPU)
        self.sync_timings = False  # synchronise CUDA at stage boundaries so that output.timings are exact
        self._interrupt = False

    # ----------------------------------------------------------------- diffusers-style run control
    @property
    def interrupt(self) -> bool:
        """Set ``pipe._interrupt = True`` (e.g. from ``callback_on_step_end``) to stop generation after this step."""
        return self._interrupt

    @property
    def compute_device(self) -> torch.device:
        return self.execution_device or self.vae.device

    STAGE_MODULES = {"encode": ("vae", "image_encoder"), "invert": ("unet",), "generate": ("unet",),
                     "decode": ("vae",)}

    @contextlib.contextmanager
    def stage(self, name: str, timings: dict) -> Iterator[None]:
        """One step of Fig. 2: its modules on the compute device (model offloading), its wall time in ``timings``."""
        offload = self.runtime.offload == "model"
        with contextlib.ExitStack() as stack:
            for m in self.STAGE_MODULES[name]:
                stack.enter_context(on_device(getattr(self, m), self.compute_device, offload))
            stack.enter_context(attention_kernel(self.runtime.attention))
            self._sync()
            t0 = time.perf_counter()
            yield
            self._sync()
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0

    def _sync(self) -> None:
        if self.sync_timings and self.compute_device.type == "cuda":
            torch.cuda.synchronize(self.compute_device)

    def _step_callback(self, callback_on_step_end, tensor_inputs) -> Optional[Callable]:
        """Adapt diffusers' ``callback_on_step_end(pipe, step, sigma, {"latents": x}) -> dict`` to the sampler."""
        if callback_on_step_end is None:
            return None

        def step(i: int, sigma: float, x: torch.Tensor):
            out = callback_on_step_end(self, i, sigma, {k: x for k in tensor_inputs if k == "latents"}) or {}
            if self._interrupt:
                raise StopSampling
            return out.get("latents")

        return step

    # ----------------------------------------------------------------- helpers, one per step of Fig. 2
    @property
    def size_multiple(self) -> int:
        """Pixel sizes must be divisible by this (VAE downsampling x UNet downsampling)."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def sigma_schedule(self, num_inference_steps: int, strength: float) -> torch.Tensor:
        """Descending sigmas actually run: SVD's Karras schedule truncated by ``strength`` (float64)."""
        c = self.scheduler.config
        sigmas = karras_sigmas(num_inference_steps, float(c.sigma_min), float(c.sigma_max), float(c.get("rho", 7.0)))
        return truncate_by_strength(sigmas, strength)

    def noise_levels(self, num_inference_steps: int, strength: float, latent_shape=None) -> torch.Tensor:
        """Fig. 2's levels: the EDM sigmas (``sigma_schedule``; SVD's schedule does not depend on the latent size)."""
        return self.sigma_schedule(num_inference_steps, strength)

    batches = True  # edits lists of videos in one pass (fig2.edit_video)

    def check_frame_count(self, num_frames: int) -> None:
        """Any frame count (SVD's UNet is frame-wise with temporal layers)."""

    def initial_scale(self, sigmas: torch.Tensor) -> float:
        """x_T ~ N(0, sigma_max^2 I)."""
        return sigmas[0]

    def noise_shape(self, num_frames: int, image_latents: torch.Tensor) -> tuple[int, ...]:
        return (1, num_frames, self.unet.config.out_channels) + tuple(image_latents.shape[-2:])

    @contextlib.contextmanager
    def _encoding_vae(self) -> Iterator[None]:
        """fp16 VAEs whose config asks for it (force_upcast) encode in float32, as diffusers' SVD pipeline does."""
        upcast = (self.runtime.encode_upcast and self.vae.dtype == torch.float16
                  and bool(self.vae.config.get("force_upcast", False)))
        if upcast:
            self.vae.to(dtype=torch.float32)
        try:
            yield
        finally:
            if upcast:
                self.vae.to(dtype=torch.float16)

    def encode_video(self, pixels: torch.Tensor, chunk_size: Optional[int] = None) -> torch.Tensor:
        """Step 1a: x_in = VAE mode x scaling factor, (N, 3, H, W) -> (1, N, C, h, w) float32."""
        with self._encoding_vae():
            latents = vae_encode_mode(self.vae, pixels, chunk_size) * self.vae.config.scaling_factor
        return latents.float()[None]

    def encode_latents(self, pixels: torch.Tensor, cfg: VideoshopConfig) -> torch.Tensor:
        """Fig. 2's encoder: ``encode_video`` in chunks of ``encode_chunk_size`` (else ``decode_chunk_size``)."""
        return self.encode_video(pixels, cfg.encode_chunk_size or cfg.decode_chunk_size)

    def source_network(self, video_px: list, videos: list, x_hat0, num_frames: int, cfg: VideoshopConfig,
                       generator, prompts: Prompts) -> SVDNetwork:
        """The inversion's network: conditioned on each source video's first frame (CLIP from the original size),
        at ``inversion_guidance_scale``; its latent normalised like the video's where configured."""
        return self.conditioned_network(_cat([px[:1] for px in video_px]), num_frames, cfg, generator,
                                        (cfg.inversion_guidance_scale,) * 2,
                                        cfg.normalize_inversion_condition and cfg.normalize != "none",
                                        clip_images=[original_pixels(v[:1]) for v in videos])

    def edited_network(self, image_px: torch.Tensor, images: list, condition, num_frames: int,
                       cfg: VideoshopConfig, generator, prompts: Prompts) -> SVDNetwork:
        """Generation's network: conditioned on the edited images, CFG ramp min -> max guidance scale."""
        return self.conditioned_network(image_px, num_frames, cfg, generator,
                                        (cfg.min_guidance_scale, cfg.max_guidance_scale), False,
                                        clip_images=[original_pixels(e) for e in images])

    def invert_latents(self, x0, levels_up, network, options, generator, progress=None):
        return invert(x0, levels_up, network, options, generator, progress=progress)

    def regenerate(self, inverted, levels_down, network, options, progress=None, callback=None):
        """Euler (Eq. 3), or EDICT's / BDIA's coupled sampler for their inversions."""
        return regenerate(inverted, levels_down, network, options, progress=progress, callback=callback)

    def sample_latents(self, x, levels_down, network, sampler: str = "euler", generator=None, progress=None,
                       callback=None):
        """Euler (Eq. 3) or AnimateLCM's stochastic consistency sampler (``sampler="consistency"``) from x."""
        if sampler == "consistency":
            if callback is not None:
                raise ValueError("callback_on_step_end is supported with the Euler sampler, not 'consistency'")
            return sample_consistency(x, levels_down, network, generator, progress=progress)
        return sample_euler(x, levels_down, network, progress=progress, callback=callback)

    def conditioned_network(self, image: torch.Tensor, num_frames: int, cfg: VideoshopConfig,
                            generator, guidance: tuple[float, float], normalize_condition: bool,
                            clip_images: Optional[list] = None) -> SVDNetwork:
        """SVD conditioning on images (B, 3, H, W), one per video: CLIP embedding, noise-augmented latent, time ids,
        CFG. ``generator``: one CPU generator, or a list with one per image (each image's noise from its own).
        ``clip_images``: the same images at their original resolution, (1, 3, H_b, W_b) each, for the CLIP embedding
        (the authors' data module resizes the original frame to 224x224); None embeds ``image`` itself."""
        image = image.to(self.compute_device)
        emb = self.clip_embedding(image if clip_images is None else clip_images)
        gens = generator if isinstance(generator, (list, tuple)) else [generator]
        images = [image[b : b + 1] for b in range(len(gens))] if len(gens) > 1 else [image]
        with self._encoding_vae():
            lat = _cat([noise_augmented_image_latent(self.vae, im, cfg.noise_aug_strength, g)
                        for im, g in zip(images, gens)])
        lat = lat.float()[:, None]
        if normalize_condition:  # authors' code: normalised like the video, then divided by the scaling factor
            lat = normalize_latents(lat, cfg.normalize, cfg.normalize_center) / self.vae.config.scaling_factor
        lat = lat.repeat(1, num_frames, 1, 1, 1)
        ids = added_time_ids(cfg.fps, cfg.motion_bucket_id, cfg.noise_aug_strength, batch=image.shape[0])
        return SVDNetwork(self.unet, emb, lat, ids, frame_guidance_scales(*guidance, num_frames),
                          cfg_batch=cfg.cfg_batch, device=self.compute_device)

    def clip_embedding(self, images) -> torch.Tensor:
        """CLIP image embeddings (B, 1, D) of a (B, 3, H, W) tensor or a list of (1, 3, H_b, W_b) tensors of any sizes."""
        images = [images] if isinstance(images, torch.Tensor) else list(images)
        return _cat([clip_image_embeddings(self.image_encoder, self.feature_extractor, im.to(self.compute_device))
                     for im in images])

    def decode(self, latents: torch.Tensor, chunk_size: Optional[int] = None) -> torch.Tensor:
        """Step 5: temporal VAE decoding of (1, F, C, h, w) latents -> (F, 3, H, W) pixels in [-1, 1]."""
        z = (latents[0] / self.vae.config.scaling_factor).to(self.compute_device, self.vae.dtype)
        chunk = chunk_size or z.shape[0]
        frames = [self.vae.decode(z[i : i + chunk], num_frames=z[i : i + chunk].shape[0]).sample
                  for i in range(0, z.shape[0], chunk)]
        return torch.cat(frames).float()

    def decode_frames(self, latents: torch.Tensor, cfg: VideoshopConfig) -> torch.Tensor:
        return self.decode(latents, cfg.decode_chunk_size)

    def _resolve_size(self, video_shape, height: Optional[int], width: Optional[int]) -> tuple[int, int]:
        m = self.size_multiple
        h = height or max(m, video_shape[1] // m * m)
        w = width or max(m, video_shape[2] // m * m)
        if h % m or w % m:
            raise ValueError(f"height={h}, width={w}: both must be multiples of {m} for this model")
        return h, w

    # ----------------------------------------------------------------- the algorithm
    @torch.no_grad()
    def __call__(self, video, edited_image, *, config: Optional[VideoshopConfig] = None,
                 generator=None, height: Optional[int] = None, width: Optional[int] = None,
                 sigmas: Optional[torch.Tensor] = None, callback_on_step_end: Optional[Callable[..., dict]] = None,
                 callback_on_step_end_tensor_inputs: tuple = ("latents",), **options) -> VideoshopOutput:
        """Edit ``video`` (T, H, W, 3 uint8) so that its first frame becomes ``edited_image`` (H', W', 3 uint8).

        ``options`` override single fields of ``config`` (e.g. ``threshold=2.0``). ``generator`` is a CPU
        torch.Generator; every random draw comes from it, so a seed fixes the output on any device. ``sigmas``
        (descending, ending at 0) replaces the schedule given by num_inference_steps and strength (e.g. AnimateLCM's).
        ``callback_on_step_end(pipe, step, sigma, {"latents": x})`` runs after every generation step, as in diffusers:
        a ``"latents"`` entry in the dict it returns replaces x; setting ``pipe._interrupt = True`` stops generation.

        A batch: lists of videos (same frame count) and edited images, and a list of generators (one per video, so
        each edit makes the same random draws as alone; agreement with one-by-one edits is within float tolerance,
        tests/test_speed.py). Every UNet pass then runs the whole batch; frames come back as (B, T, H, W, 3).
        """
        cfg = replace(config or VideoshopConfig(), **options)
        batched = isinstance(video, (list, tuple))
        videos = [np.asarray(v) for v in (video if batched else [video])]
        images = [np.asarray(e) for e in (edited_image if batched else [edited_image])]
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        check_batch(self, videos, images, generator, batched)
        self._interrupt = False
        out = edit_video(self, videos, images, cfg, generator, self._resolve_size(videos[0].shape, height, width),
                         sigmas=sigmas, callback=self._step_callback(callback_on_step_end,
                                                                     callback_on_step_end_tensor_inputs))
        return VideoshopOutput(**dict(out, frames=out["frames"] if batched else out["frames"][0]))

    @torch.no_grad()
    def generate(self, image, num_frames: int, *, config: Optional[VideoshopConfig] = None,
                 generator: Optional[torch.Generator] = None, height: Optional[int] = None,
                 width: Optional[int] = None, latents: Optional[torch.Tensor] = None,
                 sigmas: Optional[torch.Tensor] = None, sampler: str = "euler",
                 callback_on_step_end: Optional[Callable[..., dict]] = None,
                 callback_on_step_end_tensor_inputs: tuple = ("latents",), **options) -> VideoshopOutput:
        """Plain SVD image-to-video from pure noise (no source video): x_T ~ N(0, sigma_max^2 I), Euler over the
        full schedule (strength is ignored). Used to build MagicBrush-to-video and by the 'SVD (no src. vid.)'
        baseline. ``latents`` optionally gives x_T (already scaled by sigma_max). SVD's own defaults are noise_aug 0.02 and CFG 1.0 -> 3.0; pass them as ``options`` to match.
        ``sigmas`` replaces the full Karras schedule; ``sampler="consistency"`` runs AnimateLCM's stochastic
        consistency sampler instead of Euler. ``callback_on_step_end``: as in ``__call__`` (Euler sampler).
        """
        if sampler not in ("euler", "consistency"):
            raise ValueError(f"sampler={sampler!r}: expected 'euler' or 'consistency'")
        cfg = replace(config or VideoshopConfig(), **options)
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        image = np.asarray(image)
        self._interrupt = False
        out = generate_video(self, image, num_frames, cfg, generator,
                             self._resolve_size(image[None].shape, height, width), latents=latents, sigmas=sigmas,
                             sampler=sampler,
                             callback=self._step_callback(callback_on_step_end, callback_on_step_end_tensor_inputs))
        return VideoshopOutput(**out)

    def reconstruct(self, video, **kwargs) -> VideoshopOutput:
        """Invert and regenerate ``video`` with its own first frame (measures inversion fidelity)."""
        return self(video=video, edited_image=np.asarray(video)[0], **kwargs)
