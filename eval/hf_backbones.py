"""transformers backbones for V2VBench's metrics: CLIP (ViT-L/14, PickScore), DINOv2, the LAION aesthetic predictor.

V2VBench (wenhao728/awesome-diffusion-v2v, v2vbench/*.py) loads every frame model with transformers'
``from_pretrained`` and its own processor; this module does the same, with the project's three backbones:
  ``real``   ``from_pretrained(hub id or local directory, revision=...)``; weights missing offline raise
             ``MissingWeightsError`` with one line naming the config key;
  ``random`` the real-size architecture (its config: ``REAL_CONFIGS``) with seeded random weights, for timing;
  ``tiny``   the same classes with tiny configs and seeded random weights (offline tests, CI). The tiny CLIP reads
             text with the REAL CLIP tokenizer, built offline from open_clip's copy of CLIP's BPE merges.
Loaded models are shared per (configuration, device) like eval/backbones.py, and keep an in-memory cache of the
features of the last videos they embedded, so the three ViT-L/14 metrics (consistency, text alignment) and repeated
calls on one edited video run the backbone once.
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache
from typing import Any, Callable, Optional

from videoshop import _compat  # noqa: F401  (torchvision shim before transformers)

import torch
import torch.nn as nn

from .backbones import MissingWeightsError, _check_backbone, _seeded, shared
from .cache import FeatureCache

CLIP_L14 = "openai/clip-vit-large-patch14"
DINOV2_BASE = "facebook/dinov2-base"
PICKSCORE_MODEL = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
AESTHETIC_V2_LINEAR = "shunk031/aesthetics-predictor-v2-sac-logos-ava1-l14-linearMSE"

# Real-size architectures for ``backbone=random`` (the configs of the hub checkpoints above).
REAL_CONFIGS: dict[str, dict[str, Any]] = {
    "clip_l14": {"projection_dim": 768,
                 "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
                                 "num_hidden_layers": 12, "projection_dim": 768},
                 "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                                   "num_hidden_layers": 24, "patch_size": 14, "image_size": 224,
                                   "projection_dim": 768}},
    "clip_h14": {"projection_dim": 1024,
                 "text_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                                 "num_hidden_layers": 24, "projection_dim": 1024, "hidden_act": "gelu"},
                 "vision_config": {"hidden_size": 1280, "intermediate_size": 5120, "num_attention_heads": 16,
                                   "num_hidden_layers": 32, "patch_size": 14, "image_size": 224,
                                   "projection_dim": 1024, "hidden_act": "gelu"}},
    "dinov2_base": {"hidden_size": 768, "num_attention_heads": 12, "num_hidden_layers": 12, "patch_size": 14,
                    "image_size": 518, "mlp_ratio": 4, "layerscale_value": 1.0},
}
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "clip": {"projection_dim": 32,
             "text_config": {"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64,
                             "num_attention_heads": 2, "num_hidden_layers": 2, "max_position_embeddings": 77},
             "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                               "num_hidden_layers": 2, "image_size": 32, "patch_size": 8}},
    "dinov2": {"hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 2, "patch_size": 8,
               "image_size": 32, "mlp_ratio": 2},
}
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


# ----------------------------------------------------------------------------------------------- tokenizer
@lru_cache(maxsize=1)
def clip_bpe_vocab() -> tuple[dict[str, int], list[str]]:
    """CLIP's byte-level BPE vocabulary and merges (49,408 tokens), read from open_clip's ``bpe_simple_vocab_16e6``
    (the file openai/CLIP ships), in CLIP's token order: 256 byte symbols, the same with ``</w>``, one token per
    merge (48,894), then ``<|startoftext|>``, ``<|endoftext|>``."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe()) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def offline_clip_tokenizer():
    """A transformers ``CLIPTokenizer`` with CLIP's real vocabulary, built without the hub (tiny stand-ins)."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_bpe_vocab()
    return CLIPTokenizer(vocab=dict(vocab), merges=[tuple(m.split()) for m in merges], model_max_length=77)


# ----------------------------------------------------------------------------------------------- loading
def from_hub(cls: Any, ident: str, revision: Optional[str], key: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(ident, revision=revision)`` (a hub id or a local directory), or one line naming ``key``."""
    if (os.path.isabs(ident) or ident.startswith((".", "~"))) and not os.path.isdir(os.path.expanduser(ident)):
        raise MissingWeightsError(f"{key}: {ident} is not a directory; set {key}=PATH to a local copy of the model")
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        return cls.from_pretrained(ident, revision=revision, local_files_only=offline, **kwargs)
    except Exception as e:  # noqa: BLE001  (not cached / unreachable / malformed)
        raise MissingWeightsError(
            f"{key}: {ident}{f' @ {revision}' if revision else ''} not found offline; set {key}=PATH (a local "
            f"directory from `huggingface-cli download {ident}`) ({type(e).__name__})") from None


