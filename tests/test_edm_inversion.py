"""EDM step / inverse step (Eq. 3-4), noise extrapolation (Eq. 5-7) on an analytic Gaussian denoiser."""

import math

import pytest
import torch

from videoshop.edm import (edm_coefficients, euler_step, inverse_euler_step, karras_sigmas, truncate_by_strength)
from videoshop.inversion import (InversionOptions, extrapolated_network_input, fixed_point_inverse_step, invert,
                                 naive_network_input, uses_extrapolation)
from videoshop.models import svd_scheduler_config
from videoshop.sampling import sample_euler

SVD_SIGMAS = truncate_by_strength(karras_sigmas(25, 0.002, 700.0), 0.55)  # descending, 14 values, last 0


class GaussianDenoiser:
    """Exact denoiser for data x ~ N(mu, s^2 I): D(x; sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu),
    expressed as SVD's v-prediction network output F = (D - c_skip x) / c_out."""

    def __init__(self, mu: torch.Tensor, s: float):
        self.mu, self.s, self.calls = mu, s, 0

    def D(self, x, sigma):
        return self.mu + self.s**2 / (self.s**2 + sigma**2) * (x - self.mu)

    def __call__(self, x, sigma):
        self.calls += 1
        c = edm_coefficients(sigma)
        return (self.D(x, sigma) - c.c_skip * x) / c.c_out

    def exact_trajectory(self, x0, sigma):
        """Closed-form probability-flow ODE solution from x(0) = x0: x(sigma) = mu + (x0 - mu) sqrt(s^2 + sigma^2) / s."""
        return self.mu + (x0 - self.mu) * math.sqrt(self.s**2 + sigma**2) / self.s


def _analytic(seed=0, shape=(1, 4, 4, 6, 6), s=0.5):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(shape, generator=g, dtype=torch.float64) * 0.7 + 0.3
    model = GaussianDenoiser(mu, s)
    x0 = mu + s * torch.randn(shape, generator=g, dtype=torch.float64)
    return model, x0


def test_karras_schedule_matches_diffusers_svd_scheduler():
    from diffusers import EulerDiscreteScheduler

    sched = EulerDiscreteScheduler(**svd_scheduler_config())
    sched.set_timesteps(25)
    ours = karras_sigmas(25, 0.002, 700.0)
    torch.testing.assert_close(ours.float(), sched.sigmas.float(), rtol=1e-5, atol=1e-6)


def test_strength_055_runs_13_steps_with_5_extrapolated_at_threshold_1():
    assert len(SVD_SIGMAS) == 14 and SVD_SIGMAS[-1] == 0
    assert 15.0 < SVD_SIGMAS[0] < 16.0
    up = SVD_SIGMAS.flip(0)
    branches = [uses_extrapolation(float(up[i]), float(up[i + 1]), 1.0, "lower") for i in range(13)]
    assert sum(branches) == 5


