"""ViCLIP (Wang et al., InternVid, ICLR 2024) and V2VBench's Video Text Alignment (``viclip_text``).

The model is written from reading OpenGVLab/InternVideo's ViCLIP (as vendored by wenhao728/awesome-diffusion-v2v,
third_party/viclip) so that ``ViClip-InternVid-10M-FLT.pth`` (``torch.load(path)['model']``, loaded strictly by the
original) loads with identical parameter names: ``vision_encoder`` = a CLIP ViT-L/14 whose patch embedding is a
(1, 14, 14) Conv3d, plus a learned temporal position embedding for 8 frames; all frames' patch tokens and frame 0's
class token attend jointly; the video embedding is the class token after ``ln_post`` times ``proj``;
``text_encoder`` = CLIP's causal text transformer with a 32-token context, EOT-token pooling; ``temp``.
Text is tokenised with CLIP's BPE (open_clip's tokenizer: the same ``bpe_simple_vocab_16e6`` and truncation rule).

Protocol (v2vbench/viclip_text_alignment.py): 8 frames (V2VBench's 24-frame videos read with stride 3), each
resized (short side 224, bicubic) and centre-cropped to 224 with CLIP's mean/std (``clip_image_transform``);
score = cos(text embedding, video embedding), raw cosine (the leaderboard's 0.19-0.27).
Videos of another length: frames[::T/8] when T is a multiple of 8 (24 -> V2VBench's stride 3), else 8 frames at
uniformly spaced indices (``viclip_frame_indices``); the original model accepts exactly 8 (or 1).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from functools import partial
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from .backbones import MissingWeightsError, SharedBackbone, _check_backbone, _seeded, shared
from .hf_backbones import load_strict
from .base import EditMetric, check_same_shape
from .cache import FeatureCache, fingerprint
from .v2vbench import V2VBENCH_SOURCE, edit_prompt

VICLIP_CHECKPOINT = "ViClip-InternVid-10M-FLT.pth"
REAL_CONFIG = {"width": 1024, "layers": 24, "heads": 16, "patch": 14, "resolution": 224, "embed_dim": 768,
               "frames": 8, "text_width": 768, "text_layers": 12, "text_heads": 12, "context": 32,
               "vocab": 49408}
TINY_CONFIG = {"width": 32, "layers": 2, "heads": 2, "patch": 8, "resolution": 32, "embed_dim": 16, "frames": 8,
               "text_width": 32, "text_layers": 2, "text_heads": 2, "context": 32, "vocab": 49408}
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-LN block: x + attn(ln_1(x)) (optional additive mask); x + mlp(ln_2(x)) with QuickGELU; (L, N, D)."""

    def __init__(self, d: int, heads: int, causal_len: Optional[int] = None) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads)
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d, 4 * d)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(4 * d, d))]))
        self.causal_len = causal_len

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = None
        if self.causal_len:
            mask = torch.full((x.shape[0], x.shape[0]), float("-inf"), device=x.device, dtype=x.dtype).triu(1)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, d: int, layers: int, heads: int, causal_len: Optional[int] = None) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(d, heads, causal_len) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.resblocks:
            x = blk(x)
        return x


