"""Videoshop on CogVideoX-I2V (THUDM/CogVideoX-5b-I2V): a VP v-prediction model sampled with DDIM (videoshop/vp.py).

Conditioning as CogVideoXImageToVideoPipeline (diffusers 0.42): the first frame's VAE latent (times the VAE scaling
factor, or divided by it where ``invert_scale_latents``), followed by zero latents for the other frames, concatenated
to the noisy latent on channels; T5 text tokens (exactly ``max_text_seq_length``); 3D RoPE; CFG as one batch
[negative, positive]. Differences from the official pipeline, all deliberate: the image latent is the VAE posterior's
mode rather than a sample (deterministic, like SVD's encoding); the sampler is DDIM over the listed timesteps (the
official DDIM steps to t - 1000 // n, which differs from the next listed timestep by one when n does not divide 1000;
tests compare at n = 4); a checkpoint shipping CogVideoXDPMScheduler is run with CogVideoXDDIMScheduler (DPM is
multistep and stochastic, not invertible step by step); dynamic CFG is off. CogVideoX 1.5 (patch_size_t) is refused.

The family's component configs (``cogvideox_i2v_configs``), modules and checkpoint sampler are here too; its registry
entry is ``cogvideox_i2v`` in videoshop/families.py.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import _compat  # noqa: F401
from diffusers import CogVideoXDDIMScheduler, CogVideoXImageToVideoPipeline
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import retrieve_latents

from .family_models import t5_encoder_config
from .prompted import PromptedVideoshopMixin
from .vp import invert_vp, sample_ddim


# ----------------------------------------------------------------------------- the family's components
def cogvideox_i2v_configs(size: str) -> dict[str, dict[str, Any]]:
    """Component configs of CogVideoX-I2V: ``full`` = THUDM/CogVideoX-5b-I2V; ``tiny`` = test sizes (32 x 64 px,
    9 frames: the learned positional embeddings fix the latent size to sample_height x sample_width)."""
    # CogVideoX-5b-I2V's scheduler: v-prediction, zero terminal SNR, trailing timesteps
    scheduler = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                     num_train_timesteps=1000, prediction_type="v_prediction", rescale_betas_zero_snr=True,
                     set_alpha_to_one=True, snr_shift_scale=1.0, steps_offset=0, timestep_spacing="trailing")
    if size == "tiny":
        return dict(
            transformer=dict(num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4,
                             time_embed_dim=2, text_embed_dim=32, num_layers=1, sample_width=8, sample_height=4,
                             sample_frames=9, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=16,
                             use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True),
            vae=dict(in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
                     up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
                     layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4, scaling_factor=0.7),
            text_encoder=t5_encoder_config("tiny", 100),
            scheduler=scheduler,
        )
    return dict(
        transformer=dict(num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16,
                         time_embed_dim=512, text_embed_dim=4096, num_layers=42, sample_width=90, sample_height=60,
                         sample_frames=49, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
                         use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
                         spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0, norm_eps=1e-5),
        vae=dict(scaling_factor=0.7),
        text_encoder=t5_encoder_config("full", 32128),
        scheduler=scheduler,
    )


def cogvideox_modules(cfg: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """CogVideoX-I2V's transformer, VAE and T5 encoder from ``cogvideox_i2v_configs``."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    return dict(transformer=CogVideoXTransformer3DModel(**cfg["transformer"]),
                vae=AutoencoderKLCogVideoX(**cfg["vae"]), text_encoder=T5EncoderModel(T5Config(**cfg["text_encoder"])))


def ddim_scheduler_for(scheduler):
    """The deterministic single-step sampler Videoshop inverts, from a CogVideoX checkpoint's scheduler: kept if it
    is CogVideoXDDIMScheduler; otherwise (CogVideoXDPMScheduler: multistep, stochastic) CogVideoXDDIMScheduler with
    the same config (the same noise schedule)."""
    if isinstance(scheduler, CogVideoXDDIMScheduler):
        return scheduler
    return CogVideoXDDIMScheduler.from_config(scheduler.config)


# ----------------------------------------------------------------------------- the network and the pipeline
class CogVideoXNetwork:
    """CogVideoX's transformer as the VP network v(x, ab) on (B, F, C, h, w) latents; ``timesteps`` maps each
    alpha_bar of the schedule to its integer timestep (the model's c_noise)."""

    def __init__(self, transformer, image_latents: torch.Tensor, prompt_embeds: torch.Tensor,
                 negative_prompt_embeds: Optional[torch.Tensor], rotary, ofs, guidance: float,
                 timesteps: dict[float, int]):
        self.transformer, self.guidance, self.timesteps = transformer, float(guidance), timesteps
        self.cfg = self.guidance > 1.0
        self.image_latents = torch.cat([image_latents] * 2) if self.cfg else image_latents
        self.text = torch.cat([negative_prompt_embeds, prompt_embeds]) if self.cfg else prompt_embeds
        self.rotary, self.ofs = rotary, ofs
        self.nfe = 0

    def condition_state(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, ab: float) -> torch.Tensor:
        if float(ab) not in self.timesteps:
            raise ValueError(f"alpha_bar={ab} is not a level of this schedule")
        dev, dt = self.text.device, self.text.dtype
        x_in = x.to(dev, dt)
        x_in = torch.cat([x_in] * 2) if self.cfg else x_in
        hidden = torch.cat([x_in, self.image_latents.to(dt)], dim=2)
        t = torch.tensor([self.timesteps[float(ab)]], device=dev).expand(hidden.shape[0])
        v = self.transformer(hidden_states=hidden, encoder_hidden_states=self.text, timestep=t, ofs=self.ofs,
                             image_rotary_emb=self.rotary, return_dict=False)[0].float()
        if self.cfg:
            v_u, v_c = v.chunk(2)
            v = v_u + self.guidance * (v_c - v_u)
        self.nfe += 1
        return v.to(x.device)


