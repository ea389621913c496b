"""Deterministic DDIM (Song et al. 2021, eta = 0) as plain functions of a DDIMScheduler config, for FateZero/Spacetime.

x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t);  x_s = sqrt(a_s) x0_hat + sqrt(1 - a_s) eps   (Song et al. Eq. 12)
Sampling goes t -> s < t; inversion goes s -> t > s with eps evaluated at (x_s, t), as FateZero's ``next_step`` and
DMT's ``ddim_inversion``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch


def alphas_cumprod(config: Mapping) -> torch.Tensor:
    """alpha-bar_t for t = 0..T-1 from a DDIMScheduler config (linear or scaled_linear betas)."""
    n, b0, b1 = int(config["num_train_timesteps"]), float(config["beta_start"]), float(config["beta_end"])
    kind = config.get("beta_schedule", "linear")
    if kind == "scaled_linear":
        betas = torch.linspace(b0 ** 0.5, b1 ** 0.5, n, dtype=torch.float64) ** 2
    elif kind == "linear":
        betas = torch.linspace(b0, b1, n, dtype=torch.float64)
    else:
        raise ValueError(f"beta_schedule={kind!r} not supported (linear, scaled_linear)")
    return torch.cumprod(1 - betas, 0)


def ddim_timesteps(config: Mapping, num_steps: int) -> list[int]:
    """Descending timesteps of diffusers' DDIMScheduler ('leading' spacing + steps_offset), e.g. 981..1 for SD/50."""
    n = int(config["num_train_timesteps"])
    ratio = n // num_steps
    ts = (np.arange(0, num_steps) * ratio).round()[::-1].astype(np.int64) + int(config.get("steps_offset", 0))
    return [int(t) for t in ts]


def final_alpha(config: Mapping, ac: torch.Tensor) -> float:
    return 1.0 if config.get("set_alpha_to_one", True) else float(ac[0])


def ddim_step(x: torch.Tensor, eps: torch.Tensor, a_t: float, a_s: float) -> torch.Tensor:
    """One deterministic DDIM move from alpha-bar a_t to a_s (either direction), with the given noise estimate."""
    x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
    return a_s ** 0.5 * x0 + (1 - a_s) ** 0.5 * eps


def step_alphas(config: Mapping, timesteps: list[int]) -> list[tuple[float, float]]:
    """(a_t, a_prev) for each sampling step over descending ``timesteps`` (a_prev of the last step: final alpha)."""
    ac = alphas_cumprod(config)
    fin = final_alpha(config, ac)
    return [(float(ac[t]), float(ac[timesteps[i + 1]]) if i + 1 < len(timesteps) else fin)
            for i, t in enumerate(timesteps)]
