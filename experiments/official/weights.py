"""Tiny random Stable Diffusion components written once, in the layout an *old* official code base loads, so that the
project (diffusers 0.42 / transformers 5) and the official side (diffusers 0.10-0.26 / transformers 4.x) read the very
same files (byte-identical weights; ``sha256`` of every file is printed by the driver).

What the old side needs, and what this writes:
- diffusers < 0.14 names the VAE's attention block ``query`` / ``key`` / ``value`` / ``proj_attn``; current diffusers
  saves ``to_q`` / ``to_k`` / ``to_v`` / ``to_out.0`` and converts the old names on load (``legacy_vae_keys``);
- transformers 4.x's ``CLIPTextModel`` keeps its weights under ``text_model.``; transformers 5 saves them without the
  prefix and loads either (``legacy_clip_text_keys``);
- weights as ``*.bin`` (``torch.save``): every diffusers/transformers version reads them (diffusers 0.10 reads
  safetensors only when that package is installed);
- configs written as plain dicts of the fields both versions know (a config saved by transformers 5 carries keys
  that 4.x misreads, e.g. ``dtype``);
- the slow tokenizer's ``vocab.json`` + ``merges.txt`` (the project's tiny byte-level CLIP vocabulary, no merges).

The UNet has Stable Diffusion's block layout (3 cross-attention down blocks + 1 plain, 2 layers each, mid block,
3 cross-attention up blocks of 3 layers) at tiny widths: official codes index attention layers by their position
(Pix2Video's ``COND_LAYER = 7`` = the first decoder self-attention of SD), which the project's 2-level tiny UNet
would not exercise.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import torch

VAE_ATTENTION_RENAMES = (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn"))


def sd_layout_unet_config(in_channels: int = 4, cross_attention_dim: int = 32, sd2: bool = False,
                          sample_size: int = 8) -> dict[str, Any]:
    """UNet2DConditionModel kwargs: SD's 4-level block layout (16 transformer blocks: down 0-5, mid 6, up 7-15) at
    tiny widths (32/32/64/64 channels, 2 heads per block at SD2's linear projection when ``sd2``)."""
    return dict(sample_size=sample_size, in_channels=in_channels, out_channels=4,
                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                block_out_channels=(32, 32, 64, 64), layers_per_block=2, norm_num_groups=8,
                cross_attention_dim=cross_attention_dim,
                attention_head_dim=(8, 8, 16, 16) if sd2 else 8, use_linear_projection=sd2)


def legacy_vae_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Current AutoencoderKL keys -> diffusers 0.10's (attention block ``query``/``key``/``value``/``proj_attn``)."""
    out = {}
    for k, v in state.items():
        if ".attentions." in k:
            for new, old in VAE_ATTENTION_RENAMES:
                k = k.replace(f".{new}.", f".{old}.")
        out[k] = v
    return out


def legacy_clip_text_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers 5 ``CLIPTextModel`` keys -> transformers 4.x's (everything under ``text_model.``)."""
    return {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in state.items()}


def clip_text_config_dict(config) -> dict[str, Any]:
    """The CLIPTextConfig fields transformers 4.25 reads, from a transformers 5 config."""
    keys = ("vocab_size", "hidden_size", "intermediate_size", "projection_dim", "num_hidden_layers",
            "num_attention_heads", "max_position_embeddings", "hidden_act", "layer_norm_eps", "attention_dropout",
            "initializer_range", "initializer_factor", "pad_token_id", "bos_token_id", "eos_token_id")
    d = {k: getattr(config, k) for k in keys if hasattr(config, k)}
    return {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "torch_dtype": "float32", **d}


# The UNet2DConditionModel arguments diffusers 0.10-0.11 know. Later keys (e.g. ``mid_block_type``) must not be
# written: FateZero's ``UNetPseudo3DConditionModel(**config)`` passes unknown keys on and fails on them. Every key
# left out has its default value in the tiny models (the reload test checks the round trip).
OLD_UNET_KEYS = ("sample_size", "in_channels", "out_channels", "center_input_sample", "flip_sin_to_cos", "freq_shift",
                 "down_block_types", "up_block_types", "only_cross_attention", "block_out_channels", "layers_per_block",
                 "downsample_padding", "mid_block_scale_factor", "act_fn", "norm_num_groups", "norm_eps",
                 "cross_attention_dim", "attention_head_dim", "dual_cross_attention", "use_linear_projection",
                 "class_embed_type", "num_class_embeds", "upcast_attention", "resnet_time_scale_shift")


def diffusers_config_dict(model, class_name: str, version: str = "0.10.2",
                          keys: Optional[tuple] = None) -> dict[str, Any]:
    """A diffusers model config as a plain dict without private keys, restricted to ``keys`` when given."""
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(model.config).items()
           if not k.startswith("_") and (keys is None or k in keys)}
    return {"_class_name": class_name, "_diffusers_version": version, **cfg}


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True))


