"""The paper's Fig. 2, written once for every model family: encode and normalise, invert, generate, rescale, decode.

``edit_video`` and ``generate_video`` are the two routines every Videoshop pipeline's ``__call__`` and ``generate``
run; a pipeline is the family's adapter (SVD: ``videoshop.pipeline.VideoshopPipeline``; Wan: ``videoshop.wan``;
LTX-Video: ``videoshop.ltx``; CogVideoX: ``videoshop.cogvideox``), the way ``invert_along`` works over a
``StepFamily``. What an adapter provides:

- ``compute_device``, ``stage(name, timings)`` (a context: the stage's modules on the device, its wall time),
  ``progress_bar(total=...)``, ``check_frame_count(num_frames)``, ``batches`` (whether it edits lists of videos);
- ``encode_latents(pixels, cfg)``: (N, 3, H, W) in [-1, 1] -> model-space latents (1, F', C, h, w);
- ``noise_levels(num_inference_steps, strength, latent_shape)``: the descending levels the family's steps run
  (EDM / flow: sigmas; VP: alpha-bars), truncated by ``strength``;
- ``source_network(...)`` / ``edited_network(...)``: the network conditioned on the source's first frame (for the
  inversion) and on the edited first frame (for generation);
- ``invert_latents(x0, levels_up, network, options, generator, progress)`` and ``regenerate(inverted, levels_down,
  network, options, progress, callback)``: the family's inversion (Eq. 5-7) and its matching sampler;
- ``sample_latents(x, levels_down, network, sampler, generator, progress, callback)``: sampling from noise;
- ``noise_shape(num_frames, image_latents)``, ``initial_scale(levels)``: generation's x_T;
- ``decode_frames(latents, cfg)``: (1, F', C, h, w) -> pixels (T', 3, H, W) in [-1, 1].

Latent normalisation and rescaling (Eq. 8) are the same functions for every family (``videoshop.latents``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from .conditioning import to_model_pixels, to_uint8_frames
from .config import VideoshopConfig
from .latents import normalize_latents, rescale_latents

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Prompts:
    """Text conditions of the families that take them (SVD takes none): the target prompt, the inversion's source
    prompt (None: the target's) and a negative prompt."""

    prompt: Optional[str] = None
    source_prompt: Optional[str] = None
    negative_prompt: Optional[str] = None

    @property
    def source(self) -> Optional[str]:
        return self.prompt if self.source_prompt is None else self.source_prompt


def cat(tensors: list) -> torch.Tensor:
    """One tensor from a list along dim 0 (the list's only element as it is)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def check_batch(pipe, videos: list, images: list, generator, batched: bool) -> None:
    """One edited image per video, equal frame counts, one generator per video, and a family that batches."""
    if batched and not pipe.batches:
        raise ValueError(f"{type(pipe).__name__} edits one video at a time (got a list of {len(videos)})")
    if batched and (len(images) != len(videos) or len({v.shape[0] for v in videos}) != 1):
        raise ValueError(f"a batch needs one edited image per video and equal frame counts; got {len(videos)} "
                         f"videos with {sorted({v.shape[0] for v in videos})} frames and {len(images)} images")
    if isinstance(generator, (list, tuple)) and len(generator) != len(videos):
        raise ValueError(f"{len(generator)} generators for {len(videos)} videos: give one per video")


@torch.no_grad()
def edit_video(pipe, videos: list[np.ndarray], images: list[np.ndarray], cfg: VideoshopConfig, generator,
               size: tuple[int, int], prompts: Prompts = Prompts(), sigmas: Optional[torch.Tensor] = None,
               callback: Optional[Callable] = None) -> dict[str, Any]:
    """Fig. 2 on ``videos`` (T, H, W, 3 uint8 each, equal T) with their edited first frames ``images``: the fields of
    a ``VideoshopOutput`` (frames (B, T, H, W, 3) uint8). ``sigmas`` replaces the family's noise levels."""
    num_frames = videos[0].shape[0]
    pipe.check_frame_count(num_frames)
    state, dev, (h, w) = DTYPES[cfg.state_dtype], pipe.compute_device, size
    timings: dict[str, float] = {}
    video_px = [to_model_pixels(v, h, w).to(dev) for v in videos]
    image_px = cat([to_model_pixels(e, h, w) for e in images]).to(dev)

    # 1. Encode & normalise (Sec. 3.6, Eq. 8 left); the network conditioned on the source's first frame
    with pipe.stage("encode", timings):
        x_in = cat([pipe.encode_latents(px, cfg) for px in video_px])
        x_hat0 = normalize_latents(x_in, cfg.normalize, cfg.normalize_center).to(state)
        levels = (pipe.noise_levels(cfg.num_inference_steps, cfg.strength, x_in.shape) if sigmas is None
                  else sigmas.double())
        inv_net = pipe.source_network(video_px, videos, x_hat0, num_frames, cfg, generator, prompts)
    bar = pipe.progress_bar(total=2 * (len(levels) - 1))
    # 2. Invert with noise extrapolation (Sec. 3.5, Eq. 6-7; or cfg.inversion), conditioned on the source frame
    with pipe.stage("invert", timings):
        inverted = pipe.invert_latents(x_hat0, levels.flip(0), inv_net, cfg.inversion_options(), generator,
                                       progress=lambda i: bar.update())
    # 3. Generate conditioned on the edited first frame (its latent normalised like the video's, where used)
    with pipe.stage("encode", timings):
        image_latents = cat([pipe.encode_latents(image_px[b : b + 1], cfg) for b in range(len(images))])
        condition = normalize_latents(image_latents, cfg.normalize, cfg.normalize_center).to(state)
        gen_net = pipe.edited_network(image_px, images, condition, num_frames, cfg, generator, prompts)
    with pipe.stage("generate", timings):
        x0, _ = pipe.regenerate(inverted, levels, gen_net, cfg.inversion_options(), progress=lambda i: bar.update(),
                                callback=callback)
    bar.close()
    with pipe.stage("decode", timings):
        # 4. Rescale to the edited image's latent statistics (Eq. 8 right)
        if cfg.rescale:
            x0 = rescale_latents(x0, image_latents.to(x0.dtype), cfg.rescale_formula)
        finite = [bool(torch.isfinite(x).all()) for x in x0]
        # 5. Decode
        frames = np.stack([to_uint8_frames(pipe.decode_frames(x0[b : b + 1].float(), cfg)[:num_frames])
                           for b in range(len(videos))])
    return dict(frames=frames, latents=x0, nfe=inv_net.nfe + gen_net.nfe, inversion_branches=inverted.branches,
                finite=all(finite), timings=timings, finite_each=finite)


@torch.no_grad()
def generate_video(pipe, image: np.ndarray, num_frames: int, cfg: VideoshopConfig, generator, size: tuple[int, int],
                   prompts: Prompts = Prompts(), latents: Optional[torch.Tensor] = None,
                   sigmas: Optional[torch.Tensor] = None, sampler: str = "euler",
                   callback: Optional[Callable] = None) -> dict[str, Any]:
    """Image-to-video from pure noise over the full schedule (no source video, no Eq. 8; strength ignored), with the
    sampler Videoshop inverts: the 'no source video' baseline and the MagicBrush-to-video builder. ``latents``
    optionally gives x_T (already scaled); ``sigmas`` replaces the noise levels."""
    pipe.check_frame_count(num_frames)
    state, dev, (h, w) = DTYPES[cfg.state_dtype], pipe.compute_device, size
    timings: dict[str, float] = {}
    image_px = to_model_pixels(image, h, w).to(dev)
    with pipe.stage("encode", timings):
        image_latents = pipe.encode_latents(image_px[:1], cfg).to(state)
    shape = pipe.noise_shape(num_frames, image_latents)
    levels = pipe.noise_levels(cfg.num_inference_steps, 1.0, shape) if sigmas is None else sigmas.double()
    if latents is None:
        latents = torch.randn(shape, generator=generator, dtype=state) * pipe.initial_scale(levels)
    x_T = latents.to(dev, state)
    with pipe.stage("encode", timings):
        net = pipe.edited_network(image_px, [image], image_latents, num_frames, cfg, generator, prompts)
    bar = pipe.progress_bar(total=len(levels) - 1)
    with pipe.stage("generate", timings):
        x0, _ = pipe.sample_latents(x_T, levels, net, sampler, generator, progress=lambda i: bar.update(),
                                    callback=callback)
    bar.close()
    with pipe.stage("decode", timings):
        frames = to_uint8_frames(pipe.decode_frames(x0.float(), cfg)[:num_frames])
    return dict(frames=frames, latents=x0, nfe=net.nfe, inversion_branches=[], finite=bool(torch.isfinite(x0).all()),
                timings=timings)
