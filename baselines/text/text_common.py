"""Small helpers FateZero and Spacetime share: device/dtype, frames <-> tensors, CLIP prompt embeddings, prompts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np
import torch


def resolve_device_dtype(device: Any, dtype: str) -> tuple[torch.device, torch.dtype]:
    from videoshop.models import resolve_device, resolve_dtype

    dev = device if isinstance(device, torch.device) else resolve_device(str(device))
    return dev, resolve_dtype(str(dtype), dev)


def frames_to_tensor(frames: np.ndarray, device, dtype) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) in [-1, 1]."""
    return (torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1).to(device, dtype)


def tensor_to_frames(x: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) in [-1, 1] -> (T, H, W, 3) uint8 (non-finite values become 0)."""
    x = torch.nan_to_num(x.float(), nan=0.0, posinf=1.0, neginf=-1.0)
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def encode_prompt(text_encoder, tokenizer, prompt: str, device) -> torch.Tensor:
    """CLIP text embeddings (1, 77, d) of ``prompt``, padded to the tokenizer's max length as SD pipelines do."""
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    return text_encoder(ids)[0]


@dataclass
class ResolvedPrompts:
    source_prompt: str
    target_prompt: str
    source_how: str
    target_how: str

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_sample_prompts(sample, options: Optional[dict] = None) -> ResolvedPrompts:
    """Source and target prompts of a sample, through the shared prompt module when it is present (branch i10's
    baselines/text/prompts.py), else from the sample's own prompts (a one-line SampleError when they are missing)."""
    try:
        from . import prompts as shared  # noqa: F401
    except ImportError:
        shared = None
    if shared is not None and hasattr(shared, "resolve_prompts"):
        p = shared.resolve_prompts(sample, **(options or {}))
        d = p.to_dict() if hasattr(p, "to_dict") else dict(vars(p))
        return ResolvedPrompts(d["source_prompt"], d["target_prompt"], str(d.get("source_how", d.get("source", ""))),
                               str(d.get("target_how", d.get("target", ""))))
    from datasets.schema import SampleError

    if not sample.source_prompt or not sample.target_prompt:
        missing = "source_prompt" if not sample.source_prompt else "target_prompt"
        raise SampleError(f"{sample.sample_id}: no {missing} (set dataset.prompts=FILE or give the sample its prompts)")
    return ResolvedPrompts(sample.source_prompt, sample.target_prompt, "dataset", "dataset")
