"""The EDM framework as SVD uses it: preconditioning, the sigma schedule and the Euler step (paper Sec. 3.3).

Conventions (paper notation): denoising goes from x_{t+1} at the higher noise level sigma_{t+1} to x_t at the
lower level sigma_t. ``F`` is the raw network output F_theta(c_in x; c_noise); the denoised estimate is
D(x; sigma) = c_skip x + c_out F. Everything here is a plain function of tensors and floats: no scheduler state.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import torch


@dataclass(frozen=True)
class EDMCoefficients:
    """Preconditioning coefficients of EDM (Karras et al. 2022, Table 1) at one noise level."""

    c_skip: float | torch.Tensor
    c_out: float | torch.Tensor
    c_in: float | torch.Tensor
    c_noise: float | torch.Tensor


def edm_coefficients(sigma: float | torch.Tensor, sigma_data: float = 1.0, prediction: str = "v") -> EDMCoefficients:
    """c_skip, c_out, c_in, c_noise at ``sigma``.

    SVD is v-prediction with sigma_data = 1 and continuous timesteps c_noise = log(sigma) / 4:
    c_skip = 1/(sigma^2+1), c_out = -sigma/sqrt(sigma^2+1), c_in = 1/sqrt(sigma^2+1).
    ``prediction="eps"`` gives the epsilon-parameterisation (c_skip = 1, c_out = -sigma) used by e.g. k-diffusion's
    discrete wrappers. At sigma = 0, c_noise is undefined (the network is never evaluated there); we return -inf.
    A tensor ``sigma`` (e.g. one noise level per training sample) gives tensors of its shape, elementwise.
    """
    if isinstance(sigma, torch.Tensor):
        return _edm_coefficients_tensor(sigma, sigma_data, prediction)
    sigma = float(sigma)
    sd2 = sigma_data**2
    c_noise = 0.25 * math.log(sigma) if sigma > 0 else float("-inf")
    if prediction == "v":
        c_skip = sd2 / (sigma**2 + sd2)
        c_out = -sigma * sigma_data / math.sqrt(sigma**2 + sd2)
    elif prediction == "eps":
        c_skip, c_out = 1.0, -sigma
    else:
        raise ValueError(f"unknown prediction type {prediction!r} (expected 'v' or 'eps')")
    c_in = 1.0 / math.sqrt(sigma**2 + sd2)
    return EDMCoefficients(c_skip=c_skip, c_out=c_out, c_in=c_in, c_noise=c_noise)


def _edm_coefficients_tensor(sigma: torch.Tensor, sigma_data: float, prediction: str) -> EDMCoefficients:
    """``edm_coefficients`` elementwise on a tensor of noise levels (the same formulas, torch ops)."""
    sd2 = sigma_data**2
    if prediction == "v":
        c_skip, c_out = sd2 / (sigma**2 + sd2), -sigma * sigma_data / torch.sqrt(sigma**2 + sd2)
    elif prediction == "eps":
        c_skip, c_out = torch.ones_like(sigma), -sigma
    else:
        raise ValueError(f"unknown prediction type {prediction!r} (expected 'v' or 'eps')")
    return EDMCoefficients(c_skip=c_skip, c_out=c_out, c_in=1.0 / torch.sqrt(sigma**2 + sd2),
                           c_noise=0.25 * torch.log(sigma))


def karras_sigmas_at(ramp: torch.Tensor, sigma_min: float = 0.002, sigma_max: float = 700.0,
                     rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) Eq. 5 at positions ``ramp`` in [0, 1] (0 -> sigma_max, 1 -> sigma_min), with a final 0
    appended: (sigma_max^(1/rho) + ramp (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho."""
    min_inv, max_inv = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (max_inv + ramp * (min_inv - max_inv)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 700.0, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) Eq. 5 noise levels at ``num_steps`` evenly spaced positions, descending, with a final 0
    appended (float64, length n + 1)."""
    return karras_sigmas_at(torch.linspace(0, 1, num_steps, dtype=torch.float64), sigma_min, sigma_max, rho)


def truncate_by_strength(sigmas: torch.Tensor, strength: float) -> torch.Tensor:
    """The tail of a descending schedule used by SDEdit-style partial inversion.

    With n steps and strength s, only the last int(n * s) steps run (diffusers' img2img convention, as in the
    authors' code: 25 steps, strength 0.55 -> 13 steps from sigma ~15.6 down to 0). Returns int(n*s)+1 sigmas.
    """
    n = len(sigmas) - 1
    k = min(int(n * strength), n)
    if k < 1:
        raise ValueError(f"strength={strength} with {n} steps leaves no step to run")
    return sigmas[n - k :]


def denoised(x: torch.Tensor, F: torch.Tensor, c: EDMCoefficients) -> torch.Tensor:
    """D(x; sigma) = c_skip x + c_out F (the 'noise removed' term of Eq. 3)."""
    return c.c_skip * x + c.c_out * F


def euler_step(x_next: torch.Tensor, F: torch.Tensor, sigma_next: float, sigma_t: float, sigma_data: float = 1.0) -> torch.Tensor:
    """One deterministic EDM Euler step x_{t+1} -> x_t (paper Eq. 3).

    x_t = x_{t+1} + (sigma_t - sigma_{t+1}) / sigma_{t+1} * (x_{t+1} - D(x_{t+1}; sigma_{t+1})),
    with F the network output evaluated at x_{t+1} and sigma_{t+1}.
    """
    c = edm_coefficients(sigma_next, sigma_data)
    return x_next + (sigma_t - sigma_next) / sigma_next * (x_next - denoised(x_next, F, c))


def inverse_euler_step(x_t: torch.Tensor, F: torch.Tensor, sigma_t: float, sigma_next: float, sigma_data: float = 1.0) -> torch.Tensor:
    """Solve the Euler step (Eq. 3) for x_{t+1}, holding the network output F fixed (paper Eq. 4 / Eq. 7).

    x_{t+1} = (sigma_{t+1} x_t + (sigma_t - sigma_{t+1}) c_out F) / ((sigma_t - sigma_{t+1})(1 - c_skip) + sigma_{t+1}),
    with c_out, c_skip at sigma_{t+1}. It is the exact algebraic inverse of ``euler_step`` for the same F.
    """
    c = edm_coefficients(sigma_next, sigma_data)
    d = sigma_t - sigma_next
    return (sigma_next * x_t + d * c.c_out * F) / (d * (1.0 - c.c_skip) + sigma_next)
