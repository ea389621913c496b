"""The method interface every editing method implements, and Videoshop behind it.

A method is constructed from its config (conf/method/*.yaml: ``name`` plus options) and the loaded pipeline, and
edits one Sample at a time: ``edit(sample, generator) -> EditResult`` with frames at the model resolution (the
whole interface: a ``name`` attribute and ``edit``; the runner needs nothing else). Frame
count and size adaptation happen in the runner (experiments/prepare.py), not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
from typing import Any, Optional

import numpy as np
import torch

from .config import VideoshopConfig


def sample_seed(seed: int, sample_id: str) -> int:
    """Per-sample seed: independent of order, subset and sharding, so resumed and sharded runs match full ones (the
    runner seeds each edit's generator with it; dataset builders seed each sample's generation with it)."""
    return int(hashlib.sha256(f"{seed}:{sample_id}".encode()).hexdigest()[:15], 16)


@dataclass
class EditResult:
    frames: np.ndarray  # (T, H, W, 3) uint8
    nfe: int = 0  # network (UNet) evaluations
    finite: bool = True  # False when the method's latents diverged (recorded as NaN metrics)
    info: dict[str, Any] = field(default_factory=dict)


class VideoshopMethod:
    """Videoshop and its ablations: all are this class with different options (conf/method/videoshop*.yaml)."""

    def __init__(self, pipeline, name: str = "videoshop", height: Optional[int] = None, width: Optional[int] = None,
                 **options: Any):
        self.pipeline, self.name = pipeline, name
        self.height, self.width = height, width
        self.config = VideoshopConfig.from_dict(options)

    def edit(self, sample, generator: torch.Generator) -> EditResult:
        out = self.pipeline(video=sample.source_video, edited_image=sample.edited_image, config=self.config,
                            generator=generator, height=self.height, width=self.width)
        return EditResult(frames=out.frames, nfe=out.nfe, finite=out.finite,
                          info={"inversion_branches": "".join(b[0] for b in out.inversion_branches),
                                "timings": out.timings})
