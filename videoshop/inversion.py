"""EDM inversion of a latent video: naive (Eq. 5) and noise-extrapolated (Eq. 6-7) (paper Sec. 3.4-3.5).

A *network* here is any callable ``network(x, sigma) -> F`` returning the raw model output
F_theta(c_in(sigma) x; c_noise(sigma)) for the latent ``x`` at noise level ``sigma`` (it applies c_in itself).
Inversion walks an ASCENDING sigma list [0 = sigma_0 < sigma_1 < ... < sigma_T] and, at each step, picks an
approximation x_bar of the unknown next latent to feed the network, then solves the Euler step exactly (Eq. 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from .edm import edm_coefficients, inverse_euler_step

Network = Callable[[torch.Tensor, float], torch.Tensor]


@dataclass
class InversionOptions:
    """Every choice in the inversion that the paper and the authors' code make differently.

    Defaults reproduce the authors' code (shared/paper/official_code_notes.md).

    extrapolate: True = noise extrapolation (Eq. 6); False = naive inversion (Eq. 5, the '- Extrapolation' ablation).
    threshold: Sigma in Eq. 6. ``None`` = always extrapolate (the '- Threshold' ablation, which divides by
        sigma_0 = 0 on the first step and yields non-finite latents, as the paper's Table 5 reports).
    threshold_compare: which sigma is compared with Sigma: "lower" (sigma_t, Eq. 6 and the code) or "upper".
    noise: below the threshold, "fixed" reuses one eps drawn before the loop (code) or "fresh" draws a new one
        at every step (paper's N(0, sigma_{t+1})).
    noise_std: "x0" scales that noise by std(x0) (code) or "unit" does not (paper).
    naive_input_scaling: for naive inversion, "paper" evaluates F(c_in^t x_t; c_noise^{t+1}) exactly as Eq. 5;
        "next" uses c_in^{t+1} (plain x_bar = x_t).
    """

    extrapolate: bool = True
    threshold: Optional[float] = 1.0
    threshold_compare: str = "lower"
    noise: str = "fixed"
    noise_std: str = "x0"
    naive_input_scaling: str = "paper"

    def __post_init__(self) -> None:
        checks = {"threshold_compare": ("lower", "upper"), "noise": ("fixed", "fresh"),
                  "noise_std": ("x0", "unit"), "naive_input_scaling": ("paper", "next")}
        for key, allowed in checks.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"inversion option {key}={getattr(self, key)!r}: expected one of {allowed}")


@dataclass
class InversionResult:
    latents: torch.Tensor
    nfe: int
    branches: list[str] = field(default_factory=list)  # per step: "naive" | "extrapolate" | "noise"
    trajectory: list[torch.Tensor] = field(default_factory=list)


def naive_network_input(x_t: torch.Tensor, sigma_t: float, sigma_next: float, scaling: str = "paper") -> torch.Tensor:
    """Eq. 5: approximate x_{t+1} by x_t.

    The network sees F(c_in^t x_t; c_noise^{t+1}); since ``network`` multiplies its input by c_in^{t+1}, we pass
    x_t * c_in^t / c_in^{t+1} for the paper's form, or x_t itself for ``scaling="next"``.
    """
    if scaling == "next":
        return x_t
    return x_t * (edm_coefficients(sigma_t).c_in / edm_coefficients(sigma_next).c_in)


def extrapolated_network_input(x_t: torch.Tensor, x0: torch.Tensor, sigma_t: float, sigma_next: float) -> torch.Tensor:
    """Eq. 6, first case: x_bar_{t+1} = sigma_{t+1}/sigma_t (x_t - x0) + x0 (linear noise extrapolation).

    The ratio is a tensor division so that sigma_t = 0 gives inf/NaN (the paper's '- Threshold' failure) rather
    than a Python ZeroDivisionError.
    """
    ratio = torch.as_tensor(sigma_next, dtype=torch.float64) / torch.as_tensor(sigma_t, dtype=torch.float64)
    return x0 + (x_t - x0) * ratio.to(x_t.dtype)


def noised_network_input(x0: torch.Tensor, eps: torch.Tensor, sigma_next: float, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Eq. 6, second case: x_bar_{t+1} = x0 + N(0, sigma_{t+1}^2), with eps ~ N(0, I) given (times ``scale``)."""
    return x0 + eps * (sigma_next * scale)


def uses_extrapolation(sigma_t: float, sigma_next: float, threshold: Optional[float], compare: str = "lower") -> bool:
    """The branch condition of Eq. 6: extrapolate when the compared sigma exceeds Sigma (always if Sigma is None)."""
    if threshold is None:
        return True
    return (sigma_t if compare == "lower" else sigma_next) > threshold


def invert(
    x0: torch.Tensor,
    sigmas_up: torch.Tensor,
    network: Network,
    options: InversionOptions = InversionOptions(),
    generator: Optional[torch.Generator] = None,
    keep_trajectory: bool = False,
    progress: Optional[Callable[[int], None]] = None,
) -> InversionResult:
    """Invert clean latents ``x0`` along the ascending ``sigmas_up`` (Eq. 7 with the input chosen by Eq. 5 or 6).

    Returns the latent at sigmas_up[-1], from which ``sample_euler`` regenerates (paper Sec. 3.5).
    """
    x_t = x0
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)
    noise_scale = x0.std() if options.noise_std == "x0" else 1.0
    result = InversionResult(latents=x0, nfe=0, trajectory=[x0] if keep_trajectory else [])
    for i in range(len(sigmas_up) - 1):
        sigma_t, sigma_next = float(sigmas_up[i]), float(sigmas_up[i + 1])
        if not options.extrapolate:
            x_bar, branch = naive_network_input(x_t, sigma_t, sigma_next, options.naive_input_scaling), "naive"
        elif uses_extrapolation(sigma_t, sigma_next, options.threshold, options.threshold_compare):
            x_bar, branch = extrapolated_network_input(x_t, x0, sigma_t, sigma_next), "extrapolate"
        else:
            if options.noise == "fresh":
                eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)
            x_bar, branch = noised_network_input(x0, eps, sigma_next, noise_scale), "noise"
        F = network(x_bar, sigma_next)
        x_t = inverse_euler_step(x_t, F.to(x_t.dtype), sigma_t, sigma_next)
        result.nfe += 1
        result.branches.append(branch)
        if keep_trajectory:
            result.trajectory.append(x_t)
        if progress is not None:
            progress(i)
    result.latents = x_t
    return result


def fixed_point_inverse_step(
    x_t: torch.Tensor, network: Network, sigma_t: float, sigma_next: float, iterations: int,
    x_init: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, int]:
    """Solve Eq. 4 for x_{t+1} by fixed-point iteration x <- InverseStep(x_t, F(x)) (Meiri et al. 2023).

    Starts from ``x_init`` (default x_t) and returns (x_{t+1}, number of network evaluations).
    """
    x = x_t if x_init is None else x_init
    for _ in range(iterations):
        x = inverse_euler_step(x_t, network(x, sigma_next).to(x_t.dtype), sigma_t, sigma_next)
    return x, iterations
