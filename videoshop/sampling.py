"""Sampling over a descending sigma list: deterministic EDM Euler (paper Eq. 3; k-diffusion's sample_euler), the
coupled samplers of the exact inversions (EDICT, BDIA), and AnimateLCM's stochastic consistency sampler."""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .edm import denoised, edm_coefficients, euler_step
from .inversion import InversionOptions, InversionResult, Network, bdia_step, edict_denoise_step


class StopSampling(Exception):
    """Raised by a step callback to end sampling after the current step (diffusers' ``pipe.interrupt``)."""


StepCallback = Callable[[int, float, torch.Tensor], Optional[torch.Tensor]]


def sample_along(
    step: Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor],
    x: torch.Tensor,
    levels_down: torch.Tensor,
    network: Network,
    progress: Optional[Callable[[int], None]] = None,
    callback: Optional[StepCallback] = None,
) -> tuple[torch.Tensor, int]:
    """A deterministic sampler over any family's step: ``x = step(x, network(x, level_n), level_n, level_t)`` from
    levels_down[0] to levels_down[-1] (EDM Euler, Eq. 3; flow Euler; DDIM); returns (x at the last level, network
    evaluations). The step loop, progress and callbacks, written once for every family.

    ``callback(i, level_t, x_t)`` runs after each step; a tensor it returns replaces x_t (diffusers'
    ``callback_on_step_end`` contract); it may raise ``StopSampling`` to end the loop early.
    """
    nfe = 0
    for i in range(len(levels_down) - 1):
        level_n, level_t = float(levels_down[i]), float(levels_down[i + 1])
        x = step(x, network(x, level_n).to(x.dtype), level_n, level_t)
        nfe += 1
        if progress is not None:
            progress(i)
        if callback is not None:
            try:
                new = callback(i, level_t, x)
            except StopSampling:
                break
            x = x if new is None else new.to(x.device, x.dtype)
    return x, nfe


def sample_euler(
    x: torch.Tensor,
    sigmas_down: torch.Tensor,
    network: Network,
    progress: Optional[Callable[[int], None]] = None,
    callback: Optional[StepCallback] = None,
) -> tuple[torch.Tensor, int]:
    """Run Eq. 3 from sigmas_down[0] to sigmas_down[-1]; returns (x at the last sigma, network evaluations).
    ``callback``: see ``sample_along``."""
    return sample_along(euler_step, x, sigmas_down, network, progress, callback)


def sample_edict(x: torch.Tensor, y: Optional[torch.Tensor], sigmas_down: torch.Tensor, network: Network,
                 p: float = 0.93, progress: Optional[Callable[[int], None]] = None) -> tuple[torch.Tensor, int]:
    """EDICT generation (Wallace et al. 2023): ``edict_denoise_step`` on the coupled (x, y) pair, 2 NFE per step.

    ``y`` is the second sequence from ``invert_edict`` (``None``: start from y = x, as EDICT does from noise).
    Returns x at the last sigma (EDICT outputs one of the two nearly equal sequences).
    """
    y = x.clone() if y is None else y
    nfe = 0
    for i in range(len(sigmas_down) - 1):
        x, y = edict_denoise_step(x, y, network, float(sigmas_down[i]), float(sigmas_down[i + 1]), p)
        nfe += 2
        if progress is not None:
            progress(i)
    return x, nfe


def sample_bdia(z_top: torch.Tensor, z_below: Optional[torch.Tensor], sigmas_down: torch.Tensor, network: Network,
                gamma: float = 0.5, progress: Optional[Callable[[int], None]] = None) -> tuple[torch.Tensor, int]:
    """BDIA generation: z_T -> z_{T-1} by one Euler step unless ``z_below`` (z_{T-1} from ``invert_bdia``) is given,
    then ``bdia_step`` (z_{i+1}, z_i) -> z_{i-1} down to sigmas_down[-1]. One network evaluation per step."""
    sig = [float(s) for s in sigmas_down]  # descending: sig[k] is the level of the k-th state from the top
    nfe = 0
    if z_below is None:
        z_below = euler_step(z_top, network(z_top, sig[0]).to(z_top.dtype), sig[0], sig[1])
        nfe += 1
    z_next, z_i = z_top, z_below
    for k in range(1, len(sig) - 1):
        F_i = network(z_i, sig[k]).to(z_i.dtype)
        z_next, z_i = z_i, bdia_step(z_next, z_i, F_i, sig[k - 1], sig[k], sig[k + 1], gamma)
        nfe += 1
        if progress is not None:
            progress(k)
    return z_i, nfe


def regenerate(inverted: InversionResult, sigmas_down: torch.Tensor, network: Network,
               options: InversionOptions = InversionOptions(),
               progress: Optional[Callable[[int], None]] = None,
               callback: Optional[StepCallback] = None) -> tuple[torch.Tensor, int]:
    """Generate from an inversion with the sampler that matches it (paper Sec. 3.5 'Diffusion' stage):
    EDICT's and BDIA's own coupled samplers for their inversions, stock Euler (Eq. 3) for all others.
    ``callback``: see ``sample_euler`` (Euler only: EDICT's and BDIA's coupled states have no single latent to
    replace, so a callback with them is refused)."""
    if callback is not None and inverted.method in ("edict", "bdia"):
        raise ValueError(f"callback_on_step_end is supported with Euler sampling, not with inversion={inverted.method}")
    if inverted.method == "edict":
        return sample_edict(inverted.latents, inverted.aux, sigmas_down, network, options.edict_p, progress)
    if inverted.method == "bdia":
        return sample_bdia(inverted.latents, inverted.aux, sigmas_down, network, options.bdia_gamma, progress)
    return sample_euler(inverted.latents, sigmas_down, network, progress, callback)


def sample_consistency(x: torch.Tensor, sigmas_down: torch.Tensor, network: Network,
                       generator: Optional[torch.Generator] = None,
                       progress: Optional[Callable[[int], None]] = None) -> tuple[torch.Tensor, int]:
    """AnimateLCM's multistep consistency sampler (AnimateLCMSVDStochasticIterativeScheduler.step):
    x_t = D(x_{t+1}; sigma_{t+1}) + sigma_t z, with FRESH z ~ N(0, I) at every step (none on the last, sigma = 0).

    Not invertible: x_{t+1} reaches x_t only through D, and z is new randomness, so x_t does not determine x_{t+1}
    (see docs/baselines.md). Its deterministic counterpart, reusing the model's own noise estimate
    (x_{t+1} - D) / sigma_{t+1} instead of z, is exactly the Euler step of Eq. 3 (``sample_euler``).
    """
    nfe = 0
    for i in range(len(sigmas_down) - 1):
        sigma_next, sigma_t = float(sigmas_down[i]), float(sigmas_down[i + 1])
        x0_hat = denoised(x, network(x, sigma_next).to(x.dtype), edm_coefficients(sigma_next))
        nfe += 1
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
        x = x0_hat + z * sigma_t if sigma_t > 0 else x0_hat
        if progress is not None:
            progress(i)
    return x, nfe
