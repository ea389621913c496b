"""Videoshop on flow-matching image-to-video pipelines: Wan 2.1 I2V and LTX-Video I2V (paper Fig. 2 on a flow model).

Each pipeline subclasses the official diffusers pipeline (so ``from_pretrained`` loads the model's own repository and
its prompt/image encoders are the pipeline's own methods) and replaces ``__call__`` by Videoshop's five steps
(``videoshop.fig2``, the same routine as ``VideoshopPipeline`` for SVD, through ``videoshop.prompted``): encode and normalise (Eq. 8 left), invert the source video with noise
extrapolation conditioned on its own first frame (Eq. 6-7 on flow steps, videoshop/flow.py), regenerate with Euler
conditioned on the edited first frame, rescale (Eq. 8 right), decode. The network wrappers reproduce the official
pipelines' transformer calls (conditioning, timestep convention t = 1000 sigma, CFG), so that with 0 inversion
steps the sampler is the official pipeline's Euler sampler (tests/test_flow_models.py checks it to 1e-4).

How each model is conditioned on the first frame (diffusers 0.42):
- Wan 2.1 I2V: CLIP image embeddings (penultimate hidden states) as extra cross-attention tokens, and 20 channels
  concatenated to the latent: 4 mask channels (1 on pixel frame 0) + the VAE latent of [image, zeros ...].
  Wan 2.2 I2V-A14B: the same channels, no CLIP tokens, two experts split at a timestep boundary. Wan 2.2 TI2V-5B:
  latent frame 0 is the image latent with timestep 0 on its tokens (like LTX).
- LTX-Video I2V: latent frame 0 IS the image latent (a conditioning token block with timestep 0); the velocity is
  applied to frames 1: only (``LTXFlowNetwork`` returns 0 velocity on frame 0, which leaves it unchanged).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from . import _compat  # noqa: F401
from diffusers import LTXImageToVideoPipeline, WanImageToVideoPipeline
from diffusers.pipelines.ltx.pipeline_ltx_image2video import calculate_shift
from diffusers.pipelines.wan.pipeline_wan_i2v import retrieve_latents
from PIL import Image

from .conditioning import to_uint8_frames
from .flow import channels_first, frames_first, invert_flow, sample_flow_euler
from .prompted import PromptedVideoshopMixin


def flow_timestep(sigma: float, num_train_timesteps: int, batch: int, device) -> torch.Tensor:
    """The transformer's timestep for noise level sigma: t = sigma x num_train_timesteps in float32
    (FlowMatchEulerDiscreteScheduler's ``timesteps = sigmas * num_train_timesteps``), one per video."""
    return (torch.tensor(sigma, dtype=torch.float32) * num_train_timesteps).to(device).expand(batch)


# ----------------------------------------------------------------------------- network wrappers v(x, sigma)
class WanFlowNetwork:
    """Wan's transformer(s) as the flow network v(x, sigma) on (B, F, C, h, w) latents, conditioned as
    WanImageToVideoPipeline does (diffusers 0.42):

    - Wan 2.1 I2V and Wan 2.2 I2V-A14B: hidden_states = [x, mask + first-frame latent] on channels, CLIP image tokens
      (2.1 only), text tokens. Wan 2.2 A14B has two experts: ``transformer`` at t >= boundary (high noise, CFG
      ``guidance``), ``transformer_2`` below it (CFG ``guidance_2``).
    - Wan 2.2 TI2V-5B (``expand_timesteps``): latent frame 0 IS the first-frame latent (``condition_state``), its
      tokens get timestep 0, and its velocity is 0 (the pipeline overwrites frame 0 with the condition at every input
      and at the end, so its value in the state never matters).

    CFG runs the conditional then the unconditional (negative prompt) pass: v_u + g (v_c - v_u). ``nfe`` counts
    guided evaluations."""

    def __init__(self, transformer, condition: torch.Tensor, prompt_embeds: torch.Tensor,
                 negative_prompt_embeds: Optional[torch.Tensor], image_embeds: Optional[torch.Tensor],
                 guidance: float, num_train_timesteps: int, transformer_2=None, boundary_timestep=None,
                 guidance_2: Optional[float] = None, first_latent: Optional[torch.Tensor] = None):
        self.transformer, self.condition, self.guidance = transformer, condition, float(guidance)
        self.prompt_embeds, self.negative_prompt_embeds, self.image_embeds = prompt_embeds, negative_prompt_embeds, image_embeds
        self.num_train_timesteps = num_train_timesteps
        self.transformer_2, self.boundary_timestep = transformer_2, boundary_timestep
        self.guidance_2 = self.guidance if guidance_2 is None else float(guidance_2)
        self.first_latent = first_latent  # expand_timesteps: (1, 1, C, h, w) in the state's space
        self.nfe = 0

    def condition_state(self, x: torch.Tensor) -> torch.Tensor:
        """Wan 2.1 / 2.2-A14B condition through extra channels: unchanged. TI2V: latent frame 0 := the condition."""
        if self.first_latent is None:
            return x
        return torch.cat([self.first_latent.to(x.device, x.dtype).expand(x.shape[0], -1, -1, -1, -1), x[:, 1:]], dim=1)

    def _expert(self, t: float):
        """The pipeline's model choice: ``transformer`` unless a boundary is set and t is below it."""
        if self.boundary_timestep is None or t >= self.boundary_timestep:
            return self.transformer, self.guidance
        return self.transformer_2, self.guidance_2

    def _v(self, model, hidden: torch.Tensor, timestep: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return model(hidden_states=hidden, timestep=timestep, encoder_hidden_states=text,
                     encoder_hidden_states_image=self.image_embeds, return_dict=False)[0]

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        t = flow_timestep(sigma, self.num_train_timesteps, x.shape[0], self.prompt_embeds.device)
        model, guidance = self._expert(float(t[0]))
        lat = channels_first(self.condition_state(x)).to(self.prompt_embeds.device, torch.float32)
        if self.first_latent is None:
            hidden = torch.cat([lat, self.condition], dim=1).to(model.dtype)
        else:  # per-token timesteps, 0 on frame 0 (patch_size[1:] tokens per latent pixel block)
            hidden = lat.to(model.dtype)
            mask = torch.ones(lat.shape[2:], device=lat.device)
            mask[0] = 0.0
            p = model.config.patch_size
            t = (mask[:, :: p[1], :: p[2]] * t[0]).flatten().unsqueeze(0).expand(x.shape[0], -1)
        v = self._v(model, hidden, t, self.prompt_embeds)
        if guidance > 1.0:
            v_u = self._v(model, hidden, t, self.negative_prompt_embeds)
            v = v_u + guidance * (v - v_u)
        v = frames_first(v.float())
        if self.first_latent is not None:
            v = torch.cat([torch.zeros_like(v[:, :1]), v[:, 1:]], dim=1)
        self.nfe += 1
        return v.to(x.device)


class LTXFlowNetwork:
    """LTX-Video's transformer as the flow network v(x, sigma) on (B, F, C, h, w) latents, conditioned as
    LTXImageToVideoPipeline does: latent frame 0 is the first-frame latent (``condition_state`` writes it), its
    tokens get timestep 0 (t (1 - conditioning_mask)); CFG is one batch [negative, positive]; the velocity of frame 0
    is 0, so an Euler step leaves it unchanged (the pipeline steps frames 1: only)."""

    def __init__(self, pipe, first_latent: torch.Tensor, prompt_embeds, prompt_mask, negative_embeds, negative_mask,
                 guidance: float, frame_rate: float):
        self.pipe, self.first_latent, self.guidance = pipe, first_latent, float(guidance)
        self.cfg = self.guidance > 1.0
        self.text = torch.cat([negative_embeds, prompt_embeds]) if self.cfg else prompt_embeds
        self.text_mask = torch.cat([negative_mask, prompt_mask]) if self.cfg else prompt_mask
        self.rope_scale = (pipe.vae_temporal_compression_ratio / frame_rate, pipe.vae_spatial_compression_ratio,
                           pipe.vae_spatial_compression_ratio)
        self.nfe = 0

    def condition_state(self, x: torch.Tensor) -> torch.Tensor:
        """Latent frame 0 := the first-frame latent (``prepare_latents``: init_latents x mask + noise x (1 - mask))."""
        return torch.cat([self.first_latent.to(x.device, x.dtype).expand(x.shape[0], -1, -1, -1, -1), x[:, 1:]], dim=1)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        pipe, tr = self.pipe, self.pipe.transformer
        p, pt = pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size
        lat = channels_first(self.condition_state(x)).to(self.text.device, torch.float32)
        b, _, f, h, w = lat.shape
        mask = torch.zeros(b, 1, f, h, w, device=lat.device)
        mask[:, :, 0] = 1.0
        mask = pipe._pack_latents(mask, p, pt).squeeze(-1)
        packed = pipe._pack_latents(lat, p, pt)
        if self.cfg:
            packed, mask = torch.cat([packed, packed]), torch.cat([mask, mask])
        t = flow_timestep(sigma, pipe.scheduler.config.num_train_timesteps, packed.shape[0], packed.device)
        v = tr(hidden_states=packed.to(self.text.dtype), encoder_hidden_states=self.text,
               timestep=t.unsqueeze(-1) * (1 - mask), encoder_attention_mask=self.text_mask, num_frames=f, height=h,
               width=w, rope_interpolation_scale=self.rope_scale, return_dict=False)[0].float()
        if self.cfg:
            v_u, v_c = v.chunk(2)
            v = v_u + self.guidance * (v_c - v_u)
        v = pipe._unpack_latents(v, f, h, w, p, pt)
        v[:, :, 0] = 0.0
        self.nfe += 1
        return frames_first(v).to(x.device)


# ----------------------------------------------------------------------------- the flow family's steps
class FlowSteps:
    """The flow family's steps for Fig. 2 (``videoshop.fig2``): inversion with noise extrapolation on flow Euler
    steps (``invert_flow``), sampling with flow Euler (``sample_flow_euler``)."""

    def invert_latents(self, x0, levels_up, network, options, generator, progress=None):
        return invert_flow(x0, levels_up, network, options, generator, progress=progress)

    def step_sampler(self, x, levels_down, network, progress=None, callback=None):
        return sample_flow_euler(x, levels_down, network, progress=progress, callback=callback)


class WanVideoshopPipeline(FlowSteps, PromptedVideoshopMixin, WanImageToVideoPipeline):
    """Videoshop on Wan 2.1 I2V and Wan 2.2 I2V-A14B / TI2V-5B (``from_pretrained`` of their -Diffusers repos).
    Model-space latents are the VAE latent standardised per channel by the VAE's latents_mean / latents_std, as in
    the official pipeline."""

    @property
    def _main_transformer(self):
        return self.transformer if self.transformer is not None else self.transformer_2

    @property
    def size_multiple(self) -> int:
        return self.vae_scale_factor_spatial * self._main_transformer.config.patch_size[1]

    @property
    def frame_step(self) -> int:
        return self.vae_scale_factor_temporal

    def _latent_stats(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.vae.config
        return (torch.tensor(c.latents_mean, device=device).view(1, c.z_dim, 1, 1, 1),
                torch.tensor(c.latents_std, device=device).view(1, c.z_dim, 1, 1, 1))

    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """(T, 3, H, W) in [-1, 1] -> model-space latents (1, F', C, h, w): VAE mode, (z - mean) / std."""
        z = retrieve_latents(self.vae.encode(pixels.permute(1, 0, 2, 3)[None].to(self.vae.dtype)), sample_mode="argmax")
        mean, std = self._latent_stats(z.device)
        return frames_first((z.float() - mean) / std)

    def schedule_levels(self, num_inference_steps: int, latent_shape) -> torch.Tensor:
        self.scheduler.set_timesteps(num_inference_steps, device="cpu")
        return self.scheduler.sigmas

    def first_frame_network(self, image_px: torch.Tensor, first_latent: torch.Tensor, num_frames: int, prompt: str,
                     negative_prompt: Optional[str], guidance: float) -> WanFlowNetwork:
        """Text, CLIP image (2.1) and first-frame conditioning exactly as WanImageToVideoPipeline computes them;
        with ``expand_timesteps`` (TI2V) the condition is ``first_latent`` (the state's frame 0)."""
        dev, main = self.compute_device, self._main_transformer
        dt = main.dtype
        pe, npe = self.encode_prompt(prompt=prompt, negative_prompt=negative_prompt,
                                     do_classifier_free_guidance=guidance > 1.0, num_videos_per_prompt=1,
                                     max_sequence_length=int(self._option("max_sequence_length", 512)), device=dev)
        image_embeds = None
        if self.transformer is not None and self.transformer.config.image_dim is not None:
            image_embeds = self.encode_image(Image.fromarray(to_uint8_frames(image_px)[0]), dev).to(dt)
        boundary = None
        if self.config.boundary_ratio is not None:
            boundary = self.config.boundary_ratio * self.scheduler.config.num_train_timesteps
        common = dict(num_train_timesteps=self.scheduler.config.num_train_timesteps, transformer_2=self.transformer_2,
                      boundary_timestep=boundary, guidance_2=self._option("guidance_scale_2", None))
        pe, npe = pe.to(dt), None if npe is None else npe.to(dt)
        if self.config.expand_timesteps:
            return WanFlowNetwork(main, None, pe, npe, image_embeds, guidance, first_latent=first_latent, **common)
        _, _, hh, ww = image_px.shape
        f_lat = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        zeros = torch.zeros(1, self.vae.config.z_dim, f_lat, hh // self.vae_scale_factor_spatial,
                            ww // self.vae_scale_factor_spatial, device=dev)
        _, condition = self.prepare_latents(image_px.float(), 1, self.vae.config.z_dim, hh, ww, num_frames,
                                            torch.float32, dev, None, zeros)
        return WanFlowNetwork(main, condition, pe, npe, image_embeds, guidance, **common)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Model-space (1, F', C, h, w) -> pixels (T, 3, H, W) in [-1, 1] (the official pipeline's decode)."""
        mean, std = self._latent_stats(self.compute_device)
        z = channels_first(latents.float().to(self.compute_device)) * std + mean
        return self.vae.decode(z.to(self.vae.dtype), return_dict=False)[0][0].permute(1, 0, 2, 3).float()


class LTXVideoshopPipeline(FlowSteps, PromptedVideoshopMixin, LTXImageToVideoPipeline):
    """Videoshop on LTX-Video I2V (``from_pretrained("Lightricks/LTX-Video")``). Model-space latents are the
    pipeline's ``_normalize_latents`` of the VAE latent (mode, not a sample: deterministic, like SVD's encoding)."""

    @property
    def size_multiple(self) -> int:
        """LTXImageToVideoPipeline.check_inputs requires multiples of 32 (and of the VAE x patch downsampling)."""
        return int(np.lcm(32, self.vae_spatial_compression_ratio * self.transformer_spatial_patch_size))

    @property
    def frame_step(self) -> int:
        return self.vae_temporal_compression_ratio * self.transformer_temporal_patch_size

    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """(T, 3, H, W) in [-1, 1] -> model-space latents (1, F', C, h, w)."""
        z = retrieve_latents(self.vae.encode(pixels.permute(1, 0, 2, 3)[None].to(self.vae.dtype)), sample_mode="argmax")
        return frames_first(self._normalize_latents(z.float(), self.vae.latents_mean, self.vae.latents_std))

    def schedule_levels(self, num_inference_steps: int, latent_shape) -> torch.Tensor:
        """LTXImageToVideoPipeline's schedule: linspace(1, 1/n, n) shifted by mu(latent sequence length)."""
        _, f, _, h, w = latent_shape
        c = self.scheduler.config
        mu = calculate_shift(f * h * w, c.get("base_image_seq_len", 256), c.get("max_image_seq_len", 4096),
                             c.get("base_shift", 0.5), c.get("max_shift", 1.15))
        self.scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / num_inference_steps, num_inference_steps),
                                     device="cpu", mu=mu)
        return self.scheduler.sigmas

    def first_frame_network(self, image_px: torch.Tensor, first_latent: torch.Tensor, num_frames: int, prompt: str,
                     negative_prompt: Optional[str], guidance: float) -> LTXFlowNetwork:
        pe, pm, npe, npm = self.encode_prompt(prompt=prompt, negative_prompt=negative_prompt,
                                              do_classifier_free_guidance=guidance > 1.0, num_videos_per_prompt=1,
                                              max_sequence_length=int(self._option("max_sequence_length", 128)),
                                              device=self.compute_device)
        return LTXFlowNetwork(self, first_latent, pe, pm, npe, npm, guidance, float(self._option("frame_rate", 25)))

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Model-space (1, F', C, h, w) -> pixels (T, 3, H, W) in [-1, 1]; a timestep-conditioned VAE (0.9.1+)
        decodes at ``decode_timestep`` (model option, default 0.0 as the pipeline) without added noise."""
        z = self._denormalize_latents(channels_first(latents.float().to(self.compute_device)), self.vae.latents_mean,
                                      self.vae.latents_std, self.vae.config.scaling_factor)
        timestep = None
        if self.vae.config.timestep_conditioning:
            timestep = torch.tensor([float(self._option("decode_timestep", 0.0))], device=z.device, dtype=z.dtype)
        return self.vae.decode(z.to(self.vae.dtype), timestep, return_dict=False)[0][0].permute(1, 0, 2, 3).float()
