"""What every SD-family text-driven baseline shares behind the method interface (videoshop/method.py).

Such a method loads its own models (the class attribute ``uses_video_model = False``: the runner builds no video
pipeline and passes ``device=``), processes every source frame at its own resolution (``handles_any_length``: the runner
does not resample the frame count) and returns one output frame per source frame; the runner resizes them back to
the sample's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from videoshop.options import option

from .models import WEIGHTS, check_weights, resolve_dtype
from .prompts import PromptResolver, Prompts

DTYPES = ("auto", "float32", "float16", "bfloat16")
# baselines/text/prompts.py PromptResolver's options as every text baseline's config gives them (cache_dir: the
# YAML points it at ${paths.cache}/prompts)
PROMPTS = {"captioner": "Salesforce/blip-image-captioning-large", "rewriter": "google/flan-t5-large",
           "rewriter_kind": "seq2seq", "target_fallback": "none", "cache_dir": None}


@dataclass
class TextMethodOptions:
    """The options every text-driven baseline shares (each subclass adds its own; ``base`` is its checkpoint)."""

    weights: str = option("pretrained", "str", "pretrained (hub id / path) | tiny (random stand-ins, tests) | random "
                          "(full size, timing); the YAML follows model= (${model.kind})", choices=WEIGHTS)
    dtype: str = option("auto", "str", "auto = fp16 on CUDA, fp32 on CPU", choices=DTYPES)
    allow_download: bool = option(True, "bool", "fetch missing weights from the hub (false: local files only)")
    seed: int = option(0, "int", "seed of the tiny/random stand-in weights", min=0)
    prompts: dict = option(PROMPTS, "dict", "baselines/text/prompts.py PromptResolver: override file > dataset > "
                           "BLIP caption + rewrite; target_fallback rule: '<source>, <instruction>' when the rewriter "
                           "gives nothing (recorded)")


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
