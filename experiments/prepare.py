"""Adapting a sample to the model (frame count, first-frame size) and an output back to the sample's size."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from datasets.schema import Sample, SampleError
from datasets.video_io import resample_frames, resize_video

log = logging.getLogger(__name__)


def fit_frame_count(sample: Sample, num_frames: int, policy: str = "resample") -> tuple[Sample, list[str]]:
    """Make the sample ``num_frames`` long: 'resample' (uniform, ground truth and masks too) or 'refuse'."""
    notes: list[str] = []
    t = sample.num_frames
    if t == num_frames:
        return sample, notes
    if policy == "refuse":
        raise SampleError(f"{sample.sample_id}: video has {t} frames but the model takes {num_frames}; "
                          f"set frames_policy=resample to resample it")
    if policy != "resample":
        raise ValueError(f"frames_policy={policy!r}: expected 'resample' or 'refuse'")
    msg = f"resampled {t} -> {num_frames} frames"
    log.info("%s: %s", sample.sample_id, msg)
    notes.append(msg)
    gt = None if sample.gt_edited_video is None else resample_frames(sample.gt_edited_video, num_frames)
    masks = None if sample.gt_masks is None else resample_frames(sample.gt_masks, num_frames)
    return replace(sample, source_video=resample_frames(sample.source_video, num_frames), gt_edited_video=gt,
                   gt_masks=masks), notes


def fit_edited_image(sample: Sample) -> tuple[Sample, list[str]]:
    """An edited image of another size than the source is resized to it (bilinear, antialiased), and logged."""
    h, w = sample.size
    if sample.edited_image.shape[:2] == (h, w):
        return sample, []
    msg = f"resized edited image {sample.edited_image.shape[1]}x{sample.edited_image.shape[0]} -> {w}x{h}"
    log.warning("%s: %s", sample.sample_id, msg)
    img = resize_video(sample.edited_image[None], h, w)[0]
    return replace(sample, edited_image=img), [msg]


def to_sample_size(frames: np.ndarray, sample: Sample) -> np.ndarray:
    """Resize method output (model resolution) back to the source video's size for saving and metrics."""
    h, w = sample.size
    return resize_video(frames, h, w)
