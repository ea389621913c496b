"""The method interface every editing method implements, and Videoshop behind it.

A method is constructed from its config (conf/method/*.yaml: ``name`` plus options) and the loaded pipeline, and
edits one Sample at a time: ``edit(sample, generator) -> EditResult`` with frames at the model resolution (the
whole interface: a ``name`` attribute and ``edit``; the runner needs nothing else). Frame
count and size adaptation happen in the runner (experiments/prepare.py), not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
from typing import Any, Callable, Optional

import numpy as np
import torch

from .config import VideoshopConfig


def sample_seed(seed: int, sample_id: str) -> int:
    """Per-sample seed: independent of order, subset and sharding, so resumed and sharded runs match full ones (the
    runner seeds each edit's generator with it; dataset builders seed each sample's generation with it)."""
    # surrogateescape: a folder name that is not valid UTF-8 hashes its own bytes instead of raising (same seed as
    # before for every UTF-8 id)
    return int(hashlib.sha256(f"{seed}:{sample_id}".encode("utf-8", "surrogateescape")).hexdigest()[:15], 16)


def seeded(seed: int, build: Callable[[], Any]) -> Any:
    """``build()`` with torch's CPU generator seeded by ``seed``, the global RNG state restored afterwards: a tiny
    random stand-in gets the same weights whatever ran before it, and takes nothing from the run's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


@dataclass
class EditResult:
    frames: np.ndarray  # (T, H, W, 3) uint8
    nfe: int = 0  # network (UNet) evaluations
    finite: bool = True  # False when the method's latents diverged (recorded as NaN metrics)
    info: dict[str, Any] = field(default_factory=dict)


class VideoshopMethod:
    """Videoshop and its ablations: all are this class with different options (conf/method/videoshop*.yaml).

    ``uses_video_model``: the runner builds the video pipeline and passes it (a method that loads its own models
    says False and gets ``device=``); ``options`` / ``inner_options``: the dataclasses declaring its keyword options
    (videoshop.options.declared_options): none of its own, every ``VideoshopConfig`` field."""

    uses_video_model = True
    options: Optional[type] = None
    inner_options: Optional[type] = VideoshopConfig

    def __init__(self, pipeline, name: str = "videoshop", height: Optional[int] = None, width: Optional[int] = None,
                 **options: Any):
        self.pipeline, self.name = pipeline, name
        self.height, self.width = height, width
        self.config = VideoshopConfig.from_dict(options)

    def edit(self, sample, generator: torch.Generator) -> EditResult:
        prompts = edit_prompts(sample) if getattr(self.pipeline, "takes_prompt", False) else {}
        out = self.pipeline(video=sample.source_video, edited_image=sample.edited_image, config=self.config,
                            generator=generator, height=self.height, width=self.width, **prompts)
        info = {"inversion_branches": "".join(b[0] for b in out.inversion_branches), "timings": out.timings}
        return EditResult(frames=out.frames, nfe=out.nfe, finite=out.finite, info=info | prompts)


def edit_prompts(sample) -> dict[str, str]:
    """Text prompts for text-conditioned image-to-video models (Wan, LTX-Video): the target prompt, else the
    instruction; the source prompt (used while inverting), else the target prompt. A ``dataset.prompts=FILE``
    override (baselines/text/prompts.py) has already replaced the sample's prompts in the runner. Reconstruction
    (the task's edit is the source's own first frame) uses the source prompt for both, or the empty prompt."""
    if sample.edit_type == "reconstruction":
        prompt = sample.source_prompt or ""
        return {"prompt": prompt, "source_prompt": prompt}
    target = sample.target_prompt or sample.instruction
    if not target:
        raise ValueError(f"{sample.sample_id}: no target_prompt and no instruction: this model needs a text prompt")
    return {"prompt": target, "source_prompt": sample.source_prompt or target}
