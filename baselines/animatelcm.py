"""Videoshop on another image-to-video model (paper Sec. 4.2, Fig. 7a): AnimateLCM-SVD-xt (Wang et al. 2024).

AnimateLCM-SVD-xt is SVD-xt's UNet distilled by (decoupled) consistency learning; the hub repository
wangfuyun/AnimateLCM-SVD-xt holds UNet state dicts (AnimateLCM-SVD-xt.safetensors, tuned from SVD-xt;
AnimateLCM-SVD-xt-1.1.safetensors, from SVD-xt 1.1) that load into the base SVD-xt pipeline's UNet.

Its reference scheduler (AnimateLCMSVDStochasticIterativeScheduler) keeps SVD's parameterisation: the same
boundary-condition scalings as SVD's v-prediction (c_skip = 1/(sigma^2+1), c_out = -sigma/sqrt(sigma^2+1), with
sigma_data = 1), the same c_in and c_noise = log(sigma)/4, so its denoiser D(x; sigma) is exactly the one our
SVDNetwork and ``videoshop.edm.denoised`` compute. What differs:
- the schedule: Karras sigmas (sigma_min 0.002, sigma_max 700, rho 7) sampled at n of 40 "training" indices,
  ramp = (0, r, 2r, ..., (n-1)r) / 39 with r = 40 // n, then 0 (``animatelcm_sigmas``);
- the step: x_t = D(x_{t+1}; sigma_{t+1}) + sigma_t z with FRESH noise z ~ N(0, I) (``sample_consistency``).

Why that step cannot be inverted: x_{t+1} enters x_t only through D(x_{t+1}), and a consistency model is trained
so that D is (nearly) the same for every point of one ODE trajectory, so D forgets where on the trajectory x_{t+1}
was; the rest of x_t is new randomness z. Given x_t, no x_{t+1} is determined (Eq. 4 has no counterpart: the map
x_{t+1} -> x_t is not a function of x_{t+1} alone, and its deterministic part is many-to-one). Inverting it would
mean recovering the z's, which are independent of the video.

The deterministic variant used here replaces z by the model's own noise estimate (x_{t+1} - D) / sigma_{t+1}
(the DDIM choice): x_t = D + sigma_t (x_{t+1} - D) / sigma_{t+1}, which is exactly the EDM Euler step (Eq. 3).
Every inversion (Videoshop's extrapolation, naive, fixed-point, EDICT, BDIA) then applies unchanged over
AnimateLCM's few sigmas: ``sampler="deterministic"``. ``sampler="stochastic"`` is refused for editing with that
explanation (plain generation with it is ``VideoshopPipeline.generate(..., sampler="consistency")``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch

from videoshop.config import VideoshopConfig
from videoshop.edm import karras_sigmas_at, truncate_by_strength
from videoshop.method import EditResult
from videoshop.loading import MissingWeightsError, downloads_possible
from videoshop.options import MAX_STEPS, build_options, option, split_options

HUB_ID = "wangfuyun/AnimateLCM-SVD-xt"
WEIGHTS_FILE = "AnimateLCM-SVD-xt.safetensors"
SVD_UNET_CHANNELS = (320, 640, 1280, 1280)

NOT_INVERTIBLE = (
    "AnimateLCM's stochastic consistency step x_t = D(x_{t+1}) + sigma_t * z draws fresh noise z and depends on "
    "x_{t+1} only through the consistency output D, which is (by training) the same along a whole ODE trajectory, "
    "so x_t does not determine x_{t+1} and no inversion exists; use sampler=deterministic (z replaced by the "
    "model's noise estimate, i.e. the Euler/DDIM step of Eq. 3, which every inversion supports)")


def animatelcm_sigmas(num_inference_steps: int, sigma_min: float = 0.002, sigma_max: float = 700.0,
                      rho: float = 7.0, num_train_timesteps: int = 40) -> torch.Tensor:
    """AnimateLCM-SVD's inference sigmas, descending with a final 0 (float64; the reference set_timesteps):
    Karras sigmas at ramp = (0, r, ..., (n-1) r) / (N - 1), r = N // n, N = num_train_timesteps."""
    n = int(num_inference_steps)
    if not 1 <= n <= num_train_timesteps:
        raise ValueError(f"num_inference_steps={n}: AnimateLCM supports 1..{num_train_timesteps} steps")
    ramp = torch.arange(n, dtype=torch.float64) * (num_train_timesteps // n) / (num_train_timesteps - 1)
    return karras_sigmas_at(ramp, sigma_min, sigma_max, rho)


def resolve_animatelcm_weights(weights: str, filename: str = WEIGHTS_FILE, allow_download: bool = True) -> str:
    """A local .safetensors path for ``weights`` (a file, a directory holding ``filename``, or a hub id), or a
    one-line MissingWeightsError saying what to set."""
    if os.path.isfile(weights):
        return weights
    if os.path.isdir(weights):
        path = os.path.join(weights, filename)
        if os.path.isfile(path):
            return path
        raise MissingWeightsError(f"method.weights={weights} holds no {filename}: set method.weights_file or point "
                                  f"method.weights at the .safetensors file")
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(weights, filename, local_files_only=True)
    except Exception:  # noqa: BLE001  (not cached)
        pass
    if not downloads_possible(allow_download):
        raise MissingWeightsError(f"AnimateLCM weights {weights}/{filename} are not cached and cannot be downloaded "
                                  f"here: set method.weights=PATH to a local copy of {filename}")
    return hf_hub_download(weights, filename)


def load_animatelcm_unet(unet, path: str) -> None:
    """Load an AnimateLCM-SVD-xt UNet state dict into SVD-xt's UNet in place (strict: every key must match)."""
    from safetensors.torch import load_file

    state = load_file(path)
    try:
        unet.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise MissingWeightsError(f"{path} does not fit this UNet (load model=svd_xt as the base): {first}") from None


@dataclass
class AnimateLCMOptions:
    """AnimateLCM's own options (every other option is Videoshop's). Its recommendations (4-8 steps, CFG 1 -> 1.2)
    are set in conf/method/animatelcm.yaml as Videoshop options."""

    weights: Optional[str] = option("auto", "str", "auto = wangfuyun/AnimateLCM-SVD-xt (skipped for the tiny stand-in "
                                    "UNet) | hub id | local path | null (load nothing)", nullable=True)
    weights_file: str = option(WEIGHTS_FILE, "str", "the UNet state dict in the hub repository (or -1.1 for SVD-xt 1.1)")
    sampler: str = option("deterministic", "str", "deterministic: Euler/DDIM-like step over AnimateLCM's sigmas "
                          "(invertible) | stochastic: refused (the consistency step re-noises with fresh noise and "
                          "cannot be inverted; docs/baselines.md)", choices=("deterministic", "stochastic"))
    num_train_timesteps: int = option(40, "int", "AnimateLCM's training indices the schedule samples", min=1,
                                      max=MAX_STEPS)
    allow_download: bool = option(True, "bool", "fetch the weights from the hub when not cached")


class AnimateLCMVideoshop:
    """Videoshop (or any inversion option) with AnimateLCM's UNet and schedule, deterministic sampler.

    weights: "auto" loads wangfuyun/AnimateLCM-SVD-xt into the pipeline's UNet unless that UNet is not SVD-sized
    (the tiny test stand-in, which is used as is); a hub id or local path loads that; null loads nothing.
    Other options are VideoshopConfig fields; the schedule is ``animatelcm_sigmas(num_inference_steps)`` truncated
    by ``strength``.
    """

    uses_video_model = True
    options = AnimateLCMOptions
    inner_options = VideoshopConfig  # every other method.<key>

    def __init__(self, pipeline, name: str = "animatelcm", height: Optional[int] = None, width: Optional[int] = None,
                 **options: Any):
        own, rest = split_options(AnimateLCMOptions, options)
        o = build_options(AnimateLCMOptions, own, owner="videoshop_bench.baselines.animatelcm.AnimateLCMVideoshop")
        if o.sampler == "stochastic":
            raise ValueError(NOT_INVERTIBLE)
        self.pipeline, self.name = pipeline, name
        self.height, self.width = height, width
        self.config = VideoshopConfig.from_dict(rest)
        self.num_train_timesteps = int(o.num_train_timesteps)
        weights, weights_file, allow_download = o.weights, o.weights_file, o.allow_download
        self.sigmas = truncate_by_strength(animatelcm_sigmas(self.config.num_inference_steps,
                                                             num_train_timesteps=self.num_train_timesteps),
                                           self.config.strength)
        if weights == "auto":
            svd_sized = tuple(pipeline.unet.config.block_out_channels) == SVD_UNET_CHANNELS
            weights = HUB_ID if svd_sized else None
        self.weights = None if weights is None else resolve_animatelcm_weights(weights, weights_file, allow_download)
        if self.weights is not None:
            load_animatelcm_unet(pipeline.unet, self.weights)

    def edit(self, sample, generator: torch.Generator) -> EditResult:
        out = self.pipeline(video=sample.source_video, edited_image=sample.edited_image, config=self.config,
                            generator=generator, height=self.height, width=self.width, sigmas=self.sigmas)
        return EditResult(frames=out.frames, nfe=out.nfe, finite=out.finite,
                          info={"inversion_branches": "".join(b[0] for b in out.inversion_branches),
                                "weights": self.weights or "none (stand-in UNet)"})
