"""Flow and Flow+: end-point error between RAFT optical flow of the source and of the edited video.

Protocol (shared/paper/metric_protocols.md): forward flow between consecutive frames (t -> t+1, T-1 pairs) of
the source and of the edited video with torchvision RAFT (default raft_large, C_T_SKHT_V2 weights, 12 updates,
frames mapped to [-1, 1] as ``weights.transforms()`` does); EPE = per-pixel Euclidean distance between the two
flow fields (princeton-vl/RAFT evaluate.py), averaged over pixels and pairs, in SOURCE pixels.
RAFT needs H, W divisible by 8 (and >= 128 for raft_large's 4-level pyramid): frames smaller than ``min_size`` on
the short side are resized up (bilinear) to at least ``min_size``, H and W are rounded up to multiples of 8, and
the flow is resized back to the source size with its u/v components rescaled by W/W' and H/H', so EPE is always in
source pixels. The working size is bounded: a video whose long side exceeds ``max_side`` (1024 = SVD's width, so the
paper's videos are unchanged) is scored on a downscaled copy (long side ``max_side``, flow rescaled to source
pixels as above), and pairs are batched so that RAFT's all-pairs correlation volume stays under 2 GiB (a
1080x1920 video at full size once asked for 29 GB). Flow+ averages only over pixels outside the tracked edit region of both frames of the pair
(~(M_t | M_{t+1})). Source flow is computed once per sample and cached.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .backbones import SharedBackbone, load_raft
from .base import EditMetric, check_same_shape
from .cache import FeatureCache, fingerprint
from .clip import _tracker


def end_point_error(flow_a: torch.Tensor, flow_b: torch.Tensor, valid: Optional[torch.Tensor] = None) -> float:
    """Mean over pixels (where ``valid``) of ||flow_a - flow_b||_2; flows (N, 2, H, W), valid (N, H, W) bool."""
    d = torch.linalg.vector_norm(flow_a.double() - flow_b.double(), dim=1)
    if valid is None:
        return float(d.mean())
    if not bool(valid.any()):
        return float("nan")
    return float(d[valid].mean())


MAX_CORR_BYTES = 2 ** 31  # RAFT's correlation volume per batch (float32, 4-level pyramid)


def working_size(h: int, w: int, min_size: int, max_side: Optional[int] = None) -> tuple[int, int]:
    """RAFT's input size: short side >= ``min_size`` (upscaled), long side <= ``max_side`` (a downscaled copy;
    it wins for extreme aspect ratios), both rounded up to multiples of 8."""
    s = max(1.0, min_size / min(h, w))
    if max_side:
        s = min(s, max_side / max(h, w))
    return int(max(8, math.ceil(h * s / 8) * 8)), int(max(8, math.ceil(w * s / 8) * 8))


def pairs_per_batch(hh: int, ww: int, batch_size: int, budget: int = MAX_CORR_BYTES) -> int:
    """Frame pairs per RAFT call so that the all-pairs correlation volume, (H/8 * W/8)^2 float32 per pair plus its
    pyramid (about 4/3), stays under ``budget`` bytes; at least 1, at most ``batch_size``."""
    per_pair = (hh // 8 * (ww // 8)) ** 2 * 4 * 4 / 3
    return max(1, min(int(batch_size), int(budget // per_pair)))


class RaftFlow(SharedBackbone):
    """Batched RAFT forward flow of consecutive frames: (T, H, W, 3) uint8 -> (T-1, 2, H, W) float32 in source px.

    Computes on ``self.device``; ``to(device)`` switches to the shared RAFT for that device (``SharedBackbone``).
    """

    def __init__(self, model: str = "raft_large", checkpoint: Optional[str] = None, backbone: str = "real",
                 num_flow_updates: int = 12, min_size: int = 128, batch_size: int = 8, device: str = "auto",
                 seed: int = 0, config_key: str = "metrics.flow", max_side: Optional[int] = 1024) -> None:
        self.model_name, self.checkpoint, self.backbone, self.max_side = model, checkpoint, backbone, max_side
        self.num_flow_updates, self.min_size, self.batch_size = num_flow_updates, min_size, batch_size
        super().__init__(partial(load_raft, model, checkpoint, backbone, seed=seed, config_key=config_key), device)

    @property
    def model(self):
        return self.value

    @model.setter
    def model(self, module) -> None:  # a stand-in for this handle only (tests); the shared RAFT is untouched
        self.value = module

    def describe(self) -> str:
        name = "tiny random RAFT (torchvision RAFT classes)" if self.backbone == "tiny" else (
            f"torchvision {self.model_name} RANDOM weights" if self.backbone == "random" else
            f"torchvision {self.model_name}/{self.checkpoint or 'C_T_SKHT_V2'}")
        return (f"{name}, {self.num_flow_updates} updates, consecutive forward pairs, short side >= {self.min_size}"
                f"{f', long side <= {self.max_side} (downscaled copy)' if self.max_side else ''}"
                f" and /8 by bilinear resize, flow rescaled to source px; pairs batched under 2 GiB of correlation")

    @torch.no_grad()
    def __call__(self, video: np.ndarray) -> torch.Tensor:
        t, h, w = video.shape[:3]
        x = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2).float().div(255.0).mul(2.0).sub(1.0)
        hh, ww = working_size(h, w, self.min_size, self.max_side)
        if (hh, ww) != (h, w):
            x = F.interpolate(x, size=(hh, ww), mode="bilinear", align_corners=False, antialias=hh < h)
        flows = []
        step = pairs_per_batch(hh, ww, self.batch_size)
        for i in range(0, t - 1, step):
            j = min(i + step, t - 1)
            a, b = x[i:j].to(self.device), x[i + 1:j + 1].to(self.device)
            flows.append(self.model(a, b, num_flow_updates=self.num_flow_updates)[-1].float().cpu())
        f = torch.cat(flows)
        if (hh, ww) != (h, w):
            f = F.interpolate(f, size=(h, w), mode="bilinear", align_corners=False)
            f = f * torch.tensor([w / ww, h / hh]).view(1, 2, 1, 1)
        return f


class FlowEPE(EditMetric):
    """Flow and Flow+ (pixels, lower is better)."""

    names = ("flow", "flow_plus")
    min_frames = 2  # pairs of consecutive frames
    higher_is_better = False
    config_key = "metrics.flow"

    def __init__(self, model: str = "raft_large", checkpoint: Optional[str] = None, backbone: str = "real",
                 num_flow_updates: int = 12, min_size: int = 128, batch_size: int = 8, plus: bool = True,
                 tracking: Optional[dict] = None, device: str = "auto", seed: int = 0,
                 cache_dir: Optional[str] = None, max_side: Optional[int] = 1024, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.raft = RaftFlow(model, checkpoint, backbone, num_flow_updates, min_size, batch_size, device, seed,
                             self.config_key, max_side)
        self.cache = FeatureCache(cache_dir, "flow")
        self.plus = plus
        self.tracker = _tracker(tracking, device, cache_dir) if plus else None

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        key = fingerprint(sample.source_video, self.raft.describe(), self.raft.checkpoint)
        src = self.cache.get_or_compute(key, lambda: self.raft(sample.source_video))
        ed = self.raft(edited)
        out: dict[str, Optional[float]] = {"flow": end_point_error(src, ed), "flow_plus": None}
        if self.plus:
            m = torch.from_numpy(self.tracker.track(sample, edited))
            valid = ~(m[:-1] | m[1:])
            out["flow_plus"] = end_point_error(src, ed, valid) if bool(valid.any()) else None  # skipped, not NaN
        return out

    def protocol(self):
        p = {"flow": f"EPE (px) between {self.raft.describe()}"}
        if self.plus:
            p["flow_plus"] = f"EPE outside tracked edit region of frames t and t+1; tracker: {self.tracker.protocol()}"
        return p
