"""Deterministic DDIM (Song et al. 2021, eta = 0) and its inversion as plain functions over a timestep list.

Notation (DDIM Eq. 12 with sigma_t = 0): with abar_t the cumulative product of alphas at timestep t,

    x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
    x_s    = sqrt(abar_s) x0_hat + sqrt(1 - abar_s) eps

moves a latent from level t to level s with the same eps: s < t is a sampling step, s > t an inversion step (the
"DDIM inversion" of Dhariwal & Nichol 2021 / Mokady et al. 2023, which evaluates eps at the *current* latent and the
*next* timestep: the approximation whose error shrinks as the steps get finer).

The schedule comes from a diffusers ``DDIMScheduler`` config (its public ``timesteps``, ``alphas_cumprod`` and
``final_alpha_cumprod`` after ``set_timesteps``); no scheduler state is used afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

import torch

Tensor = torch.Tensor
EpsOut = Union[Tensor, tuple[Tensor, Tensor]]  # eps, or (eps_uncond, eps_cond) for classifier-free guidance


@dataclass
class DDIMSchedule:
    """Sampling order: ``timesteps[i]`` (descending), ``alpha[i]`` = abar at timesteps[i], ``alpha_prev[i]`` = abar at
    the next lower level (``final_alpha_cumprod`` after the last step). All float64."""

    timesteps: Tensor  # (n,) long
    alpha: Tensor  # (n,) float64
    alpha_prev: Tensor  # (n,) float64

    def __len__(self) -> int:
        return int(self.timesteps.numel())


def ddim_schedule(scheduler_config: Mapping[str, Any], num_inference_steps: int) -> DDIMSchedule:
    """The DDIM timesteps and abar values ``DDIMScheduler(**scheduler_config)`` would use for ``num_inference_steps``.

    Pix2Video: ``steps_offset=0`` gives 980 ... 0; SD1.x's shipped config (``steps_offset=1``) gives 981 ... 1.
    """
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(dict(scheduler_config))
    sched.set_timesteps(int(num_inference_steps))
    ts = sched.timesteps.long().clone()
    ac = sched.alphas_cumprod.double()
    final = torch.as_tensor(sched.final_alpha_cumprod, dtype=torch.float64)
    stride = sched.config.num_train_timesteps // int(num_inference_steps)
    prev = ts - stride  # diffusers' DDIM: prev_timestep = t - num_train_timesteps // num_inference_steps
    alpha_prev = torch.where(prev >= 0, ac[prev.clamp(min=0)], final)
    return DDIMSchedule(timesteps=ts, alpha=ac[ts], alpha_prev=alpha_prev)


def predicted_x0(x: Tensor, eps: Tensor, alpha_t: Tensor) -> Tensor:
    """x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) (DDIM Eq. 12, "predicted x0")."""
    a = torch.as_tensor(alpha_t, dtype=x.dtype, device=x.device)
    return (x - (1 - a).sqrt() * eps) / a.sqrt()


def ddim_transfer(x: Tensor, eps: Tensor, alpha_from: Tensor, alpha_to: Tensor) -> tuple[Tensor, Tensor]:
    """Move ``x`` from level abar_from to abar_to along eps (DDIM Eq. 12, eta = 0); returns (x_to, x0_hat).

    A sampling step when abar_to > abar_from, an inversion step when abar_to < abar_from."""
    x0 = predicted_x0(x, eps, alpha_from)
    a = torch.as_tensor(alpha_to, dtype=x.dtype, device=x.device)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps, x0


def classifier_free_guidance(eps: EpsOut, guidance_scale: Optional[float]) -> Tensor:
    """eps_u + w (eps_c - eps_u) (Ho & Salimans 2022) for a pair; a single eps passes through."""
    if isinstance(eps, tuple):
        uncond, cond = eps
        return uncond + float(guidance_scale if guidance_scale is not None else 1.0) * (cond - uncond)
    return eps


EpsFn = Callable[[Tensor, int, int], EpsOut]  # eps_fn(x, t, step_index)


@torch.no_grad()
def ddim_invert(eps_fn: EpsFn, x0: Tensor, schedule: DDIMSchedule,
                callback: Optional[Callable[[int, int, Tensor], None]] = None) -> list[Tensor]:
    """DDIM inversion from the clean latent ``x0`` up to the noisiest timestep; returns the trajectory
    ``[x0, x_{t_n}, ..., x_{t_1}]`` in inversion order (last entry = x_T for the first sampling step).

    Step k goes from level alpha_prev to alpha at timestep t = timesteps[n-1-k], with eps = eps_fn(x, t, k) at the
    current latent (Pix2Video's ``ddim_loop``/``next_step`` and RAVE's ``ddim_inversion`` do exactly this).
    ``callback(k, t, x_new)`` sees each new latent (e.g. to store attention maps alongside).
    """
    xs = [x0]
    x = x0
    n = len(schedule)
    for k in range(n):
        i = n - 1 - k
        t = int(schedule.timesteps[i])
        eps = classifier_free_guidance(eps_fn(x, t, k), 1.0)
        x, _ = ddim_transfer(x, eps.to(x.dtype), schedule.alpha_prev[i], schedule.alpha[i])
        xs.append(x)
        if callback is not None:
            callback(k, t, x)
    return xs


StepCallback = Callable[[int, int, Tensor, Tensor], Optional[Tensor]]  # (i, t, x_prev, x0_hat) -> new x_prev


@torch.no_grad()
def ddim_sample(eps_fn: EpsFn, x_T: Tensor, schedule: DDIMSchedule, guidance_scale: Optional[float] = None,
                callback: Optional[StepCallback] = None, start_step: int = 0) -> Tensor:
    """Deterministic DDIM sampling from ``x_T`` at ``timesteps[start_step]`` down to the clean latent.

    ``eps_fn(x, t, i)`` returns eps, or (eps_uncond, eps_cond) combined with ``guidance_scale``;
    ``callback(i, t, x_prev, x0_hat)`` may return a replacement for x_prev (e.g. Pix2Video's latent update).
    """
    x = x_T
    for i in range(start_step, len(schedule)):
        t = int(schedule.timesteps[i])
        eps = classifier_free_guidance(eps_fn(x, t, i), guidance_scale)
        x_prev, x0 = ddim_transfer(x, eps.to(x.dtype), schedule.alpha[i], schedule.alpha_prev[i])
        if callback is not None:
            out = callback(i, t, x_prev, x0)
            x_prev = x_prev if out is None else out
        x = x_prev
    return x
