"""V2VBench's Motion Alignment (``gmflow_motion``): minus the end-point error between GMFlow flows of source and edit.

Protocol (wenhao728/awesome-diffusion-v2v @ 20afc6f, v2vbench/motion_alignment.py):
  * GMFlow with the ``gmflow_sintel-0c07dcb3.pth`` checkpoint (num_scales 1, 128 feature channels, 6 Transformer
    blocks, ffn expansion 4, one head; called with attn_splits 2, global matching, global propagation);
  * forward flow of every consecutive pair (t-1 -> t) of the source video and of the edited video, at the videos'
    own resolution, pixels 0-255 (the model normalises with ImageNet mean/std);
  * score = -mean over pairs and pixels of ||flow_edit - flow_source||_2 (pixels; higher is better).
V2VBench's padder is built for 512x512 frames, which need none; other sizes are padded here (replicate, split evenly)
to multiples of 16 (8 x attn_splits, which GMFlow needs) and the flow cropped back, so EPE counts source pixels only.
Videos whose long side exceeds ``max_side`` are scored on a bilinear downscaled copy, the flow resized back and its
components rescaled to source pixels (bounds GMFlow's (H/8 * W/8)^2 global correlation). Source flow is cached.
"""

from __future__ import annotations

import math
import os
from functools import partial
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .backbones import MissingWeightsError, SharedBackbone, _check_backbone, _seeded, shared
from .hf_backbones import load_strict
from .base import EditMetric, check_same_shape
from .cache import FeatureCache, fingerprint
from .flow import end_point_error
from .gmflow_model import GMFlow

SINTEL_CHECKPOINT = "gmflow_sintel-0c07dcb3.pth"  # haofeixu/gmflow release (pretrained.zip), V2VBench's choice
REAL_CONFIG = {"feature_channels": 128, "num_transformer_layers": 6, "ffn_dim_expansion": 4, "upsample_factor": 8}
TINY_CONFIG = {"feature_channels": 32, "num_transformer_layers": 2, "ffn_dim_expansion": 2, "upsample_factor": 8,
               "encoder_dims": (16, 16, 32)}


def load_gmflow(checkpoint: Optional[str] = None, backbone: str = "real", device: str | torch.device = "cpu",
                seed: int = 0, config_key: str = "metrics.gmflow_motion") -> GMFlow:
    """GMFlow in eval mode. real: the official checkpoint file (``{'model': state_dict}`` or a bare state dict)."""
    _check_backbone(backbone, config_key)
    dev = torch.device(device)

    def build() -> GMFlow:
        if backbone == "tiny":
            m = _seeded(seed, lambda: GMFlow(**TINY_CONFIG))
        elif backbone == "random":
            m = _seeded(seed, lambda: GMFlow(**REAL_CONFIG))
        else:
            if not checkpoint or not os.path.isfile(checkpoint):
                raise MissingWeightsError(
                    f"{config_key}.checkpoint: {f'{checkpoint} is not a file' if checkpoint else 'not set'}; set "
                    f"{config_key}.checkpoint="
                    f"PATH to GMFlow's {SINTEL_CHECKPOINT} (haofeixu/gmflow pretrained.zip)")
            sd = torch.load(checkpoint, map_location="cpu", weights_only=True)
            with torch.device("meta"):  # no random init: every parameter comes from the file
                m = GMFlow(**REAL_CONFIG)
            load_strict(m, sd["model"] if isinstance(sd, dict) and "model" in sd else sd, checkpoint,
                        f"{config_key}.checkpoint")
        return m.eval().to(dev)

    return shared(("gmflow", checkpoint, backbone, str(dev), seed), build)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Replicate-pad (N, C, H, W) to multiples of ``multiple``, split evenly (RAFT/GMFlow 'sintel' mode)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    return (F.pad(x, pad, mode="replicate") if any(pad) else x), pad


