"""Adapting a sample to the model (frame count, first-frame size) and an output back to the sample's size."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from videoshop_bench.datasets.schema import Sample, SampleError
from videoshop.video_io import resample_frames, resize_video

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


def check_input_limits(sample: Sample, limits) -> None:
    """Refuse a source video beyond ``limits`` (conf ``limits.*``) before any model or metric allocates for it."""
    t, h, w = sample.source_video.shape[:3]
    max_side, max_frames = limits.get("max_side"), limits.get("max_frames")
    max_mp = limits.get("max_video_megapixels")
    if max_side and max(h, w) > int(max_side):
        raise SampleError(f"{sample.sample_id}: source video is {w}x{h} px, larger than limits.max_side={max_side}")
    if max_frames and t > int(max_frames):
        raise SampleError(f"{sample.sample_id}: source video has {t} frames, more than limits.max_frames={max_frames}")
    if max_mp and t * h * w / 1e6 > float(max_mp):
        raise SampleError(f"{sample.sample_id}: source video is {t}x{w}x{h} = {t * h * w / 1e6:.0f} megapixels, more "
                          f"than limits.max_video_megapixels={max_mp}")


def check_aspect(sample: Sample, height: int, width: int, policy: str = "note", tolerance: float = 0.02) -> list[str]:
    """The model sees frames at ``width`` x ``height``: a source of another aspect ratio is stretched to it.

    ``policy='note'`` records the stretch in the sample's notes; ``'refuse'`` fails the sample (one line). Relative
    differences below ``tolerance`` (rounding to multiples of 8) pass without a note.
    """
    h, w = sample.size
    src, model = w / h, width / height
    if abs(src / model - 1.0) <= tolerance:
        return []
    msg = (f"aspect ratio {src:.2f} ({w}x{h}) differs from the model's {model:.2f} ({width}x{height}): frames are "
           f"stretched")
    if policy == "refuse":
        raise SampleError(f"{sample.sample_id}: {msg}; set aspect_policy=note to accept the stretch, or crop the "
                          f"video to {model:.2f}")
    if policy != "note":
        raise ValueError(f"aspect_policy={policy!r}: expected 'note' or 'refuse'")
    log.warning("%s: %s", sample.sample_id, msg)
    return [msg]