def test_network_free_field_gives_zero_output():
    """Sanity of the analytic model: N(0, 1) data with sigma_data = 1 makes F identically zero (why the tests
    below use another mu and s)."""
    model = GaussianDenoiser(torch.zeros(3, dtype=torch.float64), 1.0)
    x = torch.randn(3, dtype=torch.float64)
    assert torch.allclose(model(x, 3.0), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    m2, x0 = _analytic()
    assert m2(x0, 3.0).abs().max() > 0.1


@pytest.mark.parametrize("seed", [0, 1])
def test_inverse_step_undoes_euler_step_exactly(seed):
    """Eq. 4 with F evaluated at the true next latent inverts Eq. 3: float64, max error <= 1e-9, every step of
    SVD's schedule (including the last step to sigma = 0)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(8, 8, generator=g, dtype=torch.float64)
    network = lambda x, sigma: torch.tanh(x @ w) * math.log1p(sigma)  # noqa: E731  (nonlinear, sigma-dependent)
    for i in range(len(SVD_SIGMAS) - 1):
        sigma_next, sigma_t = float(SVD_SIGMAS[i]), float(SVD_SIGMAS[i + 1])
        x_next = torch.randn(3, 8, generator=g, dtype=torch.float64) * (sigma_next + 0.5)
        F = network(x_next, sigma_next)
        x_t = euler_step(x_next, F, sigma_next, sigma_t)
        recovered = inverse_euler_step(x_t, F, sigma_t, sigma_next)
        assert (recovered - x_next).abs().max().item() <= 1e-9


def test_fixed_point_solve_of_inverse_step_inverts_exactly():
    """Iterating x <- InverseStep(x_t, F(x)) converges to the true x_{t+1}, so inversion then regeneration is exact."""
    model, x0 = _analytic(seed=3)
    up = SVD_SIGMAS.flip(0)
    x, xs = x0, [x0]
    for i in range(len(up) - 1):
        x, _ = fixed_point_inverse_step(x, model, float(up[i]), float(up[i + 1]), iterations=60)
        xs.append(x)
    for i in range(len(up) - 1):  # each step: Euler from the solved x_{t+1} lands back on x_t
        sigma_t, sigma_next = float(up[i]), float(up[i + 1])
        back = euler_step(xs[i + 1], model(xs[i + 1], sigma_next), sigma_next, sigma_t)
        assert (back - xs[i]).abs().max().item() <= 1e-9
    regenerated, _ = sample_euler(x, SVD_SIGMAS, model)
    assert (regenerated - x0).abs().max().item() <= 1e-8


@pytest.mark.parametrize("scaling", ["paper", "next"])
def test_extrapolated_input_is_closer_to_exact_next_latent_than_naive(scaling):
    """On the exact ODE trajectory, Eq. 6's input is nearer the exact x_{t+1} than Eq. 5's, at every sigma_t > 0."""
    model, x0 = _analytic(seed=1)
    up = SVD_SIGMAS.flip(0)
    checked = 0
    for i in range(len(up) - 1):
        sigma_t, sigma_next = float(up[i]), float(up[i + 1])
        if sigma_t == 0:
            continue
        x_t = model.exact_trajectory(x0, sigma_t)
        exact_next = model.exact_trajectory(x0, sigma_next)
        err_extra = (extrapolated_network_input(x_t, x0, sigma_t, sigma_next) - exact_next).norm()
        err_naive = (naive_network_input(x_t, sigma_t, sigma_next, scaling) - exact_next).norm()
        assert err_extra < err_naive, (i, sigma_t, float(err_extra), float(err_naive))
        checked += 1
    assert checked == len(up) - 2


def test_no_threshold_divides_by_zero_on_first_step_and_goes_non_finite():
    model, x0 = _analytic()
    res = invert(x0, SVD_SIGMAS.flip(0), model, InversionOptions(threshold=None))
    assert res.branches == ["extrapolate"] * 13
    assert not torch.isfinite(res.latents).all()


def test_inversion_branches_and_nfe_follow_the_options():
    model, x0 = _analytic()
    up = SVD_SIGMAS.flip(0)
    assert invert(x0, up, model, InversionOptions(extrapolate=False)).branches == ["naive"] * 13
    res = invert(x0, up, model, InversionOptions(threshold=1.0), torch.Generator().manual_seed(0))
    assert res.branches == ["noise"] * 8 + ["extrapolate"] * 5 and res.nfe == 13
    assert torch.isfinite(res.latents).all()


def test_fixed_noise_differs_from_fresh_noise_and_both_are_seeded():
    model, x0 = _analytic()
    up = SVD_SIGMAS.flip(0)
    run = lambda noise, seed: invert(x0, up, model, InversionOptions(noise=noise), torch.Generator().manual_seed(seed)).latents  # noqa: E731
    assert torch.equal(run("fixed", 5), run("fixed", 5)) and torch.equal(run("fresh", 5), run("fresh", 5))
    assert not torch.equal(run("fixed", 5), run("fresh", 5))


def test_reconstruction_error_per_threshold_is_finite_and_reported():
    """Measure (not assert an ordering of) reconstruction error per Sigma on the analytic model."""
    model, x0 = _analytic()
    errors = {}
    for sigma in (0.5, 1.0, 2.0, 5.0):
        inv = invert(x0, SVD_SIGMAS.flip(0), model, InversionOptions(threshold=sigma), torch.Generator().manual_seed(0))
        rec, _ = sample_euler(inv.latents, SVD_SIGMAS, model)
        errors[sigma] = float((rec - x0).pow(2).mean().sqrt())
    naive = invert(x0, SVD_SIGMAS.flip(0), model, InversionOptions(extrapolate=False))
    errors["naive"] = float((sample_euler(naive.latents, SVD_SIGMAS, model)[0] - x0).pow(2).mean().sqrt())
    print("analytic reconstruction RMSE per Sigma:", errors)
    assert all(math.isfinite(v) for v in errors.values())
