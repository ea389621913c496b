"""Frame geometry of the dataset builders and loaders: centre crop to an aspect ratio, crop / stretch / letterbox
to a target size, and a whole sample resampled and resized on load."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .schema import Sample
from videoshop.video_io import resample_frames, resize_video

FIT_MODES = ("crop", "resize", "pad")


def center_crop_box(h: int, w: int, aspect: float) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the largest centred box of ``aspect`` = width / height inside h x w."""
    if w / h > aspect:  # too wide: crop the sides
        cw = max(1, int(round(h * aspect)))
        return 0, (w - cw) // 2, h, cw
    ch = max(1, int(round(w / aspect)))
    return (h - ch) // 2, 0, ch, w


def letterbox_padding(h: int, w: int, aspect: float) -> tuple[int, int]:
    """(rows, columns) of black to add around h x w so that it has ``aspect`` = width / height."""
    if w / h > aspect:
        return int(round(w / aspect)) - h, 0
    return 0, int(round(h * aspect)) - w


def fit_frames(frames: np.ndarray, height: int, width: int, fit: str = "crop", mask: bool = False) -> np.ndarray:
    """Bring (T, H, W[, 3]) frames to ``height`` x ``width``: ``crop`` = centre-crop to the target aspect ratio then
    resize (the default, no distortion), ``resize`` = stretch, ``pad`` = letterbox with black (False for masks)."""
    if fit not in FIT_MODES:
        raise ValueError(f"fit={fit!r}: expected one of {FIT_MODES}")
    frames = np.asarray(frames)
    h, w = frames.shape[1:3]
    aspect = width / height
    if fit == "crop":
        top, left, ch, cw = center_crop_box(h, w, aspect)
        frames = frames[:, top:top + ch, left:left + cw]
    elif fit == "pad":
        ph, pw = letterbox_padding(h, w, aspect)
        pad = [(0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)] + [(0, 0)] * (frames.ndim - 3)
        frames = np.pad(frames, pad)
    frames = np.ascontiguousarray(frames)
    if not frames.flags.writeable:  # torch.from_numpy warns on read-only arrays (e.g. from PIL)
        frames = frames.copy()
    return resize_video(frames, int(height), int(width), mask=mask)


def fit_image(image: np.ndarray, height: int, width: int, fit: str = "crop", mask: bool = False) -> np.ndarray:
    """``fit_frames`` for one (H, W[, 3]) image or mask."""
    return fit_frames(np.asarray(image)[None], height, width, fit, mask)[0]


def resample_sample(sample: Sample, num_frames: int) -> Sample:
    """Every video of ``sample`` resampled uniformly to ``num_frames`` frames."""
    sample.source_video = resample_frames(sample.source_video, num_frames)
    if sample.gt_edited_video is not None:
        sample.gt_edited_video = resample_frames(sample.gt_edited_video, num_frames)
    if sample.gt_masks is not None:
        sample.gt_masks = resample_frames(sample.gt_masks, num_frames)
    return sample


def resize_sample(sample: Sample, h: int, w: int) -> Sample:
    """Every array of ``sample`` stretched to ``h`` x ``w`` (masks stay binary); a changed aspect ratio is noted in
    ``meta['load_notes']``."""
    if abs((w / h) / (sample.size[1] / sample.size[0]) - 1) > 0.02:
        sample.meta.setdefault("load_notes", []).append(
            f"loader resized {sample.size[1]}x{sample.size[0]} -> {w}x{h}: aspect ratio "
            f"{sample.size[1] / sample.size[0]:.2f} stretched to {w / h:.2f}")
    sample.source_video = fit_frames(sample.source_video, h, w, "resize")
    sample.edited_image = fit_image(sample.edited_image, h, w, "resize")
    if sample.edit_mask is not None:
        sample.edit_mask = fit_image(sample.edit_mask, h, w, "resize", mask=True)
    if sample.gt_edited_video is not None:
        sample.gt_edited_video = fit_frames(sample.gt_edited_video, h, w, "resize")
    if sample.gt_masks is not None:
        sample.gt_masks = fit_frames(sample.gt_masks, h, w, "resize", mask=True)
    return sample


def conform_sample(sample: Sample, num_frames: Optional[int] = None, height: Optional[int] = None,
                   width: Optional[int] = None) -> Sample:
    """Resample frames uniformly to ``num_frames`` and resize every array to ``height`` x ``width`` (None = keep)."""
    if num_frames and sample.num_frames != int(num_frames):
        sample = resample_sample(sample, int(num_frames))
    h, w = int(height or sample.size[0]), int(width or sample.size[1])
    if (h, w) != sample.size:
        sample = resize_sample(sample, h, w)
    return sample
