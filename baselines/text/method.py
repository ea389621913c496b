"""What every SD-family text-driven baseline shares behind the method interface (videoshop/method.py).

Such a method loads its own models (``uses_video_model: false`` in its config: the runner builds no SVD pipeline
and passes ``device=``), processes every source frame at its own resolution (``handles_any_length``: the runner
does not resample the frame count) and returns one output frame per source frame; the runner resizes them back to
the sample's size.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from .models import check_weights, resolve_dtype
from .prompts import PromptResolver, Prompts


def frame_windows(num_frames: int, length: Optional[int]) -> list[tuple[int, int]]:
    """Frame ranges processed together: all frames when ``length`` is None or covers them, else consecutive windows
    of ``length`` frames, the last one aligned to the video's end (it overlaps the one before)."""
    if not length or length >= num_frames:
        return [(0, num_frames)]
    starts = list(range(0, num_frames - length + 1, length))
    if starts[-1] + length < num_frames:
        starts.append(num_frames - length)
    return [(s, s + length) for s in starts]


class TextDrivenMethod:
    """Base: device/dtype, the ``weights`` switch, and prompt resolution (``prompts`` = PromptResolver options)."""

    uses_video_model = False
    handles_any_length = True

    def __init__(self, name: str, device: str = "cpu", weights: str = "pretrained", dtype: str = "auto",
                 allow_download: bool = True, prompts: Optional[dict[str, Any]] = None, **options: Any) -> None:
        self.name = name
        self.device = torch.device(device)
        self.weights = check_weights(weights)
        self.dtype = resolve_dtype(dtype, self.device)
        self.allow_download = bool(allow_download)
        self.prompt_options = dict(prompts or {})
        self.prompt_resolver = PromptResolver(backbone="tiny" if self.weights == "tiny" else "real",
                                              device=self.device, **self.prompt_options)

    def resolve_prompts(self, sample) -> Prompts:
        return self.prompt_resolver.resolve(sample)
