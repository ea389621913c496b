"""Videoshop on the diffusers text-and-image-to-video pipelines (Wan, LTX-Video, CogVideoX): their shared adapter
for Fig. 2 (``videoshop.fig2``), over a few per-model hooks.

A pipeline class subclasses the official diffusers pipeline (so ``from_pretrained`` loads the model's own
repository and its prompt / image encoders are the pipeline's own methods) and this mixin, and provides:
``encode_video`` (pixels -> model-space latents (1, F', C, h, w)), ``schedule_levels`` (the family's descending
noise levels before truncation: flow sigmas, VP alpha-bars), ``first_frame_network`` (the transformer conditioned on
a first frame and a prompt), ``decode_latents``, ``size_multiple``, ``frame_step``, and the family's steps:
``invert_latents`` and ``step_sampler`` (flow: ``FlowSteps`` in videoshop/flow_pipeline.py; VP: ``VPSteps`` in
videoshop/cogvideox.py).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import Iterator, Optional

import numpy as np
import torch

from .config import VideoshopConfig
from .edm import truncate_by_strength
from .fig2 import Prompts, check_batch, edit_video, generate_video
from .pipeline import VideoshopOutput


class PromptedVideoshopMixin:
    """Videoshop's ``__call__`` and ``generate`` for a text-and-image-to-video pipeline: same inputs and output as
    ``VideoshopPipeline`` plus a text ``prompt`` (the target prompt; ``source_prompt`` for the inversion, default the
    same). One video at a time."""

    takes_prompt = True
    batches = False

    def _option(self, key: str, default):
        return (getattr(self, "model_options", None) or {}).get(key, default)

    @property
    def compute_device(self) -> torch.device:
        return self._execution_device

    @contextlib.contextmanager
    def stage(self, name: str, timings: dict) -> Iterator[None]:
        """One step of Fig. 2, timed (these pipelines run with the default runtime options: no offloading)."""
        t0 = time.perf_counter()
        yield
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0

    def noise_levels(self, num_inference_steps: int, strength: float, latent_shape) -> torch.Tensor:
        """Descending levels actually run: the model's schedule (its shift; LTX: resolution-dependent mu; VP:
        alpha-bars) with its final level, truncated by ``strength`` like SVD's (float64)."""
        return truncate_by_strength(self.schedule_levels(num_inference_steps, latent_shape).double().cpu(), strength)

    def check_frame_count(self, num_frames: int) -> None:
        if (num_frames - 1) % self.frame_step:
            raise ValueError(f"{type(self).__name__}: {num_frames} frames; this model takes k x {self.frame_step} + 1 "
                             f"frames (set model.num_frames accordingly)")

    def _resolve_size(self, video_shape, height: Optional[int], width: Optional[int]) -> tuple[int, int]:
        m = self.size_multiple
        h, w = height or max(m, video_shape[1] // m * m), width or max(m, video_shape[2] // m * m)
        if h % m or w % m:
            raise ValueError(f"height={h}, width={w}: both must be multiples of {m} for this model")
        return h, w

    # ------------------------------------------------------------------ the adapter of videoshop.fig2
    def encode_latents(self, pixels: torch.Tensor, cfg: VideoshopConfig) -> torch.Tensor:
        return self.encode_video(pixels)

    def source_network(self, video_px: list, videos: list, x_hat0, num_frames: int, cfg: VideoshopConfig,
                       generator, prompts: Prompts):
        """The inversion's network: the source's first frame and normalised latent, the source prompt, CFG at
        ``inversion_guidance_scale``."""
        return self.first_frame_network(video_px[0][:1], x_hat0[:, :1], num_frames, prompts.source,
                                        prompts.negative_prompt, cfg.inversion_guidance_scale)

    def edited_network(self, image_px: torch.Tensor, images: list, condition, num_frames: int,
                       cfg: VideoshopConfig, generator, prompts: Prompts):
        """Generation's network: the edited first frame and its latent, the target prompt, CFG at
        ``max_guidance_scale``."""
        return self.first_frame_network(image_px[:1], condition, num_frames, prompts.prompt, prompts.negative_prompt,
                                        cfg.max_guidance_scale)

    def decode_frames(self, latents: torch.Tensor, cfg: VideoshopConfig) -> torch.Tensor:
        return self.decode_latents(latents)

    def regenerate(self, inverted, levels_down, network, options, progress=None, callback=None):
        return self.sample_latents(inverted.latents, levels_down, network, progress=progress, callback=callback)

    def sample_latents(self, x, levels_down, network, sampler: str = "euler", generator=None, progress=None,
                       callback=None):
        """The family's deterministic sampler (the one Videoshop inverts) from x, its conditioning applied."""
        if sampler != "euler":
            raise ValueError(f"sampler={sampler!r}: {type(self).__name__} samples with its own deterministic steps")
        return self.step_sampler(network.condition_state(x), levels_down, network, progress=progress,
                                 callback=callback)

    def noise_shape(self, num_frames: int, image_latents: torch.Tensor) -> tuple[int, ...]:
        return (1, (num_frames - 1) // self.frame_step + 1) + tuple(image_latents.shape[2:])

    def initial_scale(self, levels: torch.Tensor) -> float:
        return 1.0  # flow sigma = 1, VP alpha_bar = 0: pure noise N(0, I)

    # ------------------------------------------------------------------ the calls
    @torch.no_grad()
    def generate(self, image, num_frames: int, *, prompt: str, config: Optional[VideoshopConfig] = None,
                 generator=None, height: Optional[int] = None, width: Optional[int] = None,
                 negative_prompt: Optional[str] = None, callback=None, **options) -> VideoshopOutput:
        """The model's own image-to-video generation from pure noise over its full schedule (no source video, no
        Eq. 8; strength ignored), with the sampler Videoshop inverts: the 'no source video' baseline
        (``svd_no_source``) on this model. Text CFG scale: ``max_guidance_scale``."""
        cfg = replace(config or VideoshopConfig(), **options)
        image = np.asarray(image)
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        return VideoshopOutput(**generate_video(self, image, num_frames, cfg, generator,
                                                self._resolve_size(image[None].shape, height, width),
                                                Prompts(prompt, None, negative_prompt), callback=callback))

    @torch.no_grad()
    def __call__(self, video, edited_image, *, prompt: str, config: Optional[VideoshopConfig] = None, generator=None,
                 height: Optional[int] = None, width: Optional[int] = None,
                 source_prompt: Optional[str] = None, negative_prompt: Optional[str] = None, callback=None,
                 **options) -> VideoshopOutput:
        """Edit ``video`` (T, H, W, 3 uint8) so that its first frame becomes ``edited_image``; ``prompt`` describes
        the edited video. ``options`` override fields of ``config``; of its SVD conditioning fields only
        ``max_guidance_scale`` is used (as the text CFG scale of generation; ``inversion_guidance_scale`` for the
        inversion). ``callback(i, level, x)`` runs after every generation step (``videoshop.sampling.sample_along``)."""
        cfg = replace(config or VideoshopConfig(), **options)
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        batched = isinstance(video, (list, tuple))
        check_batch(self, list(video) if batched else [video], [edited_image], generator, batched)
        video, image = np.asarray(video), np.asarray(edited_image)
        out = edit_video(self, [video], [image], cfg, generator, self._resolve_size(video.shape, height, width),
                         Prompts(prompt, source_prompt, negative_prompt), callback=callback)
        return VideoshopOutput(**dict(out, frames=out["frames"][0]))
