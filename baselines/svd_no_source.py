"""'SVD (no src. vid.)' (paper Table 2): image-to-video generation from the edited first frame alone.

The source video is ignored except for its frame count: x_T ~ N(0, sigma_max^2 I), Euler over SVD's full Karras
schedule (``VideoshopPipeline.generate``), conditioned on the edited image. It measures how much of Videoshop's
fidelity to the source motion comes from the inversion, on the same model and data.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from videoshop.method import EditResult, VideoshopMethod, edit_prompts


class SVDNoSource(VideoshopMethod):
    """Plain SVD from the edited first frame. Options are VideoshopConfig fields (only num_inference_steps, the
    conditioning fields, decode_chunk_size and state_dtype matter); conf/method/svd_no_source.yaml sets SVD's own
    defaults (noise_aug 0.02, CFG 1.0 -> 3.0)."""

    def __init__(self, pipeline, name: str = "svd_no_source", height: Optional[int] = None,
                 width: Optional[int] = None, **options: Any):
        super().__init__(pipeline, name, height, width, **options)

    def edit(self, sample, generator: torch.Generator) -> EditResult:
        num_frames = int(sample.source_video.shape[0])
        prompts = edit_prompts(sample) if getattr(self.pipeline, "takes_prompt", False) else {}  # Wan/LTX/CogVideoX
        out = self.pipeline.generate(sample.edited_image, num_frames, config=self.config, generator=generator,
                                     height=self.height, width=self.width,
                                     **({"prompt": prompts["prompt"]} if prompts else {}))
        return EditResult(frames=out.frames, nfe=out.nfe, finite=out.finite, info={"inversion_branches": ""})
