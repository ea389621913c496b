"""All Videoshop settings in one dataclass; defaults reproduce the authors' public code.

Each field that the paper and the code set differently says so (shared/paper/official_code_notes.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

from .inversion import InversionOptions


@dataclass
class VideoshopConfig:
    # schedule (code: 25 Karras steps, only the last int(25 * 0.55) = 13 used; the paper does not mention strength)
    num_inference_steps: int = 25
    strength: float = 0.55
    # inversion (Eq. 5-7); see InversionOptions for each field
    extrapolate: bool = True
    threshold: Optional[float] = 1.0
    threshold_compare: str = "lower"
    noise: str = "fixed"
    noise_std: str = "x0"
    naive_input_scaling: str = "paper"
    inversion_guidance_scale: float = 1.0  # code: no CFG during inversion
    # which inversion (InversionOptions.inversion): extrapolate (Videoshop) | naive | fixed_point | edict | bdia
    inversion: str = "extrapolate"
    fixed_point_iterations: int = 5  # network evaluations per step of fixed-point inversion (Meiri et al. 2023)
    edict_p: float = 0.93  # EDICT's mixing parameter p (Wallace et al. 2023 use 0.93)
    bdia_gamma: float = 0.5  # BDIA's gamma (ECCV form: 1 = plain Euler, 0 = fully bi-directional)
    # latent normalisation (Eq. 8 left): code = per frame, centred; paper = per channel, std only
    normalize: str = "frame"  # frame | channel | none
    normalize_center: bool = True
    normalize_inversion_condition: bool = True  # code normalises the source image latent used as condition
    # rescaling (Eq. 8 right)
    rescale: bool = True
    rescale_formula: str = "code"  # code | paper
    # SVD conditioning (code: noise_aug 0.2 and a constant CFG 4.0; SVD's defaults are 0.02 and 1.0 -> 3.0)
    min_guidance_scale: float = 4.0
    max_guidance_scale: float = 4.0
    noise_aug_strength: float = 0.2
    fps: int = 7
    motion_bucket_id: int = 127
    decode_chunk_size: Optional[int] = None  # None = all frames at once (code)
    encode_chunk_size: Optional[int] = None  # frames per VAE encode call; None = decode_chunk_size (all at once)
    cfg_batch: bool = True  # CFG as one batch of 2 (diffusers, code) | two passes of batch 1 (less memory)
    state_dtype: str = "float32"  # dtype of the sampler state (float32 | float64)

    def inversion_options(self) -> InversionOptions:
        """The inversion's options are this config's fields of the same names."""
        return InversionOptions(**{f.name: getattr(self, f.name) for f in fields(InversionOptions)})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "VideoshopConfig":
        """Build from a mapping, refusing unknown keys with the key's name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(f"unknown Videoshop option(s) {unknown}; known: {sorted(known)}")
        cfg = cls(**values)
        cfg.inversion_options()  # validates choices
        if cfg.normalize not in ("frame", "channel", "none"):
            raise ValueError(f"normalize={cfg.normalize!r}: expected 'frame', 'channel' or 'none'")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
