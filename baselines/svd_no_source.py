"""'SVD (no src. vid.)' (paper Table 2): image-to-video generation from the edited first frame alone.

The source video is ignored except for its frame count: x_T ~ N(0, sigma_max^2 I), Euler over SVD's full Karras
schedule (``VideoshopPipeline.generate``), conditioned on the edited image. It measures how much of Videoshop's
fidelity to the source motion comes from the inversion, on the same model and data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

import torch

from videoshop.config import VideoshopConfig
from videoshop.method import EditResult, VideoshopMethod, edit_prompts
from videoshop.options import build_options, option_like, split_options


@dataclass
class SVDNoSourceOptions:
    """The Videoshop options plain SVD sampling reads, with SVD's own defaults (stock sampling: pure noise, the full
    25-step Karras schedule, noise_aug 0.02, CFG ramp 1.0 -> 3.0). Set the conditioning to Videoshop's (0.2, 4.0)
    to compare conditioning-for-conditioning."""

    num_inference_steps: int = option_like(VideoshopConfig, "num_inference_steps", 25, "the full Karras schedule")
    noise_aug_strength: float = option_like(VideoshopConfig, "noise_aug_strength", 0.02, "SVD's default (Videoshop: 0.2)")
    min_guidance_scale: float = option_like(VideoshopConfig, "min_guidance_scale", 1.0, "SVD's CFG ramp starts here")
    max_guidance_scale: float = option_like(VideoshopConfig, "max_guidance_scale", 3.0, "... and ends here")
    fps: int = option_like(VideoshopConfig, "fps", 7, "SVD's fps micro-condition")
    motion_bucket_id: int = option_like(VideoshopConfig, "motion_bucket_id", 127, "SVD's motion micro-condition")
    decode_chunk_size: Optional[int] = option_like(VideoshopConfig, "decode_chunk_size", None,
                                                   "frames per VAE decode call (null: all)")
    state_dtype: str = option_like(VideoshopConfig, "state_dtype", "float32", "dtype of the sampler state")


class SVDNoSource(VideoshopMethod):
    """Plain SVD from the edited first frame. Its options (``SVDNoSourceOptions``) are the Videoshop options
    generation reads, with SVD's own defaults; any other VideoshopConfig field is accepted too."""

    options = SVDNoSourceOptions

    def __init__(self, pipeline, name: str = "svd_no_source", height: Optional[int] = None,
                 width: Optional[int] = None, **options: Any):
        own, rest = split_options(SVDNoSourceOptions, options)
        o = build_options(SVDNoSourceOptions, own, owner="videoshop_bench.baselines.svd_no_source.SVDNoSource")
        super().__init__(pipeline, name, height, width, **asdict(o), **rest)

    def edit(self, sample, generator: torch.Generator) -> EditResult:
        num_frames = int(sample.source_video.shape[0])
        prompts = edit_prompts(sample) if getattr(self.pipeline, "takes_prompt", False) else {}  # Wan/LTX/CogVideoX
        out = self.pipeline.generate(sample.edited_image, num_frames, config=self.config, generator=generator,
                                     height=self.height, width=self.width,
                                     **({"prompt": prompts["prompt"]} if prompts else {}))
        return EditResult(frames=out.frames, nfe=out.nfe, finite=out.finite, info={"inversion_branches": ""})
