"""Components of FateZero's and Spacetime's base models: real weights by hub id or path, tiny random stand-ins.

- FateZero: Stable Diffusion 1.4 (``CompVis/stable-diffusion-v1-4``): ``UNet2DConditionModel``, ``AutoencoderKL``,
  ``CLIPTextModel`` + ``CLIPTokenizer``, the DDIM scheduler config.
- Spacetime (DMT): Zeroscope v2 576w (``cerspense/zeroscope_v2_576w``), a ``TextToVideoSDPipeline`` checkpoint:
  ``UNet3DConditionModel`` plus the same VAE / CLIP text classes.

``weights: tiny`` builds the same classes at toy size with seeded random weights, entirely offline (the tokenizer
from a byte-level vocabulary written in code), for tests and smoke runs. Missing real weights fail at start-up with one
line naming the config key to set (``method.path=DIR``).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch

from videoshop.models import MissingWeightsError, _hub_reachable, _repo_relative

SD_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                    clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")


def tiny_tokenizer():
    """A CLIPTokenizer over a byte-level vocabulary (every word splits into characters), built offline."""
    from transformers import CLIPTokenizer

    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):  # GPT-2/CLIP byte-to-unicode table
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _tiny_text_encoder(vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, max_position_embeddings=77, bos_token_id=vocab_size - 2,
                                        eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1))


def _tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 32), layers_per_block=1,
                         latent_channels=4, norm_num_groups=8, sample_size=32)


def tiny_sd_unet():
    """SD's UNet layout at toy size: three cross-attention levels, one plain level, 2 down/3 up layers per block."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=2,
                                block_out_channels=(16, 32, 32, 32), norm_num_groups=8, cross_attention_dim=32,
                                attention_head_dim=4,
                                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)


def tiny_t2v_unet():
    """Zeroscope's UNet3DConditionModel layout at toy size (up_blocks[1] = first CrossAttnUpBlock3D with upsampler)."""
    from diffusers import UNet3DConditionModel

    return UNet3DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(16, 32, 32), norm_num_groups=8, cross_attention_dim=32,
                                attention_head_dim=4,
                                down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
                                up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"))


def tiny_components(kind: str, seed: int = 0) -> dict[str, Any]:
    """Seeded random components of the real classes; ``kind``: 'sd' (FateZero) or 't2v' (Spacetime)."""
    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    comps = dict(unet=tiny_sd_unet() if kind == "sd" else tiny_t2v_unet(), vae=_tiny_vae(),
                 text_encoder=_tiny_text_encoder(len(tok)), tokenizer=tok, scheduler_config=dict(SD_SCHEDULER))
    for k in ("unet", "vae", "text_encoder"):
        comps[k].eval().requires_grad_(False)
    return comps


def resolve_weights(hub_id: Optional[str], path: Optional[str], allow_download: bool, key: str) -> str:
    """A local directory or cached/downloadable hub id, else MissingWeightsError naming ``key`` (one line)."""
    if path:
        path = _repo_relative(path)
        if not os.path.isfile(os.path.join(path, "model_index.json")):
            raise MissingWeightsError(f"{key}.path={path} holds no model_index.json: point {key}.path at a diffusers "
                                      f"checkpoint directory of {hub_id}")
        return path
    if not hub_id:
        raise MissingWeightsError(f"no weights configured: set {key}.path=DIR or {key}.hub_id=ORG/NAME")
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(hub_id, local_files_only=True, allow_patterns=["model_index.json"])
        return hub_id
    except Exception:  # noqa: BLE001  (not cached)
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    if offline or not allow_download or not _hub_reachable():
        raise MissingWeightsError(f"weights for {hub_id} are not cached and cannot be downloaded here: set {key}.path=DIR "
                                  f"to a local copy (`huggingface-cli download {hub_id}` on a connected machine)")
    return hub_id


def load_components(kind: str, weights: str, *, hub_id: Optional[str], path: Optional[str], allow_download: bool,
                    dtype: torch.dtype, key: str, seed: int = 0) -> dict[str, Any]:
    """Components for FateZero ('sd') or Spacetime ('t2v'): ``weights`` 'hub' (hub id or path) or 'tiny'."""
    if weights == "tiny":
        comps = tiny_components(kind, seed)
        if dtype != torch.float32:
            for k in ("unet", "vae", "text_encoder"):
                comps[k].to(dtype)
        return comps
    if weights != "hub":
        raise ValueError(f"{key}.weights={weights!r}: expected 'hub' or 'tiny'")
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel, UNet3DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    src = resolve_weights(hub_id, path, allow_download, key)
    unet_cls = UNet2DConditionModel if kind == "sd" else UNet3DConditionModel
    comps = dict(unet=unet_cls.from_pretrained(src, subfolder="unet", torch_dtype=dtype),
                 vae=AutoencoderKL.from_pretrained(src, subfolder="vae", torch_dtype=dtype),
                 text_encoder=CLIPTextModel.from_pretrained(src, subfolder="text_encoder", dtype=dtype),
                 tokenizer=CLIPTokenizer.from_pretrained(src, subfolder="tokenizer"),
                 scheduler_config=dict(DDIMScheduler.load_config(src, subfolder="scheduler")))
    for k in ("unet", "vae", "text_encoder"):
        comps[k].eval().requires_grad_(False)
    return comps
