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
                           original_pixels, to_model_pixels, to_uint8_frames, vae_encode_mode)
from .config import VideoshopConfig
from .denoiser import SVDNetwork
from .edm import karras_sigmas, truncate_by_strength
from .inversion import invert
from .latents import normalize_latents, rescale_latents
from .sampling import StopSampling, regenerate, sample_consistency, sample_euler
from .speed import RuntimeOptions, attention_kernel, on_device

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


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

    @contextlib.contextmanager
    def _stage(self, name: str, timings: dict, *modules) -> Iterator[None]:
        """One step of Fig. 2: its modules on the compute device (model offloading), its wall time in ``timings``."""
        offload = self.runtime.offload == "model"
        with contextlib.ExitStack() as stack:
            for m in modules:
                stack.enter_context(on_device(m, self.compute_device, offload))
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
        if batched and (len(images) != len(videos) or len({v.shape[0] for v in videos}) != 1):
            raise ValueError(f"a batch needs one edited image per video and equal frame counts; got {len(videos)} "
                             f"videos with {sorted({v.shape[0] for v in videos})} frames and {len(images)} images")
        if isinstance(generator, (list, tuple)) and len(generator) != len(videos):
            raise ValueError(f"{len(generator)} generators for {len(videos)} videos: give one per video")
        h, w = self._resolve_size(videos[0].shape, height, width)
        num_frames = videos[0].shape[0]
        state = _DTYPES[cfg.state_dtype]
        self._interrupt = False
        timings: dict[str, float] = {}
        video_px = [to_model_pixels(v, h, w).to(self.compute_device) for v in videos]
        image_px = _cat([to_model_pixels(e, h, w) for e in images]).to(self.compute_device)
        sigmas = self.sigma_schedule(cfg.num_inference_steps, cfg.strength) if sigmas is None else sigmas.double()
        bar = self.progress_bar(total=2 * (len(sigmas) - 1))

        # 1. Encode & normalise (Sec. 3.6, Eq. 8 left); the source frame's conditioning for the inversion
        with self._stage("encode", timings, self.vae, self.image_encoder):
            chunk = cfg.encode_chunk_size or cfg.decode_chunk_size
            x_hat0 = normalize_latents(_cat([self.encode_video(px, chunk) for px in video_px]),
                                       cfg.normalize, cfg.normalize_center).to(state)
            inv_net = self.conditioned_network(_cat([px[:1] for px in video_px]), num_frames, cfg, generator,
                                               (cfg.inversion_guidance_scale,) * 2,
                                               cfg.normalize_inversion_condition and cfg.normalize != "none",
                                               clip_images=[original_pixels(v[:1]) for v in videos])
        # 2. Invert with noise extrapolation (Sec. 3.5, Eq. 6-7; or cfg.inversion), conditioned on the source frame
        with self._stage("invert", timings, self.unet):
            inverted = invert(x_hat0, sigmas.flip(0), inv_net, cfg.inversion_options(), generator,
                              progress=lambda i: bar.update())
        # 3. Generate conditioned on the edited first frame (stock Euler, Eq. 3, CFG; EDICT/BDIA: their sampler)
        with self._stage("encode", timings, self.vae, self.image_encoder):
            gen_net = self.conditioned_network(image_px, num_frames, cfg, generator,
                                               (cfg.min_guidance_scale, cfg.max_guidance_scale), False,
                                               clip_images=[original_pixels(e) for e in images])
        with self._stage("generate", timings, self.unet):
            x0, _ = regenerate(inverted, sigmas, gen_net, cfg.inversion_options(), progress=lambda i: bar.update(),
                               callback=self._step_callback(callback_on_step_end, callback_on_step_end_tensor_inputs))
        bar.close()
        with self._stage("decode", timings, self.vae):
            # 4. Rescale to the edited image's latent statistics (Eq. 8 right)
            if cfg.rescale:
                image_latents = _cat([self.encode_video(image_px[b : b + 1]) for b in range(len(images))])
                x0 = rescale_latents(x0, image_latents.to(x0.dtype), cfg.rescale_formula)
            finite = [bool(torch.isfinite(x).all()) for x in x0]
            # 5. Decode
            frames = np.stack([to_uint8_frames(self.decode(x0[b : b + 1].float(), cfg.decode_chunk_size))
                               for b in range(len(videos))])
        return VideoshopOutput(frames=frames if batched else frames[0], latents=x0, nfe=inv_net.nfe + gen_net.nfe,
                               inversion_branches=inverted.branches, finite=all(finite), timings=timings,
                               finite_each=finite)

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
        h, w = self._resolve_size(image[None].shape, height, width)
        image_px = to_model_pixels(image, h, w).to(self.compute_device)
        sigmas = self.sigma_schedule(cfg.num_inference_steps, 1.0) if sigmas is None else sigmas.double()
        shape = (1, num_frames, self.unet.config.out_channels, h // self.vae_scale_factor, w // self.vae_scale_factor)
        if latents is None:
            latents = torch.randn(shape, generator=generator, dtype=_DTYPES[cfg.state_dtype]) * sigmas[0]
        x_T = latents.to(self.compute_device, _DTYPES[cfg.state_dtype])
        self._interrupt = False
        timings: dict[str, float] = {}
        with self._stage("encode", timings, self.vae, self.image_encoder):
            net = self.conditioned_network(image_px, num_frames, cfg, generator,
                                           (cfg.min_guidance_scale, cfg.max_guidance_scale), False,
                                           clip_images=[original_pixels(image)])
        bar = self.progress_bar(total=len(sigmas) - 1)
        with self._stage("generate", timings, self.unet):
            if sampler == "consistency":
                if callback_on_step_end is not None:
                    raise ValueError("callback_on_step_end is supported with the Euler sampler, not 'consistency'")
                x0, _ = sample_consistency(x_T, sigmas, net, generator, progress=lambda i: bar.update())
            else:
                x0, _ = sample_euler(x_T, sigmas, net, progress=lambda i: bar.update(),
                                     callback=self._step_callback(callback_on_step_end,
                                                                  callback_on_step_end_tensor_inputs))
        bar.close()
        with self._stage("decode", timings, self.vae):
            frames = to_uint8_frames(self.decode(x0.float(), cfg.decode_chunk_size))
        return VideoshopOutput(frames=frames, latents=x0, nfe=net.nfe, inversion_branches=[],
                               finite=bool(torch.isfinite(x0).all()), timings=timings)

    def reconstruct(self, video, **kwargs) -> VideoshopOutput:
        """Invert and regenerate ``video`` with its own first frame (measures inversion fidelity)."""
        return self(video=video, edited_image=np.asarray(video)[0], **kwargs)
