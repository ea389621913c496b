"""Noise-extrapolated inversion carried over to rectified-flow image-to-video models (Wan, LTX-Video).

The paper (Sec. 3) states Videoshop for SVD's EDM parameterisation x = x0 + sigma eps and says it applies to "any
image-to-video diffusion model with an invertible denoising step". Rectified flow (flow matching with straight
paths) is such a model:

    forward process  x_sigma = (1 - sigma) x0 + sigma eps,  sigma in [0, 1]     (``flow_noised``)
    network          v(x, sigma) ~ E[eps - x0 | x_sigma = x]   (velocity, dx/dsigma)
    Euler step       x_t = x_{t+1} + (sigma_t - sigma_{t+1}) v(x_{t+1}, sigma_{t+1})   (Eq. 3's counterpart)

Conventions follow videoshop/edm.py: denoising goes from x_{t+1} at sigma_{t+1} down to x_t at sigma_t; inversion
walks an ASCENDING list [0 = sigma_0 < ... < sigma_T <= 1]. A *flow network* is any callable
``network(x, sigma) -> v`` (videoshop/wan.py and videoshop/ltx.py wrap Wan's and LTX's transformers as one). Everything here is a
plain function of tensors and floats; the per-step choices are the same ``InversionOptions`` as for SVD.

Relation to EDM: dividing by (1 - sigma), x_sigma / (1 - sigma) = x0 + sigma/(1 - sigma) eps, i.e. a flow latent at
sigma is an EDM latent at noise level s = sigma / (1 - sigma), scaled by (1 - sigma) (``edm_equivalent_sigma``).
The threshold Sigma of Eq. 6 is kept in EDM units so that ``threshold: 1.0`` means the same signal-to-noise ratio
for every model family (for a flow model: sigma = 1/2).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .inversion import InversionOptions, InversionResult, StepFamily, invert_along
from .latents import normalize_latents, rescale_latents
from .sampling import sample_along

FlowNetwork = Callable[[torch.Tensor, float], torch.Tensor]
FLOW_INVERSIONS = ("extrapolate", "naive", "fixed_point")


# ----------------------------------------------------------------------------- the flow and its Euler step
def flow_noised(x0: torch.Tensor, eps: torch.Tensor, sigma: float) -> torch.Tensor:
    """The rectified-flow forward process x_sigma = (1 - sigma) x0 + sigma eps (straight path from x0 to eps)."""
    return (1.0 - sigma) * x0 + sigma * eps


def edm_equivalent_sigma(sigma: float) -> float:
    """The EDM noise level of a flow latent: x_sigma / (1 - sigma) = x0 + s eps with s = sigma / (1 - sigma)
    (infinite at sigma = 1, pure noise)."""
    sigma = float(sigma)
    return float("inf") if sigma >= 1.0 else sigma / (1.0 - sigma)


def flow_euler_step(x_next: torch.Tensor, v: torch.Tensor, sigma_next: float, sigma_t: float) -> torch.Tensor:
    """One Euler step of the flow ODE, x_{t+1} -> x_t: x_t = x_{t+1} + (sigma_t - sigma_{t+1}) v(x_{t+1}, sigma_{t+1}).

    The counterpart of Eq. 3 (and FlowMatchEulerDiscreteScheduler.step), with ``v`` evaluated at x_{t+1}.
    """
    return x_next + (sigma_t - sigma_next) * v


def inverse_flow_euler_step(x_t: torch.Tensor, v: torch.Tensor, sigma_t: float, sigma_next: float) -> torch.Tensor:
    """``flow_euler_step`` solved for x_{t+1} with the velocity held fixed (Eq. 4/7's counterpart):

        x_t = x_{t+1} + (sigma_t - sigma_{t+1}) v   =>   x_{t+1} = x_t + (sigma_{t+1} - sigma_t) v.

    Exact when ``v`` is the velocity at the true x_{t+1} (the unknown that Eq. 4 is implicit in); inversion
    methods differ only in which input x_bar_{t+1} they evaluate v at (Eq. 5, Eq. 6, fixed-point iteration).
    """
    return x_t + (sigma_next - sigma_t) * v


# ----------------------------------------------------------------------------- the network input x_bar_{t+1}
def flow_naive_input(x_t: torch.Tensor, sigma_t: Optional[float] = None, sigma_next: Optional[float] = None,
                     scaling: str = "paper") -> torch.Tensor:
    """Eq. 5 carried over: approximate x_{t+1} by x_t. A flow network has no input preconditioning (c_in = 1), so the
    paper's F(c_in^t x_t; c_noise^{t+1}) and the plain x_bar = x_t coincide: v(x_t, sigma_{t+1}) (the levels and
    ``scaling`` are accepted for the common signature of ``StepFamily.naive_input`` and change nothing)."""
    return x_t


def flow_extrapolated_input(x_t: torch.Tensor, x0: torch.Tensor, sigma_t: float, sigma_next: float) -> torch.Tensor:
    """Eq. 6 (first case) carried over unchanged: x_bar_{t+1} = x0 + sigma_{t+1}/sigma_t (x_t - x0).

    Derivation: on a straight flow path x_sigma = (1 - sigma) x0 + sigma eps, x_t - x0 = sigma_t (eps - x0), so
        x0 + sigma_{t+1}/sigma_t (x_t - x0) = x0 + sigma_{t+1} (eps - x0) = (1 - sigma_{t+1}) x0 + sigma_{t+1} eps,
    the next point of the same path: the extrapolation keeps x_t's noise direction eps = x0 + (x_t - x0)/sigma_t and
    moves it to sigma_{t+1}, exactly as in EDM (where x_t - x0 = sigma_t eps). sigma_t = 0 gives inf/NaN (the
    '- Threshold' ablation), not an exception, as in ``videoshop.inversion.extrapolated_network_input``.
    """
    ratio = torch.as_tensor(sigma_next, dtype=torch.float64) / torch.as_tensor(sigma_t, dtype=torch.float64)
    return x0 + (x_t - x0) * ratio.to(x_t.dtype)


def flow_noised_input(x0: torch.Tensor, eps: torch.Tensor, sigma_next: float, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Eq. 6 (second case, below the threshold) carried over: x_bar_{t+1} = (1 - sigma_{t+1}) x0 + sigma_{t+1} scale eps.

    EDM's x0 + N(0, sigma^2) is a sample of the EDM forward process at sigma_{t+1}; the flow forward process at
    sigma_{t+1} (``flow_noised``) shrinks the data by (1 - sigma_{t+1}) as well. ``scale`` is std(x0) in the
    authors' code (``noise_std="x0"``) and 1 in the paper.
    """
    return (1.0 - sigma_next) * x0 + eps * (sigma_next * scale)


