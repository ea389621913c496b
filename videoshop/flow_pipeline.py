"""The flow-matching families' shared parts (Wan: videoshop/wan.py, LTX-Video: videoshop/ltx.py): Fig. 2's steps on
flow Euler (``FlowSteps``: inversion with noise extrapolation, videoshop/flow.py, and Euler sampling), the
transformer timestep of a noise level, and the sampler a released flow checkpoint runs with.

The sampler is always the flow-matching Euler sampler (the one Videoshop inverts): a checkpoint that ships another
scheduler (Wan's diffusers repos ship UniPCMultistepScheduler with ``flow_shift``) is run with
FlowMatchEulerDiscreteScheduler at the same shift, so outputs differ from the official pipeline's default sampler.
"""

from __future__ import annotations

import torch

from .flow import invert_flow, sample_flow_euler


def flow_timestep(sigma: float, num_train_timesteps: int, batch: int, device) -> torch.Tensor:
    """The transformer's timestep for noise level sigma: t = sigma x num_train_timesteps in float32
    (FlowMatchEulerDiscreteScheduler's ``timesteps = sigmas * num_train_timesteps``), one per video."""
    return (torch.tensor(sigma, dtype=torch.float32) * num_train_timesteps).to(device).expand(batch)


# ----------------------------------------------------------------------------- the flow family's steps
class FlowSteps:
    """The flow family's steps for Fig. 2 (``videoshop.fig2``): inversion with noise extrapolation on flow Euler
    steps (``invert_flow``), sampling with flow Euler (``sample_flow_euler``)."""

    def invert_latents(self, x0, levels_up, network, options, generator, progress=None):
        return invert_flow(x0, levels_up, network, options, generator, progress=progress)

    def step_sampler(self, x, levels_down, network, progress=None, callback=None):
        return sample_flow_euler(x, levels_down, network, progress=progress, callback=callback)


def euler_scheduler_for(scheduler):
    """The single-step deterministic scheduler Videoshop inverts, from a flow checkpoint's scheduler: kept if it
    already is flow-matching Euler; otherwise (Wan's UniPCMultistepScheduler) FlowMatchEulerDiscreteScheduler with the
    checkpoint's ``flow_shift``."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    if isinstance(scheduler, FlowMatchEulerDiscreteScheduler):
        return scheduler
    shift = float(scheduler.config.get("flow_shift", scheduler.config.get("shift", 1.0)) or 1.0)
    return FlowMatchEulerDiscreteScheduler(shift=shift, num_train_timesteps=scheduler.config.num_train_timesteps)
