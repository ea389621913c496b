"""The flow-matching image-to-video families (Wan 2.1 I2V, Wan 2.2 I2V-A14B and TI2V-5B, LTX-Video I2V): their
components' configurations at ``tiny`` and ``full`` size, the modules built from them, and the sampler a released
checkpoint runs with. Their registry entries are in videoshop/families.py, their pipelines in
videoshop/flow_pipeline.py; building from an entry is videoshop/family_models.py's (kinds pretrained | tiny | random).

The sampler is always the flow-matching Euler sampler (the one Videoshop inverts): a checkpoint that ships another
scheduler (Wan's diffusers repos ship UniPCMultistepScheduler with ``flow_shift``) is run with
FlowMatchEulerDiscreteScheduler at the same shift, so outputs differ from the official pipeline's default sampler.
"""

from __future__ import annotations

from typing import Any

from . import _compat  # noqa: F401  (torchvision shim before diffusers/transformers)

from .family_models import t5_encoder_config


# ----------------------------------------------------------------------------- architectures
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


def ltx_modules(cfg: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    return dict(transformer=LTXVideoTransformer3DModel(**cfg["transformer"]), vae=AutoencoderKLLTXVideo(**cfg["vae"]),
                text_encoder=T5EncoderModel(T5Config(**cfg["text_encoder"])))


def euler_scheduler_for(scheduler):
    """The single-step deterministic scheduler Videoshop inverts, from a flow checkpoint's scheduler: kept if it
    already is flow-matching Euler; otherwise (Wan's UniPCMultistepScheduler) FlowMatchEulerDiscreteScheduler with the
    checkpoint's ``flow_shift``."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    if isinstance(scheduler, FlowMatchEulerDiscreteScheduler):
        return scheduler
    shift = float(scheduler.config.get("flow_shift", scheduler.config.get("shift", 1.0)) or 1.0)
    return FlowMatchEulerDiscreteScheduler(shift=shift, num_train_timesteps=scheduler.config.num_train_timesteps)
