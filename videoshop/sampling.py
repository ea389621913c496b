"""Deterministic EDM Euler sampling over a descending sigma list (paper Eq. 3; k-diffusion's sample_euler)."""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .edm import euler_step
from .inversion import Network


def sample_euler(
    x: torch.Tensor,
    sigmas_down: torch.Tensor,
    network: Network,
    progress: Optional[Callable[[int], None]] = None,
) -> tuple[torch.Tensor, int]:
    """Run Eq. 3 from sigmas_down[0] to sigmas_down[-1]; returns (x at the last sigma, network evaluations)."""
    nfe = 0
    for i in range(len(sigmas_down) - 1):
        sigma_next, sigma_t = float(sigmas_down[i]), float(sigmas_down[i + 1])
        F = network(x, sigma_next)
        x = euler_step(x, F.to(x.dtype), sigma_next, sigma_t)
        nfe += 1
        if progress is not None:
            progress(i)
    return x, nfe