def load_strict(model: nn.Module, state: dict, path: str, key: str) -> None:
    """``model.load_state_dict(state)`` (strict), or one line naming ``key``: the first missing, unexpected or
    mis-shaped parameter (a checkpoint of another model or size). A model built on ``meta`` takes the file's tensors
    (``assign``)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        what = (f"{len(missing)} missing (e.g. {missing[0]})" if missing else
                f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else
                f"{len(shapes)} of another shape (e.g. {shapes[0]}: {tuple(state[shapes[0]].shape)} vs "
                f"{tuple(own[shapes[0]].shape)})")
        raise MissingWeightsError(f"{key}: {path} does not fit {type(model).__name__}: {what} parameters")
    model.load_state_dict(state, assign=any(p.is_meta for p in model.parameters()))


def commit_of(model: nn.Module) -> Optional[str]:
    """The hub commit a model was loaded from (transformers records it in the config), for ``protocol()``."""
    return getattr(getattr(model, "config", None), "_commit_hash", None)


class FeatureMemo:
    """A shared model plus an in-memory LRU of its features, keyed by content hash (videoshop_bench.eval.cache.fingerprint)."""

    def __init__(self, parts: dict[str, Any], items: int = 16) -> None:
        self.parts = parts
        self.memo = FeatureCache(None, "memo", memory_items=items)

    def __getitem__(self, name: str) -> Any:
        return self.parts[name]

    def modules(self) -> list[nn.Module]:
        return [v for v in self.parts.values() if isinstance(v, nn.Module)]


def _tiny_clip_images(size: int):
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def load_hf_clip(model: str = CLIP_L14, processor: Optional[str] = None, revision: Optional[str] = None,
                 backbone: str = "real", device: str | torch.device = "cpu", seed: int = 0,
                 config_key: str = "metrics.clip_text", architecture: str = "clip_l14") -> FeatureMemo:
    """transformers ``CLIPModel``, the PIL image processor and the tokenizer of ``processor`` (another repository's, as
    PickScore reads LAION's ViT-H/14 processor; default: the model's own). The PIL processors are those V2VBench
    ran (transformers 4.x's default; 5.x defaults to torchvision ones). ``architecture`` names the real-size config
    for ``backbone=random``."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    _check_backbone(backbone, config_key)
    dev = torch.device(device)

    def build() -> FeatureMemo:
        if backbone == "real":
            m = from_hub(CLIPModel, model, revision, f"{config_key}.model")
            src, rev = (processor, None) if processor else (model, revision)
            key = f"{config_key}.processor" if processor else f"{config_key}.model"
            images, tok = from_hub(CLIPImageProcessorPil, src, rev, key), from_hub(CLIPTokenizer, src, rev, key)
        else:
            cfg = TINY_CONFIGS["clip"] if backbone == "tiny" else REAL_CONFIGS[architecture]
            m = _seeded(seed, lambda: CLIPModel(CLIPConfig(**cfg)))
            images, tok = _tiny_clip_images(cfg["vision_config"]["image_size"]), offline_clip_tokenizer()
        return FeatureMemo({"model": m.eval().to(dev), "images": images, "tokenizer": tok})

    return shared(("hf_clip", model, processor, revision, backbone, architecture, str(dev), seed), build)


def load_dinov2(model: str = DINOV2_BASE, revision: Optional[str] = None, backbone: str = "real",
                device: str | torch.device = "cpu", seed: int = 0,
                config_key: str = "metrics.dino_consistency") -> FeatureMemo:
    """transformers ``Dinov2Model`` + its ``BitImageProcessor`` (dinov2-base: short side 256 bicubic, centre crop
    224, ImageNet mean/std); tiny: short side 36, crop 32."""
    from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model

    _check_backbone(backbone, config_key)
    dev = torch.device(device)

    def build() -> FeatureMemo:
        if backbone == "real":
            m = from_hub(Dinov2Model, model, revision, f"{config_key}.model")
            proc = from_hub(BitImageProcessorPil, model, revision, f"{config_key}.model")
        else:
            cfg = TINY_CONFIGS["dinov2"] if backbone == "tiny" else REAL_CONFIGS["dinov2_base"]
            m = _seeded(seed, lambda: Dinov2Model(Dinov2Config(**cfg)))
            crop = 32 if backbone == "tiny" else 224
            short = 36 if backbone == "tiny" else 256
            proc = BitImageProcessorPil(size={"shortest_edge": short}, crop_size={"height": crop, "width": crop},
                                     image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
        return FeatureMemo({"model": m.eval().to(dev), "images": proc})

    return shared(("dinov2", model, revision, backbone, str(dev), seed), build)


def _aesthetic_class():
    from transformers import CLIPVisionModelWithProjection

    class LaionAestheticPredictor(CLIPVisionModelWithProjection):
        """CLIP vision tower + projection, then LAION's improved aesthetic predictor head (linearMSE): an MLP
        768 -> 1024 -> 128 -> 64 -> 16 -> 1 without activations (dropouts idle in eval) on the L2-normalised image
        embedding (christophschuhmann/improved-aesthetic-predictor). Parameter names follow the hub checkpoint
        ``shunk031/aesthetics-predictor-v2-*`` (``vision_model.*``, ``visual_projection.*``, ``layers.{0,2,4,6,7}.*``)."""

        def __init__(self, config) -> None:
            super().__init__(config)
            d = config.projection_dim
            self.layers = nn.Sequential(nn.Linear(d, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
                                        nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1))
            self.post_init()

        def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
            """L2-normalised projected CLIP image embeddings (N, projection_dim)."""
            e = super().forward(pixel_values=pixel_values).image_embeds
            return e / e.norm(dim=-1, keepdim=True)

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            """Aesthetic score per image (N,), LAION's 1-10 scale."""
            return self.layers(self.embed(pixel_values)).squeeze(-1)

    return LaionAestheticPredictor


def load_aesthetic(model: str = AESTHETIC_V2_LINEAR, revision: Optional[str] = None, backbone: str = "real",
                   device: str | torch.device = "cpu", seed: int = 0,
                   config_key: str = "metrics.aesthetic") -> FeatureMemo:
    """The LAION aesthetic predictor (``LaionAestheticPredictor``) and the repository's PIL image processor."""
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig

    _check_backbone(backbone, config_key)
    dev = torch.device(device)
    cls = _aesthetic_class()

    def build() -> FeatureMemo:
        if backbone == "real":
            m = from_hub(cls, model, revision, f"{config_key}.model")
            proc = from_hub(CLIPImageProcessorPil, model, revision, f"{config_key}.model")
        else:
            cfg = dict((TINY_CONFIGS["clip"] if backbone == "tiny" else REAL_CONFIGS["clip_l14"])["vision_config"])
            cfg.setdefault("projection_dim", 32)
            m = _seeded(seed, lambda: cls(CLIPVisionConfig(**cfg)))
            proc = _tiny_clip_images(cfg["image_size"])
        return FeatureMemo({"model": m.eval().to(dev), "images": proc})

    return shared(("aesthetic", model, revision, backbone, str(dev), seed), build)


LOADERS: dict[str, Callable[..., FeatureMemo]] = {"clip": load_hf_clip, "dinov2": load_dinov2,
                                                 "aesthetic": load_aesthetic}
