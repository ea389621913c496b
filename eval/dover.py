"""V2VBench's Video Quality (``dover``): DOVER's fused technical + aesthetic score of the edited video (0-1).

Protocol (v2vbench/dover_score.py, dover_utils.py, third_party/dover/{config.yaml,dataset.py} @ 20afc6f):
  * technical view: frame indices from ``UnifiedFrameSampler(32, 3, 2)``: 3 segments starting at T//3 * i, 32
    frames each at interval 2, wrapped modulo T (a 24-frame video is read round and round: 96 indices); each
    32-frame chunk cut into 7x7 fragments of 32x32 px (one per grid cell, at a random offset inside its cell, the
    same offset for the 32 frames of a chunk), after a bilinear upscale when the short side is under 224; 3 clips of
    32 x 224 x 224;
  * aesthetic view: ``UnifiedFrameSampler(1, 32, 2)``: 32 indices at T//32 * i (every one is frame 0 when T < 32:
    the aesthetic branch then sees the first frame 32 times, as it does on V2VBench's 24-frame videos); each frame
    resized to 224 x 224 (bilinear, no antialias: torchvision 0.14's tensor Resize under V2VBench's torch~=1.13);
  * both views normalised with mean (123.675, 116.28, 103.53) and std (58.395, 57.12, 57.375) on 0-255;
  * each head's score map averaged to one number; fused as V2VBench's ``fuse_results``:
    sigmoid(0.6104 * (t - 0.1107) / 0.07355 + 0.3896 * (a + 0.08285) / 0.03774).
The fragment offsets are random in the original (unseeded); here they come from a generator seeded with ``seed``
and the video's content, so a rerun gives the same number.
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
from .base import EditMetric, check_same_shape
from .cache import fingerprint
from .dover_model import DOVER
from .hf_backbones import load_strict
from .v2vbench import V2VBENCH_SOURCE

DOVER_CHECKPOINT = "DOVER.pth"  # huggingface.co/teowu/DOVER, V2VBench's doc/install.sh
MEAN = torch.tensor([123.675, 116.28, 103.53])
STD = torch.tensor([58.395, 57.12, 57.375])
TINY_CONFIG = {"swin": {"embed_dim": 12, "depths": (2, 2, 2, 2), "heads": (1, 2, 2, 4), "patch": (2, 8, 8)},
               "convnext": {"depths": (2, 2, 2, 2), "dims": (12, 24, 48, 96)}, "head_hidden": 8}


def unified_frame_indices(t: int, fsize: int, fragments: int, interval: int, clips: int = 1,
                          rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """DOVER's ``UnifiedFrameSampler``: ``fragments`` segments of ``fsize`` frames at ``interval`` starting at
    t // fragments * i (+ a random offset when a segment is longer than it needs), all modulo ``t``."""
    grids = np.array([t // fragments * i for i in range(fragments)])
    length = t // fragments
    out = []
    for _ in range(clips):
        if length > fsize * interval:
            off = (rng or np.random.default_rng(0)).integers(0, length - fsize * interval, size=len(grids))
        else:
            off = np.zeros(len(grids), dtype=int)
        out.append((np.arange(fsize)[None, :] * interval + off[:, None] + grids[:, None]).reshape(-1))
    return np.mod(np.concatenate(out), t)


def spatial_fragments(video: torch.Tensor, gen: torch.Generator, grid: int = 7, fsize: int = 32,
                      aligned: int = 32) -> torch.Tensor:
    """DOVER's ``get_spatial_fragments`` (non-random grid, random offset per cell and ``aligned``-frame chunk):
    (C, T, H, W) 0-255 -> (C, T, grid*fsize, grid*fsize)."""
    c, t, h, w = video.shape
    ratio = min(h / (grid * fsize), w / (grid * fsize))
    if ratio < 1:  # upsample so that the fragment grid fits
        video = F.interpolate(video / 255.0, scale_factor=1 / ratio, mode="bilinear") * 255.0
        h, w = video.shape[-2:]
    hs = [min(h // grid * i, h - fsize) for i in range(grid)]
    ws = [min(w // grid * i, w - fsize) for i in range(grid)]
    hl, wl = h // grid, w // grid
    chunks = t // aligned
    rh = torch.randint(hl - fsize, (grid, grid, chunks), generator=gen) if hl > fsize else \
        torch.zeros(grid, grid, chunks, dtype=torch.long)
    rw = torch.randint(wl - fsize, (grid, grid, chunks), generator=gen) if wl > fsize else \
        torch.zeros(grid, grid, chunks, dtype=torch.long)
    out = torch.zeros(c, t, grid * fsize, grid * fsize)
    for i, y in enumerate(hs):
        for j, x in enumerate(ws):
            for k in range(chunks):
                y0, x0 = y + int(rh[i, j, k]), x + int(rw[i, j, k])
                out[:, k * aligned:(k + 1) * aligned, i * fsize:(i + 1) * fsize, j * fsize:(j + 1) * fsize] = \
                    video[:, k * aligned:(k + 1) * aligned, y0:y0 + fsize, x0:x0 + fsize]
    return out


def normalise(view: torch.Tensor, clips: int) -> torch.Tensor:
    """(C, T, H, W) 0-255 -> (clips, C, T/clips, H, W) with DOVER's mean/std."""
    v = (view.permute(1, 2, 3, 0) - MEAN) / STD
    v = v.permute(3, 0, 1, 2)
    return v.reshape(v.shape[0], clips, -1, *v.shape[2:]).transpose(0, 1)


def dover_views(video: np.ndarray, seed: int = 0) -> dict[str, torch.Tensor]:
    """V2VBench's two DOVER views of a (T, H, W, 3) uint8 video (see the module docstring)."""
    t = len(video)
    frames = torch.from_numpy(np.ascontiguousarray(video)).float().permute(3, 0, 1, 2)  # (C, T, H, W)
    key = int(fingerprint(video, seed)[:15], 16)
    rng, gen = np.random.default_rng(key), torch.Generator().manual_seed(key)
    tech = frames[:, unified_frame_indices(t, 32, 3, 2, rng=rng)]
    tech = spatial_fragments(tech, gen)
    aes = frames[:, unified_frame_indices(t, 1, 32, 2, rng=rng)]
    aes = F.interpolate(aes.transpose(0, 1), size=(224, 224), mode="bilinear", align_corners=False,
                        antialias=False).transpose(0, 1)
    return {"technical": normalise(tech, 3), "aesthetic": normalise(aes, 1)}


def fuse_scores(technical: float, aesthetic: float) -> float:
    """V2VBench's ``fuse_results``: the overall DOVER score in (0, 1)."""
    x = (technical - 0.1107) / 0.07355 * 0.6104 + (aesthetic + 0.08285) / 0.03774 * 0.3896
    return 1.0 / (1.0 + math.exp(-x))


def load_dover(checkpoint: Optional[str] = None, backbone: str = "real", device: str | torch.device = "cpu",
               seed: int = 0, config_key: str = "metrics.dover") -> DOVER:
    _check_backbone(backbone, config_key)
    dev = torch.device(device)

    def build() -> DOVER:
        if backbone == "tiny":
            m = _seeded(seed, lambda: DOVER(**TINY_CONFIG))
        elif backbone == "random":
            m = _seeded(seed, DOVER)
        else:
            if not checkpoint or not os.path.isfile(checkpoint):
                raise MissingWeightsError(
                    f"{config_key}.checkpoint: {f'{checkpoint} is not a file' if checkpoint else 'not set'}; set "
                    f"{config_key}.checkpoint="
                    f"PATH to {DOVER_CHECKPOINT} (hub repository teowu/DOVER)")
            try:
                sd = torch.load(checkpoint, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001
                raise MissingWeightsError(f"{config_key}.checkpoint: {checkpoint} is not a weights-only state dict "
                                          f"({type(e).__name__})") from None
            with torch.device("meta"):
                m = DOVER()
            load_strict(m, sd.get("state_dict", sd), checkpoint, f"{config_key}.checkpoint")
        return m.eval().to(dev)

    return shared(("dover", checkpoint, backbone, str(dev), seed), build)


class DoverHandle(SharedBackbone):
    def modules(self):
        return [self.value]


class DoverScore(EditMetric):
    """V2VBench Video Quality: DOVER's fused score (0-1); the two branch means are kept as notes-free extras."""

    names = ("dover",)
    higher_is_better = True
    config_key = "metrics.dover"

    def __init__(self, checkpoint: Optional[str] = None, backbone: str = "real", device: str = "auto", seed: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checkpoint, self.backbone, self.seed = checkpoint, backbone, seed
        self.net = DoverHandle(partial(load_dover, checkpoint, backbone, seed=seed, config_key=self.config_key),
                               device)

    @torch.no_grad()
    def branch_scores(self, video: np.ndarray) -> tuple[float, float]:
        """(technical, aesthetic): each head's score map averaged."""
        views = dover_views(video, self.seed)
        t, a = self.net.value(views["technical"].to(self.net.device), views["aesthetic"].to(self.net.device))
        return float(t.double().mean()), float(a.double().mean())

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        return {"dover": fuse_scores(*self.branch_scores(edited))}

    def describe(self) -> str:
        return {"tiny": "tiny random DOVER (Swin-3D 12ch + ConvNeXt-3D 12ch)",
                "random": "DOVER real-size RANDOM weights"}.get(self.backbone,
                                                                 f"DOVER {os.path.basename(str(self.checkpoint))}")

    def protocol(self):
        return {"dover": f"{V2VBENCH_SOURCE} Video Quality: {self.describe()}; technical view 3 clips x 32 frames "
                         f"(3 segments, interval 2, wrapped) of 7x7 32-px fragments (offsets seeded: {self.seed}); "
                         f"aesthetic view 32 frames at T//32*i resized to 224x224 bilinear; branch maps averaged; "
                         f"sigmoid(0.6104 (t-0.1107)/0.07355 + 0.3896 (a+0.08285)/0.03774)"}
