"""Videoshop on Wan 2.1 I2V and Wan 2.2 I2V-A14B / TI2V-5B (paper Fig. 2 on a flow model): the family's component
configs at ``tiny`` and ``full`` size, its modules, its network wrapper and its pipeline. Registry entries
``wan21_i2v``, ``wan22_i2v``, ``wan22_ti2v`` in videoshop/families.py.

The pipeline subclasses the official ``WanImageToVideoPipeline`` (so ``from_pretrained`` loads the model's own
repository and its prompt/image encoders are the pipeline's own methods) and replaces ``__call__`` by Videoshop's five
steps (``videoshop.fig2`` through ``videoshop.prompted`` and the flow steps of videoshop/flow_pipeline.py). The
network wrapper reproduces the official transformer call (conditioning, timestep t = 1000 sigma, CFG), so that with
0 inversion steps the sampler is the official pipeline's Euler sampler (tests/test_flow_models.py checks it to 1e-4).

First-frame conditioning (diffusers 0.42): Wan 2.1 I2V: CLIP image embeddings (penultimate hidden states) as extra
cross-attention tokens, and 20 channels concatenated to the latent: 4 mask channels (1 on pixel frame 0) + the VAE
latent of [image, zeros ...]. Wan 2.2 I2V-A14B: the same channels, no CLIP tokens, two experts split at a timestep
boundary. Wan 2.2 TI2V-5B: latent frame 0 is the image latent with timestep 0 on its tokens (like LTX).
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import _compat  # noqa: F401  (torchvision shim before diffusers/transformers)
from diffusers import WanImageToVideoPipeline
from diffusers.pipelines.wan.pipeline_wan_i2v import retrieve_latents
from PIL import Image

from .conditioning import to_uint8_frames
from .family_models import t5_encoder_config
from .flow import channels_first, frames_first
from .flow_pipeline import FlowSteps, flow_timestep
from .prompted import PromptedVideoshopMixin


# ----------------------------------------------------------------------------- the family's components
def wan21_i2v_configs(size: str) -> dict[str, dict[str, Any]]:
    """Component configs of Wan 2.1 I2V: ``full`` = Wan-AI/Wan2.1-I2V-14B-480P-Diffusers; ``tiny`` = test sizes."""
    if size == "tiny":
        return dict(
            transformer=dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36,
                             out_channels=16, text_dim=32, freq_dim=32, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                             qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=8, added_kv_proj_dim=24),
            vae=dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]),
            text_encoder=t5_encoder_config("tiny", 100),
            image_encoder=dict(hidden_size=8, projection_dim=8, num_hidden_layers=2, num_attention_heads=2,
                               image_size=32, intermediate_size=16, patch_size=4),
            image_processor=dict(crop_size=32, size=32),
            scheduler=dict(shift=3.0),
        )
    return dict(
        transformer=dict(patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36,
                         out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40,
                         cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280,
                         added_kv_proj_dim=5120, rope_max_seq_len=1024),
        vae=dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True]),
        text_encoder=t5_encoder_config("full", 256384),
        image_encoder=dict(hidden_size=1280, projection_dim=1024, num_hidden_layers=32, num_attention_heads=16,
                           image_size=224, intermediate_size=5120, patch_size=14, hidden_act="gelu"),
        image_processor=dict(crop_size=224, size=224),
        scheduler=dict(shift=3.0),  # 480P checkpoints: flow_shift 3.0 (720P: 5.0)
    )


def wan22_i2v_configs(size: str) -> dict[str, dict[str, Any]]:
    """Wan 2.2 I2V-A14B (Wan-AI/Wan2.2-I2V-A14B-Diffusers): two 14B experts without CLIP image tokens, split at
    boundary_ratio 0.9 of the timesteps (high noise: ``transformer``, low noise: ``transformer_2``); Wan 2.1's VAE."""
    base = wan21_i2v_configs(size)
    tr = {k: v for k, v in base["transformer"].items() if k not in ("image_dim", "added_kv_proj_dim")}
    return dict(transformer=tr, transformer_2=tr, vae=base["vae"], text_encoder=base["text_encoder"],
                scheduler=dict(shift=5.0), pipeline=dict(boundary_ratio=0.9))


def wan22_ti2v_configs(size: str) -> dict[str, dict[str, Any]]:
    """Wan 2.2 TI2V-5B (Wan-AI/Wan2.2-TI2V-5B-Diffusers): one 5B transformer on the 48-channel Wan 2.2 VAE (16x
    spatial, patchified), first frame as latent frame 0 with timestep 0 (``expand_timesteps``). The random/tiny
    VAEs use latents_mean 0 / latents_std 1 (the real values come with the checkpoint's config)."""
    stats = dict(latents_mean=[0.0] * 48, latents_std=[1.0] * 48)
    vae = dict(z_dim=48, in_channels=12, out_channels=12, temperal_downsample=[False, True, True], is_residual=True,
               patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4, **stats)
    if size == "tiny":
        return dict(
            transformer=dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=48,
                             out_channels=48, text_dim=32, freq_dim=32, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                             qk_norm="rms_norm_across_heads", rope_max_seq_len=32),
            vae=dict(vae, base_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1),
            text_encoder=t5_encoder_config("tiny", 100), scheduler=dict(shift=5.0), pipeline=dict(expand_timesteps=True))
    return dict(
        transformer=dict(patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48,
                         out_channels=48, text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30,
                         cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024),
        vae=dict(vae, base_dim=160, decoder_base_dim=256, dim_mult=[1, 2, 4, 4], num_res_blocks=2),
        text_encoder=t5_encoder_config("full", 256384), scheduler=dict(shift=5.0), pipeline=dict(expand_timesteps=True))


def wan_modules(cfg: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Wan 2.1 / 2.2 modules (a second expert and a CLIP image encoder where the configs have them)."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    mods = dict(transformer=WanTransformer3DModel(**cfg["transformer"]), vae=AutoencoderKLWan(**cfg["vae"]),
                text_encoder=UMT5EncoderModel(UMT5Config(**cfg["text_encoder"])))
    if "transformer_2" in cfg:
        mods["transformer_2"] = WanTransformer3DModel(**cfg["transformer_2"])
    if "image_encoder" in cfg:
        mods["image_encoder"] = CLIPVisionModel(CLIPVisionConfig(**cfg["image_encoder"]))
        mods["image_processor"] = CLIPImageProcessor(**cfg["image_processor"])
    return mods


# ----------------------------------------------------------------------------- the network and the pipeline
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
