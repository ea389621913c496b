"""Stable Diffusion-family components for the text-driven baselines: real weights by hub id or local path, tiny
random stand-ins of the same classes built in code (offline, for tests), full-size random weights (timing).

One switch chooses: ``weights`` = ``pretrained`` (hub id or ``...path=DIR``), ``tiny`` (small random stand-ins of
the same diffusers/transformers classes) or ``random`` (the full-size architecture, random weights). The method
configs default it to ``${model.kind}`` so that ``model=tiny`` turns every method tiny at once.

Missing real weights fail at construction (start-up) with one line naming the config key to set
(``MissingWeightsError`` from videoshop.models, which run.py prints without a traceback).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from videoshop import _compat  # noqa: F401  (torchvision shim before diffusers/transformers)

import torch

from videoshop.loading import MissingWeightsError, _repo_relative, downloads_possible
from videoshop.method import seeded as _seeded  # noqa: F401  (the text baselines' stand-ins use it)
from videoshop.tokenizers import tiny_clip_tokenizer  # noqa: F401  (re-exported; the first-frame editors use it too)

WEIGHTS = ("pretrained", "tiny", "random")


def check_weights(weights: str, key: str = "method.weights") -> str:
    if weights not in WEIGHTS:
        raise ValueError(f"{key}={weights!r}: expected one of {WEIGHTS}")
    return weights


# ------------------------------------------------------------------------------------------- resolving sources
def resolve_source(hub_id: Optional[str], path: Optional[str], key: str, allow_download: bool = True,
                   marker: str = "config.json", subfolder: Optional[str] = None) -> str:
    """A local directory or hub id that ``from_pretrained`` can load now, else one-line MissingWeightsError.

    ``path`` (config key ``key.path``... named by ``key``) must hold ``marker`` (optionally under ``subfolder``); a hub
    id must be cached, or downloadable (``allow_download`` and HF_HUB_OFFLINE unset and the hub reachable).
    """
    if path:
        path = _repo_relative(str(path))
        where = os.path.join(path, subfolder) if subfolder else path
        if not os.path.isfile(os.path.join(where, marker)):
            raise MissingWeightsError(f"{key}.path={path} holds no {os.path.join(subfolder or '', marker)}: "
                                      f"set {key}.path=DIR to a local copy of {hub_id or 'the model'}")
        return path
    if not hub_id:
        raise MissingWeightsError(f"{key}: no weights configured: set {key}.path=DIR or {key}.hub_id=ORG/NAME")
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(hub_id, local_files_only=True, allow_patterns=["*.json", "*.txt"])
        return hub_id
    except Exception:  # noqa: BLE001  (not cached)
        pass
    if not downloads_possible(allow_download):
        raise MissingWeightsError(f"{key}: {hub_id} is not cached and cannot be downloaded here: set {key}.path=DIR "
                                  f"(e.g. from `huggingface-cli download {hub_id}` on a connected machine)")
    return hub_id


# ------------------------------------------------------------------------------------------- architectures
def unet_config(size: str, in_channels: int = 4, sd2: bool = False) -> dict[str, Any]:
    """UNet2DConditionModel config: ``tiny`` (2 levels, 32/64 ch, cross-attn dim 32) or ``full`` (SD1.5 / SD2)."""
    if size == "tiny":
        return dict(block_out_channels=(32, 64), layers_per_block=1, in_channels=in_channels, out_channels=4,
                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                    attention_head_dim=8, norm_num_groups=32, sample_size=8, use_linear_projection=sd2)
    cfg = dict(in_channels=in_channels, out_channels=4, sample_size=64, cross_attention_dim=768,
               attention_head_dim=8)
    if sd2:
        cfg.update(cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)
    return cfg


def controlnet_config(size: str) -> dict[str, Any]:
    if size == "tiny":
        return dict(block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), cross_attention_dim=32,
                    attention_head_dim=8, norm_num_groups=32, conditioning_embedding_out_channels=(16, 16, 16, 16))
    return dict(cross_attention_dim=768, attention_head_dim=8)  # diffusers' defaults are SD1.5's ControlNet


def vae_config(size: str) -> dict[str, Any]:
    if size == "tiny":  # SD's 8x downsampling (4 levels), 32 channels
        return dict(block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                    up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, latent_channels=4,
                    norm_num_groups=32, scaling_factor=0.18215)
    return dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, sample_size=512,
                scaling_factor=0.18215)


def text_encoder_config(size: str, sd2: bool = False) -> dict[str, Any]:
    if size == "tiny":
        return dict(vocab_size=514, hidden_size=32, intermediate_size=37, num_attention_heads=4,
                    num_hidden_layers=2, max_position_embeddings=77, bos_token_id=512, eos_token_id=513,
                    pad_token_id=513)
    if sd2:  # OpenCLIP ViT-H/14 text tower as shipped in SD2 (23 layers, 1024 wide)
        return dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
                    num_hidden_layers=23, max_position_embeddings=77, hidden_act="gelu", projection_dim=512)
    return dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                num_hidden_layers=12, max_position_embeddings=77, hidden_act="quick_gelu")


def _tiny_dpt():
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    cfg = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37, image_size=32,
                    patch_size=8, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[16, 16, 32, 32],
                    fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5], head_in_index=-1)
    proc = DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False, do_pad=False)
    return DPTForDepthEstimation(cfg), proc


def _tiny_zoe():
    from transformers import BeitConfig, ZoeDepthConfig, ZoeDepthForDepthEstimation, ZoeDepthImageProcessor

    backbone = BeitConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                          intermediate_size=37, out_indices=[1, 2, 3, 4], use_relative_position_bias=True,
                          reshape_hidden_states=False)
    cfg = ZoeDepthConfig(backbone_config=backbone, backbone_hidden_size=32, neck_hidden_sizes=[16, 16, 32, 32],
                         fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5], bottleneck_features=16,
                         num_relative_features=8, bin_embedding_dim=16, n_bins=8, num_attractors=[4, 4, 2, 1],
                         readout_type="project")
    proc = ZoeDepthImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False, do_pad=False,
                                  ensure_multiple_of=8)
    return ZoeDepthForDepthEstimation(cfg), proc


def _full_dpt_hybrid():
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    cfg = DPTConfig(is_hybrid=True, hidden_size=768, num_hidden_layers=12, image_size=384, backbone_out_indices=[2, 5, 8, 11],
                    neck_hidden_sizes=[256, 512, 768, 768], readout_type="project", embedding_type="vit_hybrid",
                    backbone_featmap_shape=[1, 1024, 24, 24])
    return DPTForDepthEstimation(cfg), DPTImageProcessor(size={"height": 384, "width": 384}, keep_aspect_ratio=False)


def _full_zoe():
    from transformers import ZoeDepthConfig, ZoeDepthForDepthEstimation, ZoeDepthImageProcessor

    return ZoeDepthForDepthEstimation(ZoeDepthConfig()), ZoeDepthImageProcessor()


# ------------------------------------------------------------------------------------------- the bundle
@dataclass
class SDComponents:
    """What an SD-family text-driven editor needs. ``depth_estimator``/``depth_processor`` and ``controlnet``
    are None where the method does not use them."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    controlnet: Any = None
    depth_estimator: Any = None
    depth_processor: Any = None
    weights: str = "tiny"

    def modules(self) -> list[torch.nn.Module]:
        return [m for m in (self.unet, self.vae, self.text_encoder, self.controlnet, self.depth_estimator) if m is not None]

    def to(self, device, dtype: Optional[torch.dtype] = None) -> "SDComponents":
        for m in self.modules():
            m.to(device)
            if dtype is not None and dtype != torch.float32 and m is not self.depth_estimator:
                m.to(dtype)
        return self


