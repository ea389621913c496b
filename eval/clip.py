"""CLIP metrics: CLIP_tgt / CLIP_tgt+ (edit fidelity), CLIP_src / CLIP_src+ (source faithfulness), CLIP_TC.

Protocol (shared/paper/metric_protocols.md; every choice is a constructor argument recorded in ``protocol()``):
  * backbone: open_clip ``model``/``pretrained`` (default ViT-B-32/openai, RAVE's choice), projected image
    embeddings (``encode_image``), L2-normalised; cosine similarity x100;
  * preprocessing: the model's own validation transform on PIL frames (OpenAI CLIP: bicubic resize of the short
    side to 224, centre crop 224; on 16:9 frames the left/right borders are cut away);
  * CLIP_tgt = mean over all T edited frames of cos(edited_t, target image);
  * CLIP_tgt+ = the same on the edit region: ``region_mode=crop`` (default) crops the bounding box of the tracked
    region from edited frame t and the frame-0 region from the target image; ``mask`` keeps the full frame and
    fills everything outside the region with ``fill``;
  * CLIP_src = mean over t of cos(edited_t, source_t); CLIP_src+ = the same after filling the tracked edit region
    (same region in both videos) with ``fill``, i.e. the unedited region only;
  * CLIP_TC = mean cos of consecutive edited frames (``pairs=consecutive``; RAVE averages ``all`` pairs;
    V2VBench clamps negative cosines at 0: ``clamp_negative``).
Source and target embeddings are computed once per sample and cached (``cache_dir``).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from .backbones import SharedBackbone, load_clip
from .base import EditMetric, check_same_shape
from .cache import FeatureCache, fingerprint
from .tracking import MaskTracker


def fill_region(frames: np.ndarray, masks: np.ndarray, fill: int) -> np.ndarray:
    """Copy of (N, H, W, 3) frames with pixels where (N, H, W) ``masks`` is True set to ``fill``."""
    out = frames.copy()
    out[masks] = fill
    return out


def crop_box(frame: np.ndarray, mask: np.ndarray) -> Optional[np.ndarray]:
    """The bounding box of ``mask`` cut from ``frame``; None when the mask is empty."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    return frame[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