class VideoVisionTransformer(nn.Module):
    """ViCLIP's vision encoder: (B, 3, T, H, W) -> (B, embed_dim)."""

    def __init__(self, resolution: int, patch: int, width: int, layers: int, heads: int, embed_dim: int,
                 frames: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(3, width, (1, patch, patch), (1, patch, patch), bias=False)
        self.class_embedding = nn.Parameter(width ** -0.5 * torch.randn(width))
        self.positional_embedding = nn.Parameter(width ** -0.5 * torch.randn((resolution // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.temporal_positional_embedding = nn.Parameter(torch.zeros(1, frames, width))
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(width ** -0.5 * torch.randn(width, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # (B, C, T, h, w)
        b, c, t = x.shape[:3]
        x = x.flatten(3).permute(0, 2, 3, 1)  # (B, T, N, C)
        x = x + self.positional_embedding[1:]
        temporal = self.temporal_positional_embedding  # (1, frames, C); one frame: their mean (as the original)
        x = x + (temporal.mean(1) if t == 1 else temporal[0][:, None, :])
        cls = (self.class_embedding + self.positional_embedding[0]).expand(b, 1, c)  # frame 0's class token
        # token order does not matter to the transformer (no position beyond the embeddings added above) and only the
        # class token is read out; the original orders the patch tokens (patch, frame)
        x = torch.cat([cls, x.reshape(b, -1, c)], dim=1)
        x = self.transformer(self.ln_pre(x).transpose(0, 1))
        return self.ln_post(x[0]) @ self.proj


class TextTransformer(nn.Module):
    """CLIP's text encoder as ViCLIP configures it: (B, context) token ids -> (B, embed_dim) at the EOT token."""

    def __init__(self, embed_dim: int, context: int, vocab: int, width: int, heads: int, layers: int) -> None:
        super().__init__()
        self.context_length = context
        self.transformer = Transformer(width, layers, heads, causal_len=context)
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(context, width))
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(width ** -0.5 * torch.randn(width, embed_dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(ids) + self.positional_embedding
        x = self.ln_final(self.transformer(x.transpose(0, 1)).transpose(0, 1))
        return x[torch.arange(x.shape[0]), ids.argmax(-1)] @ self.text_projection


class ViCLIP(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, patch: int, resolution: int, embed_dim: int,
                 frames: int, text_width: int, text_layers: int, text_heads: int, context: int, vocab: int) -> None:
        super().__init__()
        self.resolution, self.frames, self.context = resolution, frames, context
        self.vision_encoder = VideoVisionTransformer(resolution, patch, width, layers, heads, embed_dim, frames)
        self.text_encoder = TextTransformer(embed_dim, context, vocab, text_width, text_heads, text_layers)
        self.temp = nn.Parameter(torch.tensor(1 / 100.0))

    def tokenize(self, text: str) -> torch.Tensor:
        """CLIP BPE ids, ``<start> ... <end>`` zero-padded to the context; longer text truncated with <end> last."""
        from open_clip.tokenizer import tokenize

        return tokenize([text], context_length=self.context)

    def encode_text(self, text: str) -> torch.Tensor:
        return self.text_encoder(self.tokenize(text).to(self.temp.device))

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) preprocessed frames -> (B, embed_dim)."""
        return self.vision_encoder(frames.permute(0, 2, 1, 3, 4))


def _load_viclip_state(path: str, key: str) -> dict:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (pickled non-tensor objects: refused rather than executed)
        raise MissingWeightsError(
            f"{key}: {path} is not a weights-only checkpoint ({type(e).__name__}); save its 'model' state dict "
            f"with torch.save in a trusted session and point {key} at that file") from None
    return sd["model"] if isinstance(sd, dict) and "model" in sd else sd


def load_viclip(checkpoint: Optional[str] = None, backbone: str = "real", device: str | torch.device = "cpu",
                seed: int = 0, config_key: str = "metrics.viclip_text") -> ViCLIP:
    """ViCLIP in eval mode; real: the InternVid checkpoint, loaded strictly (as the original does)."""
    _check_backbone(backbone, config_key)
    dev = torch.device(device)

    def build() -> ViCLIP:
        if backbone in ("tiny", "random"):
            m = _seeded(seed, lambda: ViCLIP(**(TINY_CONFIG if backbone == "tiny" else REAL_CONFIG)))
        else:
            if not checkpoint or not os.path.isfile(checkpoint):
                raise MissingWeightsError(
                    f"{config_key}.checkpoint: {f'{checkpoint} is not a file' if checkpoint else 'not set'}; set "
                    f"{config_key}.checkpoint="
                    f"PATH to InternVid's {VICLIP_CHECKPOINT} (OpenGVLab/ViCLIP)")
            with torch.device("meta"):  # no random init: every parameter comes from the file
                m = ViCLIP(**REAL_CONFIG)
            load_strict(m, _load_viclip_state(checkpoint, f"{config_key}.checkpoint"), checkpoint,
                        f"{config_key}.checkpoint")
        return m.eval().to(dev)

    return shared(("viclip", checkpoint, backbone, str(dev), seed), build)


def viclip_frame_indices(t: int, n: int = 8) -> np.ndarray:
    """Frames ViCLIP reads: every (t/n)-th when n divides t (V2VBench: 24 frames, stride 3), else n uniformly
    spaced indices (rounded; repeated when t < n)."""
    if t % n == 0:
        return np.arange(0, t, t // n)
    return np.round(np.linspace(0, t - 1, n)).astype(int)


def clip_video_transform(frames: np.ndarray, size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, size, size): torchvision Resize(size, bicubic) + CenterCrop + CLIP mean/std."""
    from torchvision import transforms as T

    tf = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size), T.ToTensor(),
                    T.Normalize(CLIP_MEAN, CLIP_STD)])
    return torch.stack([tf(Image.fromarray(np.ascontiguousarray(f))) for f in frames])


class ViCLIPHandle(SharedBackbone):
    def modules(self):
        return [self.value]


class ViCLIPTextAlignment(EditMetric):
    """V2VBench Video Text Alignment: cosine of ViCLIP's video and text embeddings (raw cosine)."""

    names = ("viclip_text",)
    higher_is_better = True
    config_key = "metrics.viclip_text"

    def __init__(self, checkpoint: Optional[str] = None, backbone: str = "real", device: str = "auto", seed: int = 0,
                 prompt_fields=("target_prompt", "instruction"), cache_dir: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checkpoint, self.backbone, self.prompt_fields = checkpoint, backbone, tuple(prompt_fields)
        self.seed = seed
        self.net = ViCLIPHandle(partial(load_viclip, checkpoint, backbone, seed=seed, config_key=self.config_key),
                                device)
        self.cache = FeatureCache(cache_dir, "viclip")

    @torch.no_grad()
    def video_embed(self, video: np.ndarray) -> torch.Tensor:
        m = self.net.value
        frames = video[viclip_frame_indices(len(video), m.frames)]
        return m.encode_video(clip_video_transform(frames, m.resolution)[None].to(self.net.device))[0].float().cpu()

    @torch.no_grad()
    def text_embed(self, text: str) -> torch.Tensor:
        key = fingerprint("viclip_text", text, self.describe(), self.checkpoint, self.backbone, self.seed)
        return self.cache.get_or_compute(key, lambda: self.net.value.encode_text(text)[0].float().cpu())

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        text, _ = edit_prompt(sample, self.prompt_fields)
        if text is None:
            return {"viclip_text": None}
        t = torch.nn.functional.normalize(self.text_embed(text).double(), dim=-1)
        v = torch.nn.functional.normalize(self.video_embed(edited).double(), dim=-1)
        return {"viclip_text": float(t @ v)}

    def skip_reason(self, name, sample):
        return f"no edit prompt (none of {', '.join(self.prompt_fields)} is set)"

    def sample_notes(self, sample):
        _, field = edit_prompt(sample, self.prompt_fields)
        return [f"viclip_text: prompt from {field}"] if field and field != self.prompt_fields[0] else []

    def describe(self) -> str:
        if self.backbone == "tiny":
            return "tiny random ViCLIP (width 32, 2+2 layers)"
        if self.backbone == "random":
            return "ViCLIP ViT-L/14 real-size RANDOM weights"
        return f"ViCLIP ViT-L/14 {os.path.basename(str(self.checkpoint))}"

    def protocol(self):
        return {"viclip_text": f"{V2VBENCH_SOURCE} Video Text Alignment: {self.describe()}; 8 frames (frames[::T/8] "
                               f"when 8 divides T, else uniformly spaced), short side bicubic + centre crop, CLIP "
                               f"mean/std; prompt = first set of {', '.join(self.prompt_fields)}, CLIP BPE, 32 "
                               f"tokens; cos(text, video)"}