class VPSteps:
    """The VP family's steps for Fig. 2 (``videoshop.fig2``) over alpha-bar levels: inversion with noise
    extrapolation on DDIM steps (``invert_vp``), sampling with DDIM (``sample_ddim``)."""

    def invert_latents(self, x0, levels_up, network, options, generator, progress=None):
        return invert_vp(x0, levels_up, network, options, generator, progress=progress)

    def step_sampler(self, x, levels_down, network, progress=None, callback=None):
        return sample_ddim(x, levels_down, network, progress=progress, callback=callback)


class CogVideoXVideoshopPipeline(VPSteps, PromptedVideoshopMixin, CogVideoXImageToVideoPipeline):
    """Videoshop on CogVideoX-I2V: Fig. 2's five steps with DDIM inversion/generation (``invert_vp``,
    ``sample_ddim``) over alpha-bar levels; model-space latents = VAE mode x scaling factor, already
    (B, F, C, h, w)."""

    @property
    def size_multiple(self) -> int:
        return self.vae_scale_factor_spatial * self.transformer.config.patch_size

    @property
    def frame_step(self) -> int:
        return self.vae_scale_factor_temporal

    def ddim_levels(self, num_inference_steps: int) -> tuple[torch.Tensor, dict[float, int]]:
        """alpha_bar at the DDIM timesteps (descending noise, float64) with the final level (1 with set_alpha_to_one),
        and the map alpha_bar -> timestep."""
        if not isinstance(self.scheduler, CogVideoXDDIMScheduler):
            raise ValueError(f"{type(self.scheduler).__name__}: Videoshop runs CogVideoX with CogVideoXDDIMScheduler")
        self.scheduler.set_timesteps(num_inference_steps, device="cpu")
        ts = [int(t) for t in self.scheduler.timesteps]
        abs_ = [float(self.scheduler.alphas_cumprod.double()[t]) for t in ts]
        levels = torch.tensor(abs_ + [float(self.scheduler.final_alpha_cumprod)], dtype=torch.float64)
        return levels, dict(zip(abs_, ts))

    def schedule_levels(self, num_inference_steps: int, latent_shape) -> torch.Tensor:
        """Fig. 2's noise levels for this family: alpha_bar values, ordered by descending noise."""
        return self.ddim_levels(num_inference_steps)[0]

    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """(T, 3, H, W) in [-1, 1] -> model-space latents (1, F', C, h, w): VAE mode x scaling factor."""
        if self.transformer.config.patch_size_t is not None:
            raise ValueError("CogVideoX 1.5 (patch_size_t) is not supported by CogVideoXVideoshopPipeline")
        z = retrieve_latents(self.vae.encode(pixels.permute(1, 0, 2, 3)[None].to(self.vae.dtype)), sample_mode="argmax")
        return z.float().permute(0, 2, 1, 3, 4) * self.vae_scaling_factor_image

    def _image_condition(self, image_px: torch.Tensor, latent_frames: int) -> torch.Tensor:
        """The pipeline's ``image_latents``: first-frame latent (mode), scaled as the pipeline does, zero-padded."""
        z = retrieve_latents(self.vae.encode(image_px[:, :, None].to(self.vae.dtype)), sample_mode="argmax")
        z = z.float().permute(0, 2, 1, 3, 4)
        z = z / self.vae_scaling_factor_image if self.vae.config.get("invert_scale_latents", False) \
            else z * self.vae_scaling_factor_image
        return torch.cat([z, z.new_zeros(z.shape[0], latent_frames - 1, *z.shape[2:])], dim=1)

    def first_frame_network(self, image_px: torch.Tensor, first_latent: torch.Tensor, num_frames: int, prompt: str,
                     negative_prompt: Optional[str], guidance: float) -> CogVideoXNetwork:
        dev = self.compute_device
        pe, npe = self.encode_prompt(prompt=prompt, negative_prompt=negative_prompt,
                                     do_classifier_free_guidance=guidance > 1.0, num_videos_per_prompt=1,
                                     max_sequence_length=int(self._option("max_sequence_length", 226)), device=dev)
        f_lat = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        _, _, h, w = image_px.shape
        rotary = (self._prepare_rotary_positional_embeddings(h, w, f_lat, dev)
                  if self.transformer.config.use_rotary_positional_embeddings else None)
        ofs = None if self.transformer.config.ofs_embed_dim is None else pe.new_full((1,), 2.0)
        ab = self.scheduler.alphas_cumprod.double()
        timesteps = {float(ab[t]): t for t in range(len(ab))}  # every training timestep: any schedule's levels
        return CogVideoXNetwork(self.transformer, self._image_condition(image_px.to(dev), f_lat).to(dev), pe, npe,
                                rotary, ofs, guidance, timesteps)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Model-space (1, F', C, h, w) -> pixels (T, 3, H, W) in [-1, 1] (the pipeline's ``decode_latents``)."""
        z = latents.float().to(self.compute_device).permute(0, 2, 1, 3, 4) / self.vae_scaling_factor_image
        return self.vae.decode(z.to(self.vae.dtype)).sample[0].permute(1, 0, 2, 3).float()
