"""Image-to-video models for Videoshop beyond SVD (diffusers classes): flow matching (Wan 2.1 I2V, Wan 2.2 I2V-A14B
and TI2V-5B, LTX-Video I2V) and VP + DDIM (CogVideoX-I2V).

Kinds, as for SVD (videoshop/models.py):
- ``pretrained``: ``from_pretrained`` of the model's diffusers repository (hub id or local ``path``); missing weights
  fail at start-up with one line (``videoshop.loading.resolve_pretrained``).
- ``tiny``: the same diffusers/transformers classes at tiny sizes, random weights from ``seed``, built in code
  (offline, a few seconds per edit on a CPU); an offline character-level ``T5TokenizerFast`` stands in for the
  T5/UMT5 tokenizer.
- ``random``: the full-size architecture with random weights, built directly on the target device (GPU timing
  without downloads; outputs are meaningless). ``full_size_parameter_counts`` builds it on the ``meta`` device.

The sampler is always the flow-matching Euler sampler (the one Videoshop inverts): a checkpoint that ships another
scheduler (Wan's diffusers repos ship UniPCMultistepScheduler with ``flow_shift``) is run with
FlowMatchEulerDiscreteScheduler at the same shift, so outputs differ from the official pipeline's default sampler.
"""

from __future__ import annotations

import contextlib
import string
from typing import Any, Optional

from . import _compat  # noqa: F401  (torchvision shim before diffusers/transformers)

import torch

from .families import built_family


# ----------------------------------------------------------------------------- offline tiny tokenizer
def tiny_t5_tokenizer():
    """A real ``T5TokenizerFast`` over a character-level vocabulary (pad 0, eos 1, unk 2), built offline, appending
    </s> like T5's; same call signature as Wan's and LTX's tokenizers."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for c in " " + string.ascii_lowercase + string.digits + string.punctuation:
        vocab.setdefault(c, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, extra_ids=0, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


# ----------------------------------------------------------------------------- architectures
def _t5_config(size: str, vocab_size: int) -> dict[str, Any]:
    if size == "tiny":
        return dict(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                    relative_attention_num_buckets=8)
    # T5 v1.1 XXL encoder (LTX-Video) / UMT5-XXL encoder (Wan 2.1): same widths, UMT5 has a 256k vocabulary
    return dict(vocab_size=vocab_size, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, relative_attention_max_distance=128)


def wan21_i2v_configs(size: str) -> dict[str, dict[str, Any]]:
    """Component configs of Wan 2.1 I2V: ``full`` = Wan-AI/Wan2.1-I2V-14B-480P-Diffusers; ``tiny`` = test sizes."""
    if size == "tiny":
        return dict(
            transformer=dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36,
                             out_channels=16, text_dim=32, freq_dim=32, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                             qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=8, added_kv_proj_dim=24),
            vae=dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]),
            text_encoder=_t5_config("tiny", 100),
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
        text_encoder=_t5_config("full", 256384),
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
            text_encoder=_t5_config("tiny", 100), scheduler=dict(shift=5.0), pipeline=dict(expand_timesteps=True))
    return dict(
        transformer=dict(patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48,
                         out_channels=48, text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30,
                         cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024),
        vae=dict(vae, base_dim=160, decoder_base_dim=256, dim_mult=[1, 2, 4, 4], num_res_blocks=2),
        text_encoder=_t5_config("full", 256384), scheduler=dict(shift=5.0), pipeline=dict(expand_timesteps=True))


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
            text_encoder=_t5_config("tiny", 100),
            scheduler=scheduler,
        )
    return dict(transformer=dict(), vae=dict(), text_encoder=_t5_config("full", 32128), scheduler=scheduler)


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
            text_encoder=_t5_config("tiny", 100),
            scheduler=scheduler,
        )
    return dict(
        transformer=dict(num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16,
                         time_embed_dim=512, text_embed_dim=4096, num_layers=42, sample_width=90, sample_height=60,
                         sample_frames=49, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=226,
                         use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
                         spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0, norm_eps=1e-5),
        vae=dict(scaling_factor=0.7),
        text_encoder=_t5_config("full", 32128),
        scheduler=scheduler,
    )


def build_flow_components(family: str, size: str, seed: int = 0, dtype: torch.dtype = torch.float32,
                          device: Optional[torch.device | str] = None) -> dict[str, Any]:
    """Randomly initialised components of ``family`` at ``size`` (tiny | full), from ``seed``, built on ``device``
    (None: the CPU; "meta": no memory, for parameter counts). ``family``: an entry of ``videoshop.families.FAMILIES``
    (its ``configs``, ``modules`` and ``scheduler``)."""
    fam = built_family(family)
    cfg = fam.resolve("configs")(size)
    torch.manual_seed(seed)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        comps = fam.resolve("modules")(cfg)
    for k, m in comps.items():
        if isinstance(m, torch.nn.Module):
            comps[k] = m.eval() if str(device) == "meta" or dtype == torch.float32 else m.to(dtype=dtype).eval()
    comps["scheduler"] = fam.resolve("scheduler")(**cfg["scheduler"])
    # the character-level tokenizer also for the full-size random model: prompts are padded to max_sequence_length,
    # so the text encoder's cost is the real one (its outputs are meaningless anyway)
    comps["tokenizer"] = tiny_t5_tokenizer()
    comps.update(cfg.get("pipeline", {}))  # Wan 2.2: boundary_ratio / expand_timesteps (pipeline constructor args)
    return comps


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


def cogvideox_modules(cfg: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    return dict(transformer=CogVideoXTransformer3DModel(**cfg["transformer"]),
                vae=AutoencoderKLCogVideoX(**cfg["vae"]), text_encoder=T5EncoderModel(T5Config(**cfg["text_encoder"])))


def ltx_modules(cfg: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    return dict(transformer=LTXVideoTransformer3DModel(**cfg["transformer"]), vae=AutoencoderKLLTXVideo(**cfg["vae"]),
                text_encoder=T5EncoderModel(T5Config(**cfg["text_encoder"])))


def full_size_parameter_counts(family: str) -> dict[str, int]:
    """Parameters of each full-size component, counted on the ``meta`` device (no memory, about a second)."""
    comps = build_flow_components(family, "full", device="meta")
    return {k: sum(p.numel() for p in m.parameters()) for k, m in comps.items() if isinstance(m, torch.nn.Module)}


# ----------------------------------------------------------------------------- pipelines
def pipeline_class(family: str):
    """The Videoshop pipeline class of ``family`` (its ``videoshop.families.FAMILIES`` entry)."""
    return built_family(family).resolve("pipeline")


def euler_scheduler_for(scheduler):
    """The single-step deterministic scheduler Videoshop inverts, from a checkpoint's scheduler: kept if it already is
    one (flow-matching Euler, CogVideoX DDIM); CogVideoX's DPM -> its DDIM with the same config; otherwise (Wan's
    UniPCMultistepScheduler) FlowMatchEulerDiscreteScheduler with the checkpoint's ``flow_shift``."""
    from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler, FlowMatchEulerDiscreteScheduler

    if isinstance(scheduler, (FlowMatchEulerDiscreteScheduler, CogVideoXDDIMScheduler)):
        return scheduler
    if isinstance(scheduler, CogVideoXDPMScheduler):  # same noise schedule, deterministic single-step DDIM
        return CogVideoXDDIMScheduler.from_config(scheduler.config)
    shift = float(scheduler.config.get("flow_shift", scheduler.config.get("shift", 1.0)) or 1.0)
    return FlowMatchEulerDiscreteScheduler(shift=shift, num_train_timesteps=scheduler.config.num_train_timesteps)


