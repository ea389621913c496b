"""What a first-frame editor is: ``edit(request) -> EditedFrame``, plain arrays in and out (no Hydra).

A request carries the source video's first frame, the text the editor follows (the sample's instruction or target
prompt), a seed, and the dataset's own edited frame where it has one. The result is the edited first frame at the
source frame's size, its edit mask (the editor's own where it gives one, else the pixels that changed by more than
a threshold: ``mask_by_difference``) and what was used (editor, weights, revision, seed, prompt), recorded in each
sample's record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

import numpy as np

# Edit mask by difference: a pixel is edited when some colour channel changed by more than this (0..255). 24 is
# about 10 % of the range: above the JPEG/VAE round-trip noise of an unedited region (a diffusers image editor's
# VAE changes untouched pixels by a few levels), below the change of any visible recolouring.
DIFF_THRESHOLD = 24
# an edit that changes fewer pixels than this fraction counts as "returned the image unchanged" (failed sample)
MIN_CHANGED_FRACTION = 0.001


class EditorFailed(RuntimeError):
    """An editor could not edit this sample (one line: why); the sample is recorded as failed, the run goes on."""


@dataclass
class EditRequest:
    sample_id: str
    source: np.ndarray  # (H, W, 3) uint8: the source video's first frame
    prompt: str  # what the editor follows (instruction or target prompt)
    seed: int
    dataset_edit: Optional[np.ndarray] = None  # (H, W, 3) uint8: the dataset's own edited frame, if it has one
    dataset_mask: Optional[np.ndarray] = None  # (H, W) bool


@dataclass
class EditedFrame:
    image: np.ndarray  # (H, W, 3) uint8, the source frame's size
    mask: Optional[np.ndarray] = None  # (H, W) bool; None: made by difference
    mask_source: str = "editor"  # editor | difference | dataset | folder
    info: dict[str, Any] = field(default_factory=dict)  # weights, revision, steps, ... (JSON)


class ImageEditor(Protocol):
    name: str

    def describe(self) -> dict[str, Any]:
        """What makes its output (weights, revision, options): part of the cache key and of every record."""
        ...

    def edit(self, request: EditRequest) -> EditedFrame:
        ...


def mask_by_difference(source: np.ndarray, edited: np.ndarray, threshold: int = DIFF_THRESHOLD) -> np.ndarray:
    """(H, W) bool: pixels where some channel differs by more than ``threshold`` (0..255) between the two images."""
    if source.shape != edited.shape:
        raise ValueError(f"mask_by_difference: shapes differ, {source.shape} vs {edited.shape}")
    diff = np.abs(source.astype(np.int16) - edited.astype(np.int16)).max(axis=-1)
    return diff > int(threshold)


def fit_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """An editor's output brought back to the source frame's size (bilinear, antialiased) when it differs."""
    from videoshop.video_io import resize_video

    if image.shape[:2] == (height, width):
        return image
    return resize_video(image[None], height, width)[0]


def finish_edit(request: EditRequest, result: EditedFrame, threshold: int = DIFF_THRESHOLD,
                min_changed: float = MIN_CHANGED_FRACTION) -> EditedFrame:
    """The result at the source's size with a mask (by difference when the editor gave none); ``EditorFailed`` when
    the editor returned the frame (almost) unchanged: fewer than ``min_changed`` of the pixels moved."""
    h, w = request.source.shape[:2]
    image = fit_to(np.ascontiguousarray(result.image, dtype=np.uint8), h, w)
    changed = mask_by_difference(request.source, image, threshold)
    if changed.mean() < min_changed:
        raise EditorFailed(f"{request.sample_id}: the editor returned the first frame unchanged ({changed.mean():.2%} of "
                           f"pixels differ by more than {threshold}/255)")
    mask, source = result.mask, result.mask_source
    if mask is None:
        mask, source = changed, "difference"
    elif mask.shape != (h, w):
        mask = fit_to(mask.astype(np.uint8)[..., None].repeat(3, -1) * 255, h, w)[..., 0] > 127
    info = dict(result.info, mask_threshold=int(threshold)) if source == "difference" else dict(result.info)
    return EditedFrame(image=image, mask=np.asarray(mask, dtype=bool), mask_source=source, info=info)