def _save_state(path: Path, state: dict[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().clone().contiguous().float() for k, v in state.items()}, path)


def write_tokenizer(tokenizer, directory: Path) -> None:
    """The slow CLIP tokenizer's files (vocab.json, merges.txt) and a minimal config both transformers read."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = dict(sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]))
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"].get("merges", [])
    lines = [" ".join(m) if isinstance(m, (list, tuple)) else m for m in merges]
    (directory / "merges.txt").write_text("\n".join(["#version: 0.2"] + lines) + "\n")
    _write_json(directory / "tokenizer_config.json", {
        "tokenizer_class": "CLIPTokenizer", "model_max_length": int(tokenizer.model_max_length),
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "do_lower_case": True, "errors": "replace"})
    _write_json(directory / "special_tokens_map.json", {
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>"})


def write_sd_layout(directory: str | os.PathLike, *, unet, vae, text_encoder, tokenizer,
                    scheduler_config: Optional[dict] = None, pipeline_class: str = "StableDiffusionPipeline",
                    extra_modules: Optional[dict] = None, unet_class: str = "UNet2DConditionModel",
                    version: str = "0.10.2") -> dict[str, str]:
    """Write an SD checkpoint directory (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) in
    the layout old diffusers/transformers load. Returns ``{relative path: sha256}`` of every file written.
    ``unet_class`` other than the 2D UNet (e.g. ``UNet3DConditionModel``): its config is written whole, without the
    keys diffusers 0.10-0.20 refuse (``num_attention_heads``, which they take from ``attention_head_dim``)."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    if unet_class == "UNet2DConditionModel":
        unet_cfg = diffusers_config_dict(unet, unet_class, version, keys=OLD_UNET_KEYS)
    else:
        unet_cfg = {k: v for k, v in diffusers_config_dict(unet, unet_class, version).items()
                    if k != "num_attention_heads"}
    _write_json(root / "unet" / "config.json", unet_cfg)
    _save_state(root / "unet" / "diffusion_pytorch_model.bin", unet.state_dict())
    _write_json(root / "vae" / "config.json", diffusers_config_dict(vae, "AutoencoderKL"))
    _save_state(root / "vae" / "diffusion_pytorch_model.bin", legacy_vae_keys(vae.state_dict()))
    _write_json(root / "text_encoder" / "config.json", clip_text_config_dict(text_encoder.config))
    _save_state(root / "text_encoder" / "pytorch_model.bin", legacy_clip_text_keys(text_encoder.state_dict()))
    write_tokenizer(tokenizer, root / "tokenizer")
    modules = {"unet": ["diffusers", unet_class], "vae": ["diffusers", "AutoencoderKL"],
               "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"]}
    if scheduler_config is not None:
        _write_json(root / "scheduler" / "scheduler_config.json",
                    {"_class_name": "DDIMScheduler", "_diffusers_version": version, **scheduler_config})
        modules["scheduler"] = ["diffusers", "DDIMScheduler"]
    modules.update(extra_modules or {})
    _write_json(root / "model_index.json", {"_class_name": pipeline_class, "_diffusers_version": version, **modules})
    return checksums(root)


