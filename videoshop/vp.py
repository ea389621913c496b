"""Noise-extrapolated inversion for variance-preserving v-prediction models sampled with DDIM (CogVideoX-I2V).

CogVideoX is not a flow model: it is a DDPM-style VP diffusion model with v-prediction and a zero-terminal-SNR
schedule, sampled by DDIM (CogVideoXDDIMScheduler, eta = 0). With alpha_bar = ab at a timestep,

    forward process  x = sqrt(ab) x0 + sqrt(1 - ab) eps                    (``vp_noised``)
    network          v = sqrt(ab) eps - sqrt(1 - ab) x0                    (v-prediction)
    DDIM step        x_t = sqrt(ab_t) x0_hat + sqrt(1 - ab_t) eps_hat, x0_hat, eps_hat from (x_{t+1}, v).

Relation to EDM (how it fits the paper): x / sqrt(ab) = x0 + sigma eps with sigma = sqrt((1 - ab) / ab), and v is
exactly SVD's network output F with c_in = sqrt(ab) = 1/sqrt(sigma^2 + 1), c_skip = 1/(sigma^2 + 1),
c_out = -sigma/sqrt(sigma^2 + 1); DDIM is then EDM's Euler step (Eq. 3) in the scaled variable. We keep the VP
variable instead of reusing videoshop/edm.py because the first timestep of a zero-terminal-SNR schedule has ab = 0,
i.e. sigma = inf, where the EDM form is undefined and the VP form is not. Writing ab = cos^2(phi), x = cos(phi) x0 +
sin(phi) eps and v = cos(phi) eps - sin(phi) x0, so a DDIM step is a rotation by phi_{t+1} - phi_t.

A *VP network* is ``network(x, ab) -> v`` (the wrapper maps ab back to its integer timestep). Noise-level lists hold
ab values ordered by noise like the flow and EDM lists: inversion walks ascending noise [1 (clean) = ab_0 > ab_1 >
... > ab_T], generation the reverse. Eq. 6's threshold Sigma is compared in EDM units (``vp_sigma``).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from .inversion import InversionOptions, InversionResult, StepFamily, invert_along, uses_extrapolation
from .sampling import sample_along

VPNetwork = Callable[[torch.Tensor, float], torch.Tensor]
VP_INVERSIONS = ("extrapolate", "naive", "fixed_point")


def vp_sigma(ab: float) -> float:
    """The EDM noise level of a VP latent at alpha_bar = ab: sigma = sqrt((1 - ab) / ab) (inf at ab = 0)."""
    ab = float(ab)
    return float("inf") if ab <= 0.0 else math.sqrt(max(1.0 - ab, 0.0) / ab)


def vp_noised(x0: torch.Tensor, eps: torch.Tensor, ab: float) -> torch.Tensor:
    """The VP forward process sqrt(ab) x0 + sqrt(1 - ab) eps."""
    return math.sqrt(ab) * x0 + math.sqrt(1.0 - ab) * eps


def _rotation(ab_next: float, ab_t: float) -> tuple[float, float]:
    """cos and sin of the DDIM rotation angle phi_{t+1} - phi_t (ab = cos^2 phi)."""
    c_n, s_n, c_t, s_t = math.sqrt(ab_next), math.sqrt(1.0 - ab_next), math.sqrt(ab_t), math.sqrt(1.0 - ab_t)
    return c_t * c_n + s_t * s_n, s_n * c_t - c_n * s_t


def ddim_step(x_next: torch.Tensor, v: torch.Tensor, ab_next: float, ab_t: float) -> torch.Tensor:
    """One deterministic DDIM step x_{t+1} -> x_t for a v-prediction model (CogVideoXDDIMScheduler.step, eta = 0):
    x0_hat = sqrt(ab) x - sqrt(1 - ab) v, eps_hat = sqrt(1 - ab) x + sqrt(ab) v (ab at t+1), then
    x_t = sqrt(ab_t) x0_hat + sqrt(1 - ab_t) eps_hat = cos(d) x_{t+1} - sin(d) v with d = phi_{t+1} - phi_t."""
    cos_d, sin_d = _rotation(ab_next, ab_t)
    return cos_d * x_next - sin_d * v


def inverse_ddim_step(x_t: torch.Tensor, v: torch.Tensor, ab_t: float, ab_next: float) -> torch.Tensor:
    """``ddim_step`` solved for x_{t+1} with v held fixed (Eq. 4/7's counterpart): x_{t+1} = (x_t + sin(d) v) / cos(d).
    cos(d) > 0 for any two levels of a schedule, so the inverse always exists (also from ab = 0)."""
    cos_d, sin_d = _rotation(ab_next, ab_t)
    return (x_t + sin_d * v) / cos_d


def vp_naive_input(x_t: torch.Tensor, ab_t: float, ab_next: float, scaling: str = "paper") -> torch.Tensor:
    """Eq. 5 in VP variables: the network sees F(c_in^t x_t; c_noise^{t+1}), and c_in^t times the EDM latent is the
    VP latent itself, so the paper's form is x_t at timestep t+1; ``scaling="next"`` (c_in^{t+1}) rescales it by
    sqrt(ab_{t+1} / ab_t)."""
    return x_t if scaling == "paper" else x_t * math.sqrt(ab_next / ab_t)


def vp_extrapolated_input(x_t: torch.Tensor, x0: torch.Tensor, ab_t: float, ab_next: float) -> torch.Tensor:
    """Eq. 6 (first case) in VP variables: keep x_t's noise direction eps_t = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t)
    and move it to the next level: x_bar = sqrt(ab_{t+1}) x0 + sqrt(1 - ab_{t+1}) eps_t.

    Derivation: multiply Eq. 6 in EDM units, x0 + sigma_{t+1}/sigma_t (x_t / sqrt(ab_t) - x0), by sqrt(ab_{t+1}) and
    use sqrt(ab) sigma = sqrt(1 - ab). ab_t = 1 (the clean level) divides by 0: inf/NaN, the '- Threshold' ablation.
    """
    denom = torch.as_tensor(1.0 - ab_t, dtype=torch.float64).sqrt().to(x_t.dtype)
    return math.sqrt(ab_next) * x0 + math.sqrt(1.0 - ab_next) * (x_t - math.sqrt(ab_t) * x0) / denom


def vp_noised_input(x0: torch.Tensor, eps: torch.Tensor, ab_next: float, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Eq. 6 (second case) in VP variables: EDM's x0 + sigma_{t+1} scale eps times sqrt(ab_{t+1}), i.e.
    sqrt(ab_{t+1}) x0 + sqrt(1 - ab_{t+1}) scale eps."""
    return math.sqrt(ab_next) * x0 + eps * (math.sqrt(1.0 - ab_next) * scale)


def vp_uses_extrapolation(ab_t: float, ab_next: float, threshold: Optional[float], compare: str = "lower") -> bool:
    """Eq. 6's branch condition with Sigma in EDM units: the compared level's sigma = sqrt((1 - ab) / ab)."""
    return uses_extrapolation(vp_sigma(ab_t), vp_sigma(ab_next), threshold, compare)


VP_STEPS = StepFamily("DDIM (VP)", vp_naive_input, vp_extrapolated_input, vp_noised_input, vp_uses_extrapolation,
                      inverse_ddim_step, VP_INVERSIONS)


def invert_vp(x0: torch.Tensor, abs_up: torch.Tensor, network: VPNetwork, options: InversionOptions = InversionOptions(),
              generator: Optional[torch.Generator] = None, keep_trajectory: bool = False,
              progress: Optional[Callable[[int], None]] = None) -> InversionResult:
    """Invert clean latents along ``abs_up`` (alpha_bar values by ascending noise, abs_up[0] = 1) with the network
    input chosen as in Eq. 5/6 (or fixed-point iteration) and the DDIM step inverted exactly for it."""
    return invert_along(VP_STEPS, x0, abs_up, network, options, generator, keep_trajectory, progress)


def sample_ddim(x: torch.Tensor, abs_down: torch.Tensor, network: VPNetwork,
                progress: Optional[Callable[[int], None]] = None,
                callback: Optional[Callable] = None) -> tuple[torch.Tensor, int]:
    """Run ``ddim_step`` along ``abs_down`` (alpha_bar by descending noise, ending at 1); returns (x, evaluations).
    ``callback``: see ``videoshop.sampling.sample_along``."""
    return sample_along(ddim_step, x, abs_down, network, progress, callback)