def build_random_sd(size: str, *, in_channels: int = 4, sd2: bool = False, controlnet: bool = False,
                    depth: Optional[str] = None, seed: int = 0) -> SDComponents:
    """Random-weight SD components of the real classes: ``size`` tiny (tests) or full (timing), from ``seed``.

    ``depth``: None, ``dpt`` (DPTForDepthEstimation, SD2-depth's estimator) or ``zoe`` (ZoeDepthForDepthEstimation).
    """
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = _seeded(seed, lambda: UNet2DConditionModel(**unet_config(size, in_channels, sd2)))
    vae = _seeded(seed + 1, lambda: AutoencoderKL(**vae_config(size)))
    text = _seeded(seed + 2, lambda: CLIPTextModel(CLIPTextConfig(**text_encoder_config(size, sd2))))
    tok = tiny_clip_tokenizer()  # also for full size: timing needs no real vocabulary (its ids are < 49408)
    cn = _seeded(seed + 3, lambda: ControlNetModel(**controlnet_config(size))) if controlnet else None
    est = proc = None
    if depth is not None:
        builder = {("tiny", "dpt"): _tiny_dpt, ("tiny", "zoe"): _tiny_zoe, ("full", "dpt"): _full_dpt_hybrid,
                   ("full", "zoe"): _full_zoe}[(size, depth)]
        est, proc = _seeded(seed + 4, builder)
    comps = SDComponents(unet, vae, text, tok, cn, est, proc, weights="tiny" if size == "tiny" else "random")
    for m in comps.modules():
        m.eval().requires_grad_(False)
    return comps