def checksums(directory: str | os.PathLike) -> dict[str, str]:
    """sha256 of every file under ``directory``, by relative path (sorted)."""
    root = Path(directory)
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def build_tiny_sd(*, in_channels: int = 4, sd2: bool = False, seed: int = 0, sample_size: int = 8):
    """The project's tiny random text encoder, tokenizer and VAE (videoshop_bench.baselines.text.models, one ``seed``) with an
    SD-layout tiny UNet (``sd_layout_unet_config``) from the same seed sequence."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from videoshop_bench.baselines.text.models import _seeded, text_encoder_config, tiny_clip_tokenizer, vae_config

    unet = _seeded(seed, lambda: UNet2DConditionModel(**sd_layout_unet_config(in_channels, 32, sd2, sample_size)))
    vae = _seeded(seed + 1, lambda: AutoencoderKL(**vae_config("tiny")))
    text = _seeded(seed + 2, lambda: CLIPTextModel(CLIPTextConfig(**text_encoder_config("tiny", sd2))))
    for m in (unet, vae, text):
        m.eval().requires_grad_(False)
    return dict(unet=unet, vae=vae, text_encoder=text, tokenizer=tiny_clip_tokenizer())


def clip_vision_config_dict(config) -> dict[str, Any]:
    """The CLIPVisionConfig fields transformers 4.x reads, from a transformers 5 config."""
    keys = ("hidden_size", "intermediate_size", "projection_dim", "num_hidden_layers", "num_attention_heads",
            "num_channels", "image_size", "patch_size", "hidden_act", "layer_norm_eps", "attention_dropout",
            "initializer_range", "initializer_factor")
    d = {k: getattr(config, k) for k in keys if hasattr(config, k)}
    return {"architectures": ["CLIPVisionModelWithProjection"], "model_type": "clip_vision_model",
            "torch_dtype": "float32", **d}


def clip_image_processor_dict(proc) -> dict[str, Any]:
    """A CLIPImageProcessor's preprocessor_config.json (plain values: the resample filter as its PIL integer)."""
    d = {k: (int(v) if k == "resample" else list(v) if isinstance(v, tuple) else v) for k, v in proc.to_dict().items()}
    return {**d, "image_processor_type": "CLIPImageProcessor"}


def write_i2vgen_layout(directory: str | os.PathLike, comps) -> dict[str, str]:
    """I2VGen-XL pipeline directory (unet/, vae/, text_encoder/, tokenizer/, image_encoder/, feature_extractor/,
    scheduler/) from ``videoshop_bench.baselines.text.i2vgen.I2VGenXLComponents``, in the layout diffusers 0.26 / transformers 4.38
    load (CLIP text keys under ``text_model.``; ``*.bin``; plain configs). Returns ``{relative path: sha256}``."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    unet_cfg = diffusers_config_dict(comps.unet, "I2VGenXLUNet", version="0.26.3")
    # diffusers 0.26 reads the head count from ``num_attention_heads`` only; later versions take it from
    # ``attention_head_dim`` and ignore ``num_attention_heads`` (the historical naming mix-up): write both equal
    unet_cfg["num_attention_heads"] = unet_cfg["attention_head_dim"]
    _write_json(root / "unet" / "config.json", unet_cfg)
    _save_state(root / "unet" / "diffusion_pytorch_model.bin", comps.unet.state_dict())
    _write_json(root / "vae" / "config.json", diffusers_config_dict(comps.vae, "AutoencoderKL", version="0.26.3"))
    _save_state(root / "vae" / "diffusion_pytorch_model.bin", comps.vae.state_dict())
    _write_json(root / "text_encoder" / "config.json", clip_text_config_dict(comps.text_encoder.config))
    _save_state(root / "text_encoder" / "pytorch_model.bin", legacy_clip_text_keys(comps.text_encoder.state_dict()))
    write_tokenizer(comps.tokenizer, root / "tokenizer")
    _write_json(root / "image_encoder" / "config.json", clip_vision_config_dict(comps.image_encoder.config))
    _save_state(root / "image_encoder" / "pytorch_model.bin", comps.image_encoder.state_dict())
    _write_json(root / "feature_extractor" / "preprocessor_config.json",
                clip_image_processor_dict(comps.feature_extractor))
    _write_json(root / "scheduler" / "scheduler_config.json",
                {"_class_name": "DDIMScheduler", "_diffusers_version": "0.26.3", **comps.scheduler_config})
    modules = {"unet": ["diffusers", "I2VGenXLUNet"], "vae": ["diffusers", "AutoencoderKL"],
               "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
               "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
               "feature_extractor": ["transformers", "CLIPImageProcessor"], "scheduler": ["diffusers", "DDIMScheduler"]}
    _write_json(root / "model_index.json", {"_class_name": "I2VGenXLPipeline", "_diffusers_version": "0.26.3", **modules})
    return checksums(root)
