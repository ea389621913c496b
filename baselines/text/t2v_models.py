"""Base models of FateZero and Spacetime on top of the shared SD-family loading (baselines/text/models.py).

- FateZero: Stable Diffusion 1.4 (``CompVis/stable-diffusion-v1-4``) through ``load_sd_family``. Its tiny stand-in
  replaces the shared tiny UNet (attention at full resolution only) by ``tiny_fatezero_unet``: SD's layout (three
  cross-attention levels, a plain fourth level, 2 down / 3 up layers per block) at toy width, because FateZero's
  mechanism lives in the coarser attention levels (fusion below the finest level, blending mask from the coarsest
  cross-attention level, middle-frame attention in blocks of >= 640 channels).
- Spacetime (DMT): Zeroscope v2 576w (``cerspense/zeroscope_v2_576w``), a ``TextToVideoSDPipeline`` checkpoint:
  ``UNet3DConditionModel`` + the SD VAE / CLIP text classes. Tiny stand-in: ``tiny_t2v_unet`` (Zeroscope's block
  layout: ``up_blocks[1]`` is the first CrossAttnUpBlock3D, with two resnets, temporal convs and an upsampler).

``weights``: pretrained (hub id or ``method.base.path``) | tiny | random (full-size architecture, random weights).
"""

from __future__ import annotations

import torch

from .models import (SDComponents, _seeded, build_random_sd, check_weights, load_sd_family, resolve_source,
                     weights_load_error)

ZEROSCOPE_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                           clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
# The DDIM configs both official codes use: SD1.4's shipped scheduler config (FateZero: DDIMScheduler.from_pretrained)
# and Zeroscope's (DMT: DDIMScheduler.from_config); 50 steps give timesteps 981 ... 1.
SD14_SCHEDULER = dict(ZEROSCOPE_SCHEDULER)


def tiny_fatezero_unet():
    """UNet2DConditionModel with SD's block layout at toy width (16/32/32/32 channels, cross-attention dim 32)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
                                block_out_channels=(16, 32, 32, 32), norm_num_groups=8, cross_attention_dim=32,
                                attention_head_dim=4,
                                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)


def tiny_t2v_unet():
    """UNet3DConditionModel with Zeroscope's layout at toy size (3 levels, 16/32/32 channels)."""
    from diffusers import UNet3DConditionModel

    return UNet3DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32, 32), norm_num_groups=8, cross_attention_dim=32,
                                attention_head_dim=4,
                                down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
                                up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"))


def load_fatezero_components(weights: str, base: dict, *, allow_download: bool, dtype: torch.dtype, seed: int = 0,
                             key: str = "method") -> SDComponents:
    """SD1.4 components for FateZero (tiny: the shared tiny VAE/CLIP with ``tiny_fatezero_unet``)."""
    comps = load_sd_family(weights, base=base, allow_download=allow_download, dtype=dtype, seed=seed, key=key)
    if weights == "tiny":
        comps.unet = _seeded(seed, tiny_fatezero_unet).eval().requires_grad_(False)
    return comps


def load_t2v_components(weights: str, base: dict, *, allow_download: bool, dtype: torch.dtype, seed: int = 0,
                        key: str = "method") -> SDComponents:
    """Zeroscope (text-to-video) components: UNet3DConditionModel + AutoencoderKL + CLIP text encoder/tokenizer."""
    from diffusers import UNet3DConditionModel

    check_weights(weights, f"{key}.weights")
    if weights == "tiny":
        comps = build_random_sd("tiny", seed=seed)
        comps.unet = _seeded(seed, tiny_t2v_unet)
    elif weights == "random":  # Zeroscope v2 576w's UNet config (diffusers' UNet3DConditionModel defaults) + SD VAE/CLIP
        comps = build_random_sd("full", seed=seed)
        comps.unet = _seeded(seed, lambda: UNet3DConditionModel(cross_attention_dim=1024, attention_head_dim=64))
    else:
        from diffusers import AutoencoderKL
        from transformers import CLIPTextModel, CLIPTokenizer

        src = resolve_source(base.get("hub_id"), base.get("path"), f"{key}.base", allow_download, "model_index.json")
        try:
            comps = SDComponents(
                unet=UNet3DConditionModel.from_pretrained(src, subfolder="unet", torch_dtype=dtype),
                vae=AutoencoderKL.from_pretrained(src, subfolder="vae", torch_dtype=dtype),
                text_encoder=CLIPTextModel.from_pretrained(src, subfolder="text_encoder", dtype=dtype),
                tokenizer=CLIPTokenizer.from_pretrained(src, subfolder="tokenizer"), weights="pretrained")
        except (OSError, ValueError) as e:
            raise weights_load_error(f"{key}.base", src, e) from None
    comps.unet.eval().requires_grad_(False)
    return comps

