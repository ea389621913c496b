"""All Videoshop settings in one dataclass; defaults reproduce the authors' public code.

Each field that the paper and the code set differently says so (shared/paper/official_code_notes.md). The inversion's
options are inherited from ``videoshop.inversion.InversionOptions`` (declared there, once); every option carries its
type, range and choices (``videoshop.options.option``), which both ``from_dict`` and the run's config schema check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

from .inversion import InversionOptions
from .options import MAX_BATCH, MAX_STEPS, check_options, option


@dataclass
class VideoshopConfig(InversionOptions):
    # schedule (code: 25 Karras steps, only the last int(25 * 0.55) = 13 used; the paper does not mention strength)
    num_inference_steps: int = option(25, "int", min=2, max=MAX_STEPS)
    strength: float = option(0.55, "float", min=0, max=1, min_open=True)
    # inversion (Eq. 5-7): the InversionOptions fields, plus CFG during inversion (code: none)
    inversion_guidance_scale: float = option(1.0, "float", min=0)
    # latent normalisation (Eq. 8 left): code = per frame, centred; paper = per channel, std only
    normalize: str = option("frame", "str", choices=("frame", "channel", "none"))
    normalize_center: bool = option(True, "bool")
    normalize_inversion_condition: bool = option(True, "bool")  # code normalises the source image latent used as condition
    # rescaling (Eq. 8 right)
    rescale: bool = option(True, "bool")
    rescale_formula: str = option("code", "str", choices=("code", "paper"))
    # SVD conditioning (code: noise_aug 0.2 and a constant CFG 4.0; SVD's defaults are 0.02 and 1.0 -> 3.0)
    min_guidance_scale: float = option(4.0, "float", min=0)
    max_guidance_scale: float = option(4.0, "float", min=0)
    noise_aug_strength: float = option(0.2, "float", min=0)
    fps: int = option(7, "int", min=1, max=1000)
    motion_bucket_id: int = option(127, "int", min=0, max=1023)
    decode_chunk_size: Optional[int] = option(None, "int", nullable=True, min=1, max=MAX_BATCH)  # None = all frames at once (code)
    # frames per VAE encode call; None = decode_chunk_size (all at once)
    encode_chunk_size: Optional[int] = option(None, "int", nullable=True, min=1, max=MAX_BATCH)
    cfg_batch: bool = option(True, "bool")  # CFG as one batch of 2 (diffusers, code) | two passes of batch 1 (less memory)
    state_dtype: str = option("float32", "str", choices=("float32", "float64"))  # dtype of the sampler state

    def __post_init__(self) -> None:
        check_options(self, "Videoshop option")

    def inversion_options(self) -> InversionOptions:
        """The inversion's own options (the InversionOptions part of this config)."""
        return InversionOptions(**{f.name: getattr(self, f.name) for f in fields(InversionOptions)})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "VideoshopConfig":
        """Build from a mapping, refusing unknown keys and invalid values with the key's name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(f"unknown Videoshop option(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