class GMFlowBackbone(SharedBackbone):
    """Batched GMFlow forward flow of consecutive frames: (T, H, W, 3) uint8 -> (T-1, 2, H, W) in source pixels."""

    def __init__(self, checkpoint: Optional[str] = None, backbone: str = "real", device: str = "auto",
                 seed: int = 0, batch_size: int = 4, attn_splits: int = 2, max_side: Optional[int] = 1024,
                 config_key: str = "metrics.gmflow_motion") -> None:
        self.checkpoint, self.backbone, self.batch_size = checkpoint, backbone, batch_size
        self.attn_splits, self.max_side = attn_splits, max_side
        super().__init__(partial(load_gmflow, checkpoint, backbone, seed=seed, config_key=config_key), device)

    def modules(self):
        return [self.value]

    def describe(self) -> str:
        name = ("tiny random GMFlow (32 channels, 2 blocks)" if self.backbone == "tiny" else
                "GMFlow real-size RANDOM weights" if self.backbone == "random" else
                f"GMFlow {os.path.basename(str(self.checkpoint))}")
        size = f"long side <= {self.max_side} (downscaled copy, flow rescaled)" if self.max_side else "native size"
        return (f"{name}, attn_splits {self.attn_splits}, global matching and propagation, consecutive forward "
                f"pairs, {size}, replicate-padded to /{8 * self.attn_splits}")

    @torch.no_grad()
    def __call__(self, video: np.ndarray) -> torch.Tensor:
        t, h, w = video.shape[:3]
        x = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2).float()
        s = min(1.0, self.max_side / max(h, w)) if self.max_side else 1.0
        hh, ww = max(1, round(h * s)), max(1, round(w * s))
        if (hh, ww) != (h, w):
            x = F.interpolate(x, size=(hh, ww), mode="bilinear", align_corners=False, antialias=True)
        x, (l, r, top, bot) = pad_to_multiple(x, 8 * self.attn_splits)
        flows = []
        for i in range(0, t - 1, self.batch_size):
            j = min(i + self.batch_size, t - 1)
            a, b = x[i:j].to(self.device), x[i + 1:j + 1].to(self.device)
            flows.append(self.value(a, b, attn_splits=self.attn_splits).float().cpu())
        f = torch.cat(flows)[..., top:top + hh, l:l + ww]
        if (hh, ww) != (h, w):
            f = F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False)
            f = f * torch.tensor([w / ww, h / hh]).view(1, 2, 1, 1)
        return f


class MotionAlignment(EditMetric):
    """V2VBench Motion Alignment: -EPE (px) between GMFlow flows of the source and the edited video."""

    names = ("gmflow_motion",)
    higher_is_better = True
    config_key = "metrics.gmflow_motion"

    def __init__(self, checkpoint: Optional[str] = None, backbone: str = "real", device: str = "auto",
                 seed: int = 0, batch_size: int = 4, attn_splits: int = 2, max_side: Optional[int] = 1024,
                 cache_dir: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if attn_splits < 1:
            raise ValueError(f"{self.config_key}.attn_splits must be >= 1, got {attn_splits}")
        self.gmflow = GMFlowBackbone(checkpoint, backbone, device, seed, batch_size, attn_splits, max_side,
                                     self.config_key)
        self.cache = FeatureCache(cache_dir, "gmflow")
        self.seed = seed  # tiny / random weights differ by seed: part of the source-flow cache key

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        key = fingerprint("gmflow_source", sample.source_video, self.gmflow.describe(), self.gmflow.checkpoint,
                          self.seed)
        src = self.cache.get_or_compute(key, lambda: self.gmflow(sample.source_video))
        epe = end_point_error(src, self.gmflow(edited))
        return {"gmflow_motion": -epe if math.isfinite(epe) else float("nan")}

    def protocol(self):
        return {"gmflow_motion": f"V2VBench (wenhao728/awesome-diffusion-v2v @ 20afc6f) Motion Alignment: "
                                 f"-EPE (px) between {self.gmflow.describe()} of source and edited video, mean over "
                                 f"pairs and pixels"}