def load_flow_pipeline(model_cfg: dict[str, Any], dtype: torch.dtype, device: torch.device):
    """A Videoshop flow pipeline for a conf/model entry with ``family`` set (kind: pretrained | tiny | random)."""
    from .loading import resolve_pretrained

    family, kind = str(model_cfg["family"]), str(model_cfg["kind"])
    cls = pipeline_class(family)
    if kind == "pretrained":
        rev = None if model_cfg.get("path") else model_cfg.get("revision")  # model.revision pins the hub files
        source = resolve_pretrained(model_cfg.get("hub_id"), model_cfg.get("path"),
                                    bool(model_cfg.get("allow_download", True)), rev)
        pipe = cls.from_pretrained(source, torch_dtype=dtype, **({"revision": rev} if rev else {}))
        pipe.scheduler = euler_scheduler_for(pipe.scheduler)
    elif kind in ("tiny", "random"):
        on = None if kind == "tiny" else device
        comps = build_flow_components(family, "tiny" if kind == "tiny" else "full", int(model_cfg.get("seed", 0)),
                                      dtype, on)
        pipe = cls(**comps)
    else:
        raise ValueError(f"model.kind={kind!r}: expected 'pretrained', 'tiny' or 'random'")
    pipe.model_options = {k: model_cfg[k] for k in ("max_sequence_length", "frame_rate", "decode_timestep",
                                                    "guidance_scale_2")
                          if model_cfg.get(k) is not None}
    return pipe.to(device)


def build_flow_pipeline(model_cfg: dict[str, Any], device: str = "auto", runtime: Optional[dict[str, Any]] = None):
    """``videoshop.models.build_pipeline`` for a conf/model entry with a flow ``family``: device and dtype resolved as
    for SVD; the speed/memory options of conf/runtime/ are SVD-only, so any non-default one is refused (one line)."""
    from .loading import resolve_device, resolve_dtype
    from .speed import RuntimeOptions

    options, default = RuntimeOptions.from_dict(dict(runtime or {})), RuntimeOptions()
    changed = [k for k, v in options.to_dict().items() if k != "encode_upcast" and v != getattr(default, k)]
    if changed:
        raise ValueError(f"runtime.{changed[0]}={getattr(options, changed[0])!r} is not supported for "
                         f"model={model_cfg.get('name')} (flow models run with the default runtime options)")
    dev = resolve_device(device)
    dtype = resolve_dtype(str(model_cfg.get("dtype", "auto")), dev)
    return load_flow_pipeline(model_cfg, dtype, dev)
