"""Rectified-flow inversion math (videoshop/flow.py) on an analytic Gaussian flow with a closed-form velocity."""

import math

import pytest
import torch

from videoshop.flow import (edm_equivalent_sigma, flow_euler_step, flow_extrapolated_input, flow_naive_input,
                            flow_noised, flow_uses_extrapolation, invert_flow, inverse_flow_euler_step,
                            sample_flow_euler)
from videoshop_bench.research.flow_inversion_table import GaussianFlow, shifted_grid
from videoshop.inversion import InversionOptions


_sigmas_up = shifted_grid


def test_inverse_flow_euler_step_undoes_the_step_given_the_true_velocity():
    g = torch.Generator().manual_seed(0)
    x_next = torch.randn(2, 3, 4, 5, 6, generator=g, dtype=torch.float64)
    v = torch.randn(x_next.shape, generator=g, dtype=torch.float64)  # v(x_{t+1}, sigma_{t+1}), any tensor
    for sigma_next, sigma_t in [(1.0, 0.9), (0.5, 0.49), (0.2, 0.0)]:
        x_t = flow_euler_step(x_next, v, sigma_next, sigma_t)
        assert (inverse_flow_euler_step(x_t, v, sigma_t, sigma_next) - x_next).abs().max() <= 1e-9


def test_extrapolated_input_is_the_next_point_of_a_straight_path():
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(64, generator=g, dtype=torch.float64), torch.randn(64, generator=g, dtype=torch.float64)
    x_bar = flow_extrapolated_input(flow_noised(x0, eps, 0.3), x0, 0.3, 0.55)
    assert torch.allclose(x_bar, flow_noised(x0, eps, 0.55), atol=1e-12)


def test_threshold_is_in_edm_units():
    assert edm_equivalent_sigma(0.5) == pytest.approx(1.0)
    assert math.isinf(edm_equivalent_sigma(1.0))
    assert not flow_uses_extrapolation(0.49, 0.6, 1.0) and flow_uses_extrapolation(0.51, 0.6, 1.0)
    assert flow_uses_extrapolation(0.0, 0.1, None)


def test_extrapolated_input_is_closer_to_the_exact_next_latent_than_the_naive_one_at_every_step():
    """On a curved (s = 0.5) Gaussian flow, along the extrapolated inversion's own trajectory, at every step where
    Eq. 6 extrapolates (sigma_t > 0), x_bar = x0 + sigma_{t+1}/sigma_t (x_t - x0) is closer to the exact solution of
    the implicit step (Eq. 4) than the naive x_bar = x_t (Eq. 5)."""
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(256, generator=g, dtype=torch.float64)
    flow = GaussianFlow(mu, s=0.5)
    x0 = mu + 0.5 * torch.randn(256, generator=g, dtype=torch.float64)
    sig = _sigmas_up()
    res = invert_flow(x0, sig, flow, InversionOptions(threshold=0.0), torch.Generator().manual_seed(0),
                      keep_trajectory=True)
    assert res.branches == ["noise"] + ["extrapolate"] * (len(sig) - 2)
    for i in range(1, len(sig) - 1):
        x_t, s_t, s_n = res.trajectory[i], float(sig[i]), float(sig[i + 1])
        exact = flow.exact_next(x_t, s_t, s_n)
        err_ex = (flow_extrapolated_input(x_t, x0, s_t, s_n) - exact).norm()
        err_naive = (flow_naive_input(x_t) - exact).norm()
        assert err_ex < err_naive, (i, float(err_ex), float(err_naive))


def test_inversion_then_regeneration_recovers_x0_on_straight_paths():
    """One data point (s = 0): every path is straight, Eq. 6's extrapolation is the exact next latent and the Euler
    steps are exact, so invert -> regenerate returns x0 to float64 round-off (<= 1e-10)."""
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(128, generator=g, dtype=torch.float64)
    flow = GaussianFlow(mu, s=0.0)
    sig = _sigmas_up()
    inv = invert_flow(mu.clone(), sig, flow, InversionOptions(threshold=0.0), torch.Generator().manual_seed(0))
    x_rec, nfe = sample_flow_euler(inv.latents, sig.flip(0), flow)
    assert nfe == len(sig) - 1
    assert (x_rec - mu).abs().max() <= 1e-10
    assert (inv.latents - mu).abs().max() > 0.5  # it did reach a noisy latent (sigma_T = 0.96), not x0 itself


