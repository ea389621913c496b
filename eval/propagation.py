"""Edit propagation: how the first-frame edit holds over the clip (no published suite has it).

Per frame t, on the edit region tracked through the video (eval/tracking.py, the region of CLIP_tgt+/CLIP_src+):
  * inside_t  = 100 cos(E(crop(edited_t, R_t)), E(crop(reference, R_0))): the edited region against the edited
    first frame's region. ``reference``: ``edited_image`` (default: the edit the user made, the image a method
    propagates) or ``output_first`` (the method's own frame 0: drift from where it started, blind to frame-0
    fidelity). Crops are the bounding boxes of the region (CLIP_tgt+'s ``crop`` mode);
  * outside_t = 100 cos(E(fill(edited_t, R_t)), E(fill(source_t, R_t))): the rest of the frame against the source
    (CLIP_src+ per frame; the region filled with ``fill`` in both).
E (``embedder``) is CLIP (open_clip, eval/clip.py's ``ClipBackbone``: projected image embeddings, the model's own
preprocess; default ViT-B-32/openai) or DINOv2 (transformers ``Dinov2Model``, eval/hf_backbones.py's loader: the
layer-normed CLS token, as V2VBench's DINO consistency; default facebook/dinov2-base), L2-normalised.
An edit that fades back to the source or drifts makes the inside curve fall; a background that degrades over time
makes the outside curve fall. Per sample the two curves are stored in the record (``curves``: one value per frame,
NaN where the region is empty, or covers the frame for the outside one) and summarised as four columns:
  * ``propagation_in_auc`` / ``propagation_out_auc``: the normalised area under the curve, trapezoids over
    t / (T - 1) in [0, 1] (= the mean similarity for a flat curve), over the frames that have a value;
  * ``propagation_in_last`` / ``propagation_out_last``: the value at the last frame (the last frame with a value
    when the region has left the frame).
Without a first-frame region the inside columns are skipped; where the region covers every frame the outside ones.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from .base import EditMetric, check_same_shape
from .cache import FeatureCache, fingerprint
from .clip import ClipBackbone, _tracker, crop_box, fill_region
from .hf_backbones import DINOV2_BASE, load_dinov2
from .v2vbench import HFBackbone

REFERENCES = ("edited_image", "output_first")
EMBEDDERS = ("clip", "dinov2")
CURVES = ("propagation_in", "propagation_out")


class DinoEmbedder(HFBackbone):
    """Batched DINOv2 image embedding: list of uint8 (H, W, 3) arrays -> (N, D) unit vectors (CPU) of the
    ``pooler_output`` (the layer-normed CLS token), the model's own PIL image processor."""

    def __init__(self, model: str = DINOV2_BASE, revision: Optional[str] = None, backbone: str = "real",
                 device: str = "auto", batch_size: int = 32, seed: int = 0,
                 config_key: str = "metrics.propagation") -> None:
        self.model_name, self.revision, self.backbone, self.batch_size = model, revision, backbone, batch_size
        self.checkpoint, self.pretrained = None, revision or "main"  # what the metric's cache keys name
        super().__init__(partial(load_dinov2, model, revision, backbone, seed=seed, config_key=config_key), device)

    def describe(self) -> str:
        name = {"tiny": "tiny random DINOv2 (seeded)", "random": "DINOv2-base RANDOM weights"}.get(
            self.backbone, f"{self.model_name}{f' @ {self.revision}' if self.revision else ''}")
        return f"{name}, pooler_output (layer-normed CLS), model's image processor, cosine x100"

    @torch.no_grad()
    def embed(self, images) -> torch.Tensor:
        model, proc, out = self["model"], self["images"], []
        for i in range(0, len(images), self.batch_size):
            pil = [Image.fromarray(np.ascontiguousarray(im)) for im in images[i:i + self.batch_size]]
            x = proc(pil, return_tensors="pt").pixel_values.to(self.device)
            out.append(torch.nn.functional.normalize(model(pixel_values=x).pooler_output.float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0)


def curve_area(curve: np.ndarray) -> Optional[float]:
    """Normalised area under ``curve`` (one value per frame, NaN = none): trapezoids over t / (T - 1) between the
    first and last frames with a value, divided by the span they cover; None without any value."""
    y = np.asarray(curve, dtype=np.float64)
    t = np.flatnonzero(np.isfinite(y))
    if len(t) == 0:
        return None
    if len(t) == 1:
        return float(y[t[0]])
    x = t / max(len(y) - 1, 1)
    return float(np.trapezoid(y[t], x) / (x[-1] - x[0]))


def last_value(curve: np.ndarray) -> Optional[float]:
    """The curve's value at its last frame with a value; None without any."""
    y = np.asarray(curve, dtype=np.float64)
    t = np.flatnonzero(np.isfinite(y))
    return float(y[t[-1]]) if len(t) else None


class EditPropagation(EditMetric):
    """Per-frame similarity of the edit region to the edited first frame's, and of the outside to the source's.

    ``embedder``: clip | dinov2; ``model``: the open_clip name (default ViT-B-32) or the DINOv2 hub id / local
    directory (default facebook/dinov2-base); ``pretrained`` / ``checkpoint``: open_clip's tag or local file;
    ``revision``: the DINOv2 hub revision; ``backbone``: real | random | tiny."""

    names = ("propagation_in_auc", "propagation_in_last", "propagation_out_auc", "propagation_out_last")
    curve_names = CURVES
    higher_is_better = True
    config_key = "metrics.propagation"

    def __init__(self, embedder: str = "clip", model: Optional[str] = None, pretrained: str = "openai",
                 checkpoint: Optional[str] = None, revision: Optional[str] = None, backbone: str = "real",
                 reference: str = "edited_image", fill: int = 0, tracking: Optional[dict] = None,
                 device: str = "auto", batch_size: int = 32, seed: int = 0, cache_dir: Optional[str] = None,
                 **kwargs: Any) -> None:
        if reference not in REFERENCES:
            raise ValueError(f"{self.config_key}.reference must be one of {REFERENCES}, got {reference!r}")
        if embedder not in EMBEDDERS:
            raise ValueError(f"{self.config_key}.embedder must be one of {EMBEDDERS}, got {embedder!r}")
        super().__init__(**kwargs)
        self.reference, self.fill, self.embedder_name = reference, fill, embedder
        if embedder == "clip":
            self.embedder = ClipBackbone(model or "ViT-B-32", pretrained, checkpoint, backbone, device, batch_size,
                                         seed, self.config_key)
        else:
            self.embedder = DinoEmbedder(model or DINOV2_BASE, revision, backbone, device, batch_size, seed,
                                         self.config_key)
        self.cache = FeatureCache(cache_dir, "clip" if embedder == "clip" else "propagation")
        self.tracker = _tracker(tracking, device, cache_dir)

    def _cached_embed(self, tag: str, images: np.ndarray, *extra: Any) -> torch.Tensor:
        """Embeddings of source-side images, cached (CLIP: the same keys as CLIP_src+, which shares them)."""
        key = fingerprint(tag, images, *extra, self.embedder.describe(), self.embedder.checkpoint or self.embedder.pretrained)
        return self.cache.get_or_compute(key, lambda: self.embedder.embed(list(images)))

    # ------------------------------------------------------------------------------------------ curves
    def inside_curve(self, sample, edited: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """100 cos(E(region of edited_t), E(first-frame region of the reference)) per frame; NaN where empty."""
        out = np.full(len(edited), np.nan)
        ref_frame = sample.edited_image if self.reference == "edited_image" else edited[0]
        ref = crop_box(ref_frame, masks[0])
        if ref is None:
            return out
        e_ref = (self._cached_embed("propagation_reference", ref[None]) if self.reference == "edited_image"
                 else self.embedder.embed([ref]))[0]
        crops = [crop_box(f, m) for f, m in zip(edited, masks)]
        have = [t for t, c in enumerate(crops) if c is not None]
        if have:
            e = self.embedder.embed([crops[t] for t in have])
            out[have] = 100.0 * (e @ e_ref).double().numpy()
        return out

    def outside_curve(self, sample, edited: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """100 cos(E(edited_t outside R_t), E(source_t outside R_t)) per frame; NaN where R_t covers the frame."""
        out = np.full(len(edited), np.nan)
        have = [t for t, m in enumerate(masks) if not m.all()]
        if not have:
            return out
        src = self._cached_embed("source_masked", fill_region(sample.source_video, masks, self.fill))
        ed = self.embedder.embed(list(fill_region(edited[have], masks[have], self.fill)))
        out[have] = 100.0 * (ed * src[have]).sum(-1).double().numpy()
        return out

    def score_curves(self, sample, edited: np.ndarray):
        check_same_shape(sample, edited)
        masks = self.tracker.track(sample, edited)
        curves = {"propagation_in": self.inside_curve(sample, edited, masks),
                  "propagation_out": self.outside_curve(sample, edited, masks)}
        values = {}
        for side in ("in", "out"):
            c = curves[f"propagation_{side}"]
            values[f"propagation_{side}_auc"] = curve_area(c)
            values[f"propagation_{side}_last"] = last_value(c)
        return values, {k: [float(v) for v in c] for k, c in curves.items()}

    def score(self, sample, edited: np.ndarray):
        return self.score_curves(sample, edited)[0]

    def skip_reason(self, name: str, sample) -> str:
        if name.startswith("propagation_in"):
            return "no first-frame edit region" if getattr(sample, "edit_mask", None) is not None or \
                getattr(sample, "gt_masks", None) is not None else "no edit mask"
        return "tracked edit region covers the whole frame"

    def protocol(self):
        ref = ("the edited first frame (target image)" if self.reference == "edited_image"
               else "the method's own first output frame")
        inside = (f"{self.embedder.describe()}; per frame, crop of the tracked region's bounding box vs the frame-0 "
                  f"region of {ref}")
        outside = (f"{self.embedder.describe()}; per frame, edited vs source with the tracked region filled with "
                   f"{self.fill}")
        tail = f"; region tracker: {self.tracker.protocol()}"
        area = "; normalised area under the per-frame curve (trapezoids over t/(T-1))"
        last = "; value at the last frame with a region"
        return {"propagation_in_auc": inside + area + tail, "propagation_in_last": inside + last + tail,
                "propagation_out_auc": outside + area + tail, "propagation_out_last": outside + last + tail}

