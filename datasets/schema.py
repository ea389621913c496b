"""The sample schema (shared/DESIGN.md): one record per (source video, edited first frame) pair.

Every dataset produces ``Sample``; every method consumes it; every metric reads a Sample plus an edited video.
Arrays are numpy: videos (T, H, W, 3) uint8, images (H, W, 3) uint8, masks bool (H, W) or (T, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

import numpy as np

from videoshop.video_io import SampleError  # noqa: F401  (defined once, in the bottom library)

EDIT_TYPES = ("add_object", "remove_object", "replace_object", "change_color", "change_appearance",
              "change_action", "reconstruction", "unknown")

# Text a model reads (instruction, prompts) is bounded before any model sees it: a 10 MB instruction once made TIFA's
# question generator allocate 24 GB. Longer text is refused (one line naming the field), never truncated silently.
MAX_TEXT_CHARS = 2000


def text_problem(name: str, text: Optional[str], max_chars: int = MAX_TEXT_CHARS) -> Optional[str]:
    """Why ``text`` (field ``name``) cannot be used, or None: longer than ``max_chars`` characters."""
    if text is not None and len(text) > max_chars:
        return f"{name} is {len(text)} characters, more than {max_chars} (videoshop_bench.datasets.schema.MAX_TEXT_CHARS)"
    return None


@dataclass
class Sample:
    sample_id: str
    source_video: np.ndarray  # (T, H, W, 3) uint8
    edited_image: np.ndarray  # (H, W, 3) uint8: the edited first frame (target image)
    edit_mask: Optional[np.ndarray] = None  # (H, W) bool: first-frame edit region
    instruction: str = ""
    source_prompt: Optional[str] = None
    target_prompt: Optional[str] = None
    edit_type: str = "unknown"
    gt_edited_video: Optional[np.ndarray] = None  # (T, H, W, 3) uint8 where the dataset has ground truth
    gt_masks: Optional[np.ndarray] = None  # (T, H, W) bool: per-frame edit region where known
    fps: float = 7.0
    meta: dict[str, Any] = field(default_factory=dict)
    # benchmark-specific data a metric may read, JSON-serialisable, e.g. FiVE-Bench's judge questions under
    # extras["five_bench"] = {"source_yes_no_question", "target_yes_no_question", "multiple_choice_question"}
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.source_video.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.source_video.shape[1]), int(self.source_video.shape[2])

    def validate(self) -> "Sample":
        """Check shapes and dtypes; raise SampleError naming the field at fault."""
        v = self.source_video
        if not isinstance(v, np.ndarray) or v.ndim != 4 or v.shape[-1] != 3 or v.dtype != np.uint8:
            raise SampleError(f"{self.sample_id}: source_video must be (T, H, W, 3) uint8, got "
                              f"{getattr(v, 'shape', None)} {getattr(v, 'dtype', type(v).__name__)}")
        if v.shape[0] < 2:
            raise SampleError(f"{self.sample_id}: source_video has {v.shape[0]} frame(s); need at least 2")
        im = self.edited_image
        if not isinstance(im, np.ndarray) or im.ndim != 3 or im.shape[-1] != 3 or im.dtype != np.uint8:
            raise SampleError(f"{self.sample_id}: edited_image must be (H, W, 3) uint8, got {getattr(im, 'shape', None)}")
        if self.edit_mask is not None and self.edit_mask.shape != v.shape[1:3]:
            raise SampleError(f"{self.sample_id}: edit_mask shape {self.edit_mask.shape} != frame size {v.shape[1:3]}")
        if self.gt_edited_video is not None and self.gt_edited_video.shape != v.shape:
            raise SampleError(f"{self.sample_id}: gt_edited_video shape {self.gt_edited_video.shape} != source {v.shape}")
        if self.gt_masks is not None and self.gt_masks.shape != v.shape[:3]:
            raise SampleError(f"{self.sample_id}: gt_masks shape {self.gt_masks.shape} != {v.shape[:3]}")
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or not 0 < self.fps <= 1000:
            raise SampleError(f"{self.sample_id}: fps={self.fps!r} must be a number in (0, 1000]")
        if self.edit_mask is not None and np.asarray(self.edit_mask).dtype != bool:
            raise SampleError(f"{self.sample_id}: edit_mask must be bool, got {np.asarray(self.edit_mask).dtype}")
        if not isinstance(self.extras, dict):
            raise SampleError(f"{self.sample_id}: extras must be a dict, got {type(self.extras).__name__}")
        for name in ("instruction", "source_prompt", "target_prompt"):
            too_long = text_problem(name, getattr(self, name))
            if too_long:
                raise SampleError(f"{self.sample_id}: {too_long}")
        if self.edit_type not in EDIT_TYPES:
            raise SampleError(f"{self.sample_id}: edit_type {self.edit_type!r} not in {EDIT_TYPES}")
        return self

    def as_reconstruction(self) -> "Sample":
        """The reconstruction task: the 'edit' is the source's own first frame, the ground truth is the source."""
        return replace(self, edited_image=self.source_video[0].copy(), edit_mask=None,
                       instruction="reconstruct the source video", edit_type="reconstruction",
                       gt_edited_video=self.source_video, gt_masks=None)
