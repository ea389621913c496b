"""Videoshop on LTX-Video I2V (Lightricks/LTX-Video, paper Fig. 2 on a flow model): the family's component configs
at ``tiny`` and ``full`` size, its modules, its network wrapper and its pipeline. Registry entry ``ltx_i2v`` in
videoshop/families.py.

The pipeline subclasses the official ``LTXImageToVideoPipeline`` and replaces ``__call__`` by Videoshop's five steps
(``videoshop.fig2`` through ``videoshop.prompted`` and the flow steps of videoshop/flow_pipeline.py). First-frame
conditioning (diffusers 0.42): latent frame 0 IS the image latent (a conditioning token block with timestep 0); the
velocity is applied to frames 1: only (``LTXFlowNetwork`` returns 0 velocity on frame 0, which leaves it unchanged).
With 0 inversion steps the sampler is the official pipeline's Euler sampler (tests/test_flow_models.py, 1e-4).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from . import _compat  # noqa: F401  (torchvision shim before diffusers/transformers)
from diffusers import LTXImageToVideoPipeline
from diffusers.pipelines.ltx.pipeline_ltx_image2video import calculate_shift, retrieve_latents

from .family_models import t5_encoder_config
from .flow import channels_first, frames_first
from .flow_pipeline import FlowSteps, flow_timestep
from .prompted import PromptedVideoshopMixin


# ----------------------------------------------------------------------------- the family's components
def ltx_i2v_configs(size: str) -> dict[str, dict[str, Any]]:
    """Component configs of LTX-Video I2V: ``full`` = Lightricks/LTX-Video (0.9.0, 2B); ``tiny`` = test sizes."""
    # LTX-Video's FlowMatchEulerDiscreteScheduler config (resolution-dependent shift, terminal sigma 0.1)
    scheduler = dict(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
                     max_image_seq_len=4096, shift_terminal=0.1)
    if size == "tiny":
        return dict(
            transformer=dict(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
                             attention_head_dim=8, cross_attention_dim=32, num_layers=1, caption_channels=32),
            vae=dict(in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
                     decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
                     decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
                     decoder_spatio_temporal_scaling=(True, True, False, False), decoder_inject_noise=(False,) * 5,
                     upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=False,
                     patch_size=1, patch_size_t=1, encoder_causal=True, decoder_causal=False),
            text_encoder=t5_encoder_config("tiny", 100),
            scheduler=scheduler,
        )
    return dict(transformer=dict(), vae=dict(), text_encoder=t5_encoder_config("full", 32128), scheduler=scheduler)


def ltx_modules(cfg: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    return dict(transformer=LTXVideoTransformer3DModel(**cfg["transformer"]), vae=AutoencoderKLLTXVideo(**cfg["vae"]),
                text_encoder=T5EncoderModel(T5Config(**cfg["text_encoder"])))


# ----------------------------------------------------------------------------- the network and the pipeline
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