def test_inversion_recovers_x0_on_nearly_straight_gaussian_data_better_than_naive():
    """s = 0.05: nearly straight paths, 30 log-spaced levels from 1e-3 (a small first step, so that the noise branch
    taken at sigma_0 = 0 contributes little). Stated tolerance: max error <= 0.02 for extrapolation (measured 0.0147),
    and at least 4x smaller than naive inversion's (measured 0.077). With the coarse shifted grid of the other tests
    both are ~0.11: the first, below-threshold step's random noise direction dominates."""
    g = torch.Generator().manual_seed(4)
    mu = torch.randn(128, generator=g, dtype=torch.float64)
    flow = GaussianFlow(mu, s=0.05)
    x0 = mu + 0.05 * torch.randn(128, generator=g, dtype=torch.float64)
    sig = torch.cat([torch.zeros(1, dtype=torch.float64), torch.logspace(-3, -0.05, 30, dtype=torch.float64)])
    errs = {}
    for name, opts in {"extrapolate": InversionOptions(threshold=0.0), "naive": InversionOptions(inversion="naive")}.items():
        inv = invert_flow(x0, sig, flow, opts, torch.Generator().manual_seed(0))
        errs[name] = float((sample_flow_euler(inv.latents, sig.flip(0), flow)[0] - x0).abs().max())
    assert errs["extrapolate"] <= 0.02 and errs["extrapolate"] * 4 < errs["naive"], errs


def test_no_threshold_ablation_goes_non_finite_and_edict_is_refused():
    flow = GaussianFlow(torch.zeros(8, dtype=torch.float64), s=1.0)
    inv = invert_flow(torch.ones(8, dtype=torch.float64), _sigmas_up(4), flow, InversionOptions(threshold=None))
    assert not torch.isfinite(inv.latents).all()
    with pytest.raises(ValueError, match="not available for flow models"):
        invert_flow(torch.ones(8), _sigmas_up(4), flow, InversionOptions(inversion="edict"))


# ----------------------------------------------------------------------------- VP + DDIM (CogVideoX), videoshop/vp.py
def _cogvideox_scheduler():
    from diffusers import CogVideoXDDIMScheduler

    from videoshop.cogvideox import cogvideox_i2v_configs

    return CogVideoXDDIMScheduler(**cogvideox_i2v_configs("tiny")["scheduler"])


def test_ddim_step_is_cogvideox_schedulers_step_and_its_inverse_is_exact():
    from videoshop.vp import ddim_step, inverse_ddim_step

    sched = _cogvideox_scheduler()
    sched.set_timesteps(4)
    g = torch.Generator().manual_seed(5)
    x, v = torch.randn(2, 3, 4, 4, 4, generator=g), torch.randn(2, 3, 4, 4, 4, generator=g)
    ab = sched.alphas_cumprod.double()
    levels = [float(ab[t]) for t in sched.timesteps] + [1.0]
    assert levels[0] == 0.0  # zero terminal SNR: the first level is sigma = inf in EDM units
    for i, t in enumerate(sched.timesteps):
        ref = sched.step(v, t, x).prev_sample
        assert (ddim_step(x, v, levels[i], levels[i + 1]) - ref).abs().max() <= 1e-5
        x64, v64 = x.double(), v.double()
        x_t = ddim_step(x64, v64, levels[i], levels[i + 1])
        assert (inverse_ddim_step(x_t, v64, levels[i + 1], levels[i]) - x64).abs().max() <= 1e-9


def test_vp_extrapolation_is_eq6_in_edm_units_and_inversion_is_exact_on_straight_paths():
    from videoshop.inversion import extrapolated_network_input
    from videoshop.vp import invert_vp, sample_ddim, vp_extrapolated_input

    g = torch.Generator().manual_seed(6)
    x0, x_t = torch.randn(64, generator=g, dtype=torch.float64), torch.randn(64, generator=g, dtype=torch.float64)
    ab_t, ab_n = 0.7, 0.4
    s_t, s_n = math.sqrt((1 - ab_t) / ab_t), math.sqrt((1 - ab_n) / ab_n)
    edm = extrapolated_network_input(x_t / math.sqrt(ab_t), x0, s_t, s_n)
    assert torch.allclose(vp_extrapolated_input(x_t, x0, ab_t, ab_n), math.sqrt(ab_n) * edm, atol=1e-12)

    mu = torch.randn(64, generator=g, dtype=torch.float64)

    def point_mass_v(x, ab):  # exact v-prediction for data = {mu}: eps = (x - sqrt(ab) mu) / sqrt(1 - ab)
        eps = (x - math.sqrt(ab) * mu) / math.sqrt(1 - ab)
        return math.sqrt(ab) * eps - math.sqrt(1 - ab) * mu

    sched = _cogvideox_scheduler()
    sched.set_timesteps(12)
    ab = sched.alphas_cumprod.double()
    down = torch.tensor([float(ab[t]) for t in sched.timesteps][2:] + [1.0], dtype=torch.float64)  # ab > 0 part
    inv = invert_vp(mu, down.flip(0), point_mass_v, InversionOptions(threshold=0.0), torch.Generator().manual_seed(0))
    assert inv.branches[0] == "noise" and set(inv.branches[1:]) == {"extrapolate"}
    x_rec, _ = sample_ddim(inv.latents, down, point_mass_v)
    assert (x_rec - mu).abs().max() <= 1e-10