def flow_uses_extrapolation(sigma_t: float, sigma_next: float, threshold: Optional[float], compare: str = "lower") -> bool:
    """The branch condition of Eq. 6 with Sigma in EDM units: extrapolate when the compared flow sigma's EDM-equivalent
    noise level sigma / (1 - sigma) exceeds Sigma (always when Sigma is None)."""
    if threshold is None:
        return True
    return edm_equivalent_sigma(sigma_t if compare == "lower" else sigma_next) > threshold


FLOW_STEPS = StepFamily("flow", flow_naive_input, flow_extrapolated_input, flow_noised_input, flow_uses_extrapolation,
                        inverse_flow_euler_step, FLOW_INVERSIONS)


# ----------------------------------------------------------------------------- inversion and generation
def invert_flow(
    x0: torch.Tensor,
    sigmas_up: torch.Tensor,
    network: FlowNetwork,
    options: InversionOptions = InversionOptions(),
    generator: Optional[torch.Generator] = None,
    keep_trajectory: bool = False,
    progress: Optional[Callable[[int], None]] = None,
) -> InversionResult:
    """Invert clean flow latents ``x0`` along the ascending ``sigmas_up`` (paper Sec. 3.5 on a flow model).

    At each step the network input x_bar_{t+1} is chosen as in Eq. 5/6 (``flow_naive_input``,
    ``flow_extrapolated_input``, ``flow_noised_input`` below the threshold) or solved by fixed-point iteration, and
    the Euler step is inverted exactly for it (``inverse_flow_euler_step``). EDICT and BDIA are refused (their
    coupled samplers are written for EDM steps only). Same options and bookkeeping as ``videoshop.inversion.invert``.
    """
    return invert_along(FLOW_STEPS, x0, sigmas_up, network, options, generator, keep_trajectory, progress)


def sample_flow_euler(x: torch.Tensor, sigmas_down: torch.Tensor, network: FlowNetwork,
                      progress: Optional[Callable[[int], None]] = None,
                      callback: Optional[Callable] = None) -> tuple[torch.Tensor, int]:
    """Run ``flow_euler_step`` from sigmas_down[0] to sigmas_down[-1] (FlowMatchEulerDiscreteScheduler's sampler);
    returns (x at the last sigma, network evaluations). ``callback``: see ``videoshop.sampling.sample_along``."""
    return sample_along(flow_euler_step, x, sigmas_down, network, progress, callback)


# ----------------------------------------------------------------------------- Eq. 8 on flow latents
def frames_first(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, F, h, w), the layout of Wan's and LTX's (unpacked) latents -> (B, F, C, h, w), the layout Eq. 8's
    functions (videoshop/latents.py) reduce over."""
    return latents.permute(0, 2, 1, 3, 4)


def channels_first(latents: torch.Tensor) -> torch.Tensor:
    """(B, F, C, h, w) -> (B, C, F, h, w), the inverse of ``frames_first``."""
    return latents.permute(0, 2, 1, 3, 4)


def normalize_flow_latents(x_in: torch.Tensor, granularity: str = "frame", center: bool = True) -> torch.Tensor:
    """Eq. 8 (left) for (B, F, C, h, w) flow latents: x_hat_0 = x_in / sigma_in (code: centred, per frame).

    Why it carries over unchanged: ``x_in`` is the model-space latent (the VAE latent standardised with the model's
    own statistics: Wan's latents_mean/std, LTX's), the data end x0 of the flow. Normalising it to unit variance per
    frame puts it on the scale of the noise end eps ~ N(0, I), which is what makes the extrapolated and noised
    inputs of Eq. 6 (both mixtures of x0 and an eps-like direction) lie where the model was trained, exactly the
    reason the paper gives for SVD (Sec. 3.6). Same statistics and options as ``videoshop.latents.normalize_latents``.
    """
    return normalize_latents(x_in, granularity, center)


def rescale_flow_latents(x0: torch.Tensor, image_latent: torch.Tensor, formula: str = "code") -> torch.Tensor:
    """Eq. 8 (right) for (B, F, C, h, w) flow latents: map the per-channel statistics of output latent frame 0 onto
    those of the edited image's model-space latent (B, 1, C, h, w).

    Why it carries over: Wan's and LTX's causal VAEs encode pixel frame 0 alone into latent frame 0, so the edited
    image's latent is the target of output latent frame 0, as SVD's per-frame image latent is; the per-channel affine
    map computed on frame 0 is applied to every frame (``videoshop.latents.rescale_latents``).
    """
    return rescale_latents(x0, image_latent, formula)
