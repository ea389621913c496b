"""Videoshop (Fan, Bhattad, Krishna 2024) as a plain library: EDM inversion with noise extrapolation, latent
normalisation and rescaling, and a diffusers-style pipeline over Stable Video Diffusion components."""

from . import _compat  # noqa: F401  (must run before torchvision / diffusers / transformers are imported)

from .config import VideoshopConfig  # noqa: F401
from .edm import edm_coefficients, euler_step, inverse_euler_step, karras_sigmas, truncate_by_strength  # noqa: F401
from .inversion import InversionOptions, invert  # noqa: F401
from .latents import normalize_latents, rescale_latents  # noqa: F401
from .sampling import sample_euler  # noqa: F401


def __getattr__(name):  # lazy: importing the pipeline pulls in diffusers
    if name in ("VideoshopPipeline", "VideoshopOutput"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