class ClipBackbone(SharedBackbone):
    """Batched, device-agnostic CLIP image embedding: list of uint8 (H, W, 3) arrays -> (N, D) unit vectors (CPU).

    Computes on ``self.device``; ``to(device)`` switches to the shared CLIP for that device (``SharedBackbone``).
    """

    def __init__(self, model: str = "ViT-B-32", pretrained: str = "openai", checkpoint: Optional[str] = None,
                 backbone: str = "real", device: str = "auto", batch_size: int = 32, seed: int = 0,
                 config_key: str = "metrics.clip") -> None:
        self.model_name, self.pretrained, self.checkpoint, self.backbone = model, pretrained, checkpoint, backbone
        self.batch_size = batch_size
        super().__init__(partial(load_clip, model, pretrained, checkpoint, backbone, seed=seed, config_key=config_key),
                         device)

    @property
    def model(self):
        return self.value[0]

    @property
    def preprocess(self):
        return self.value[1]

    def describe(self) -> str:
        name = "tiny random open_clip ViT (32px, 2 layers)" if self.backbone == "tiny" else (
            f"open_clip {self.model_name} RANDOM weights" if self.backbone == "random" else
            f"open_clip {self.model_name}/{self.checkpoint or self.pretrained}")
        return f"{name}, projected image embeddings, model's val preprocess, cosine x100"

    @torch.no_grad()
    def embed(self, images) -> torch.Tensor:
        out = []
        for i in range(0, len(images), self.batch_size):
            x = torch.stack([self.preprocess(Image.fromarray(np.ascontiguousarray(im))) for im in
                             images[i:i + self.batch_size]]).to(self.device)
            e = self.model.encode_image(x).float()
            out.append(torch.nn.functional.normalize(e, dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0)


class _ClipMetric(EditMetric):
    config_key = "metrics.clip"

    def __init__(self, model: str = "ViT-B-32", pretrained: str = "openai", checkpoint: Optional[str] = None,
                 backbone: str = "real", device: str = "auto", batch_size: int = 32, seed: int = 0,
                 cache_dir: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clip = ClipBackbone(model, pretrained, checkpoint, backbone, device, batch_size, seed, self.config_key)
        self.cache = FeatureCache(cache_dir, "clip")

    def _cached_embed(self, tag: str, images: np.ndarray, *extra: Any) -> torch.Tensor:
        key = fingerprint(tag, images, *extra, self.clip.describe(), self.clip.checkpoint or self.clip.pretrained)
        return self.cache.get_or_compute(key, lambda: self.clip.embed(list(images)))


def _tracker(tracking: Optional[dict], device: str, cache_dir: Optional[str]) -> MaskTracker:
    """The region tracker of a region metric; its errors name ``tracking.*``, the config group the three region
    metrics share (conf/tracking), whichever metric builds it first."""
    cfg = dict(tracking or {})
    cfg.setdefault("device", device)
    cfg.setdefault("cache_dir", cache_dir)
    cfg.setdefault("config_key", "tracking")
    return MaskTracker(**cfg)


class CLIPTarget(_ClipMetric):
    """CLIP_tgt and CLIP_tgt+ (x100): edited frames vs the target (edited first) image, whole frame and edit region."""

    names = ("clip_tgt", "clip_tgt_plus")
    higher_is_better = True
    config_key = "metrics.clip_tgt"

    def __init__(self, plus: bool = True, region_mode: str = "crop", fill: int = 0,
                 tracking: Optional[dict] = None, **kwargs: Any) -> None:
        if region_mode not in ("crop", "mask"):
            raise ValueError(f"{self.config_key}.region_mode must be crop or mask, got {region_mode!r}")
        super().__init__(**kwargs)
        self.plus, self.region_mode, self.fill = plus, region_mode, fill
        self.tracker = _tracker(tracking, kwargs.get("device", "auto"), kwargs.get("cache_dir")) \
            if plus else None

    def _regions(self, frames: np.ndarray, masks: np.ndarray) -> list[Optional[np.ndarray]]:
        if self.region_mode == "crop":
            return [crop_box(f, m) for f, m in zip(frames, masks)]
        return [fill_region(f[None], ~m[None], self.fill)[0] if m.any() else None for f, m in zip(frames, masks)]

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        target = self._cached_embed("target", sample.edited_image[None])
        frames = self.clip.embed(list(edited))
        out: dict[str, Optional[float]] = {"clip_tgt": 100.0 * float((frames @ target[0]).mean())}
        out["clip_tgt_plus"] = None
        if self.plus:
            masks = self.tracker.track(sample, edited)
            tgt_region = self._regions(sample.edited_image[None], masks[:1])[0]
            regions = self._regions(edited, masks)
            keep = [r for r in regions if r is not None]
            if tgt_region is not None and keep:
                e_t = self._cached_embed("target_region", tgt_region[None], self.region_mode, self.fill)
                out["clip_tgt_plus"] = 100.0 * float((self.clip.embed(keep) @ e_t[0]).mean())
        return out

    def protocol(self):
        p = {"clip_tgt": f"{self.clip.describe()}; mean over all edited frames vs target image"}
        if self.plus:
            how = ("crop of the region's bounding box" if self.region_mode == "crop"
                   else f"outside of the region filled with {self.fill}")
            p["clip_tgt_plus"] = f"{self.clip.describe()}; edit region: {how}; region tracker: {self.tracker.protocol()}"
        return p


class CLIPSource(_ClipMetric):
    """CLIP_src and CLIP_src+ (x100): corresponding source and edited frames; + masks out the tracked edit region."""

    names = ("clip_src", "clip_src_plus")
    higher_is_better = True
    config_key = "metrics.clip_src"

    def __init__(self, plus: bool = True, fill: int = 0, tracking: Optional[dict] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plus, self.fill = plus, fill
        self.tracker = _tracker(tracking, kwargs.get("device", "auto"), kwargs.get("cache_dir")) \
            if plus else None

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        src = self._cached_embed("source", sample.source_video)
        out: dict[str, Optional[float]] = {
            "clip_src": 100.0 * float((self.clip.embed(list(edited)) * src).sum(-1).mean()), "clip_src_plus": None}
        if self.plus:
            masks = self.tracker.track(sample, edited)
            if masks.all():  # nothing outside the region to compare: skipped (counted), not a meaningless 100
                return out
            src_m = self._cached_embed("source_masked", fill_region(sample.source_video, masks, self.fill))
            ed_m = self.clip.embed(list(fill_region(edited, masks, self.fill)))
            out["clip_src_plus"] = 100.0 * float((ed_m * src_m).sum(-1).mean())
        return out

    def protocol(self):
        p = {"clip_src": f"{self.clip.describe()}; mean over t of cos(source_t, edited_t)"}
        if self.plus:
            p["clip_src_plus"] = (f"{self.clip.describe()}; tracked edit region filled with {self.fill} in both "
                                  f"videos; region tracker: {self.tracker.protocol()}")
        return p


class CLIPTemporal(_ClipMetric):
    """CLIP_TC (x100): mean CLIP similarity of consecutive edited frames (or of all pairs)."""

    names = ("clip_tc",)
    min_frames = 2  # pairs of consecutive frames
    higher_is_better = True
    config_key = "metrics.clip_tc"

    def __init__(self, pairs: str = "consecutive", clamp_negative: bool = False, **kwargs: Any) -> None:
        if pairs not in ("consecutive", "all"):
            raise ValueError(f"{self.config_key}.pairs must be consecutive or all, got {pairs!r}")
        super().__init__(**kwargs)
        self.pairs, self.clamp_negative = pairs, clamp_negative

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        e = self.clip.embed(list(edited))
        if self.pairs == "consecutive":
            sims = (e[:-1] * e[1:]).sum(-1)
        else:
            i, j = torch.triu_indices(len(e), len(e), offset=1)
            sims = (e[i] * e[j]).sum(-1)
        if self.clamp_negative:
            sims = sims.clamp(min=0)
        return {"clip_tc": 100.0 * float(sims.mean())}

    def protocol(self):
        clamp = ", negative cosines clamped at 0" if self.clamp_negative else ""
        return {"clip_tc": f"{self.clip.describe()}; mean over {self.pairs} pairs of edited frames{clamp}"}