def load_pretrained_sd(source: str, *, key: str, dtype: torch.dtype = torch.float32, variant: Optional[str] = None,
                       controlnet_source: Optional[str] = None, depth_source: Optional[str] = None,
                       depth_subfolder: Optional[str] = None) -> SDComponents:
    """``from_pretrained`` of an SD checkpoint directory/hub id (unet, vae, text_encoder, tokenizer), plus an
    optional ControlNet and depth estimator (``AutoModelForDepthEstimation``: DPT for SD2-depth, ZoeDepth...)."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation, CLIPTextModel, CLIPTokenizer

    kw = dict(torch_dtype=dtype, variant=variant)
    try:
        comps = SDComponents(
            unet=UNet2DConditionModel.from_pretrained(source, subfolder="unet", **kw),
            vae=AutoencoderKL.from_pretrained(source, subfolder="vae", **kw),
            text_encoder=CLIPTextModel.from_pretrained(source, subfolder="text_encoder", dtype=dtype),
            tokenizer=CLIPTokenizer.from_pretrained(source, subfolder="tokenizer"), weights="pretrained")
        if controlnet_source:
            comps.controlnet = ControlNetModel.from_pretrained(controlnet_source, torch_dtype=dtype)
        if depth_source:
            sub = dict(subfolder=depth_subfolder) if depth_subfolder else {}
            comps.depth_estimator = AutoModelForDepthEstimation.from_pretrained(depth_source, **sub)
            proc_sub = dict(subfolder="feature_extractor") if depth_subfolder else {}
            comps.depth_processor = AutoImageProcessor.from_pretrained(depth_source, **proc_sub)
    except (OSError, ValueError) as e:
        raise weights_load_error(key, source, e) from None
    for m in comps.modules():
        m.eval().requires_grad_(False)
    return comps


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' = fp16 on CUDA, fp32 elsewhere; else float32|float16|bfloat16."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]


def weights_load_error(key: str, source: str, error: BaseException) -> MissingWeightsError:
    """The one-line error for weights that are there but do not load (wrong checkpoint, incomplete download)."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return MissingWeightsError(f"{key}: could not load weights from {source} ({type(error).__name__}: {first})")


def load_sd_family(weights: str, *, base: dict, controlnet: Optional[dict] = None, depth: Optional[dict] = None,
                   in_channels: int = 4, sd2: bool = False, depth_kind: Optional[str] = None,
                   allow_download: bool = True, dtype: torch.dtype = torch.float32, seed: int = 0,
                   key: str = "method") -> SDComponents:
    """The components a method config describes, by ``weights`` (pretrained | tiny | random).

    ``base``/``controlnet``/``depth``: ``{hub_id, path}`` mappings (config keys ``<key>.base``, ``<key>.controlnet``,
    ``<key>.depth``); ``depth`` may set ``subfolder`` (SD2-depth ships its DPT in ``depth_estimator/``). Missing
    real weights raise one-line MissingWeightsError naming the key, before anything heavy loads.
    """
    check_weights(weights, f"{key}.weights")
    if weights in ("tiny", "random"):
        comps = build_random_sd("tiny" if weights == "tiny" else "full", in_channels=in_channels, sd2=sd2,
                                controlnet=controlnet is not None, depth=depth_kind if depth is not None else None,
                                seed=seed)
        return comps
    src = resolve_source(base.get("hub_id"), base.get("path"), f"{key}.base", allow_download, "model_index.json")
    cn_src = resolve_source(controlnet.get("hub_id"), controlnet.get("path"), f"{key}.controlnet", allow_download) \
        if controlnet is not None else None
    depth_src = None
    if depth is not None:
        sub = depth.get("subfolder")
        depth_src = resolve_source(depth.get("hub_id"), depth.get("path"), f"{key}.depth", allow_download,
                                   "config.json", subfolder=sub)
    return load_pretrained_sd(src, key=f"{key}.base", dtype=dtype, variant=base.get("variant"),
                              controlnet_source=cn_src, depth_source=depth_src,
                              depth_subfolder=(depth or {}).get("subfolder"))
