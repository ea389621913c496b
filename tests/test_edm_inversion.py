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
    assert invert(x0, up, model, InversionOptions(inversion="naive")).branches == ["naive"] * 13
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
    naive = invert(x0, SVD_SIGMAS.flip(0), model, InversionOptions(inversion="naive"))
    errors["naive"] = float((sample_euler(naive.latents, SVD_SIGMAS, model)[0] - x0).pow(2).mean().sqrt())
    print("analytic reconstruction RMSE per Sigma:", errors)
    assert all(math.isfinite(v) for v in errors.values())


# ----------------------------------------------------------------------------- exact-inversion alternatives
def _reconstruction_error(model, x0, options, sigmas=SVD_SIGMAS):
    """Invert then regenerate with the matching sampler; returns (max abs error, inversion NFE, generation NFE)."""
    from videoshop.sampling import regenerate

    model.calls = 0
    inv = invert(x0, sigmas.flip(0), model, options, torch.Generator().manual_seed(0))
    inv_calls = model.calls
    rec, gen_nfe = regenerate(inv, sigmas, model, options)
    assert inv.nfe == inv_calls and model.calls == inv_calls + gen_nfe  # NFE counted from the actual calls
    return float((rec - x0).abs().max()), inv.nfe, gen_nfe


def test_fixed_point_inversion_converges_to_the_exact_inverse_as_iterations_grow():
    """Meiri et al. 2023 on the analytic model (float64): the reconstruction error falls with the number of
    iterations per step and reaches float precision; NFE = iterations x steps."""
    model, x0 = _analytic(seed=3)
    errors = {}
    for k in (1, 2, 4, 8, 16, 40):
        err, nfe, gen = _reconstruction_error(model, x0, InversionOptions(inversion="fixed_point", fixed_point_iterations=k))
        assert nfe == 13 * k and gen == 13
        errors[k] = err
    print("fixed-point reconstruction max error per iterations:", errors)
    ks = sorted(errors)
    assert all(errors[a] > errors[b] or errors[b] < 1e-12 for a, b in zip(ks, ks[1:]))
    assert errors[1] > 1e-3 and errors[40] <= 1e-10


@pytest.mark.parametrize("p", [0.93, 0.5, 1.0])
def test_edict_reconstructs_exactly(p):
    """Wallace et al. 2023: EDICT's inversion is the algebraic inverse of its sampler (float64, error <= 1e-9),
    at 2 NFE per step each way."""
    model, x0 = _analytic(seed=4)
    err, nfe, gen = _reconstruction_error(model, x0, InversionOptions(inversion="edict", edict_p=p))
    assert err <= 1e-9 and nfe == 26 and gen == 26


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9])
def test_bdia_update_is_exactly_invertible(gamma):
    """Zhang et al. 2023: each BDIA step is invertible given (z_{i-1}, z_i), and invert-then-regenerate returns x0
    (float64, error <= 1e-9) at 1 NFE per step."""
    from videoshop.inversion import bdia_inverse_step, bdia_step

    model, x0 = _analytic(seed=5)
    g = torch.Generator().manual_seed(1)
    z_next, z_i = (torch.randn(x0.shape, generator=g, dtype=torch.float64) * s for s in (3.0, 2.0))
    F_i = model(z_i, 2.0)
    z_prev = bdia_step(z_next, z_i, F_i, 3.0, 2.0, 1.0, gamma)
    assert (bdia_inverse_step(z_prev, z_i, F_i, 1.0, 2.0, 3.0, gamma) - z_next).abs().max() <= 1e-12
    err, nfe, gen = _reconstruction_error(model, x0, InversionOptions(inversion="bdia", bdia_gamma=gamma))
    assert err <= 1e-9 and nfe == 13 and gen == 12


def test_bdia_with_gamma_one_is_plain_euler_and_refused_as_an_inversion():
    from videoshop.inversion import bdia_step
    from videoshop.edm import euler_step as euler

    model, x0 = _analytic(seed=6)
    z_next = x0 + 3.0
    z_i = x0 + 2.0
    F_i = model(z_i, 2.0)
    assert torch.allclose(bdia_step(z_next, z_i, F_i, 3.0, 2.0, 1.0, 1.0), euler(z_i, F_i, 2.0, 1.0), atol=1e-12)
    with pytest.raises(ValueError, match="bdia_gamma"):
        InversionOptions(inversion="bdia", bdia_gamma=1.0)


def test_naive_option_equals_extrapolate_false_and_default_path_is_unchanged():
    model, x0 = _analytic()
    up = SVD_SIGMAS.flip(0)
    a = invert(x0, up, model, InversionOptions(inversion="naive"), torch.Generator().manual_seed(0))
    b = invert(x0, up, model, InversionOptions(inversion="naive"), torch.Generator().manual_seed(0))
    assert torch.equal(a.latents, b.latents) and a.branches == b.branches == ["naive"] * 13
    with pytest.raises(ValueError, match="inversion"):
        InversionOptions(inversion="ddim")


def test_videoshop_extrapolation_is_not_exact_but_exact_inversions_are():
    """The comparison the issue asks for, on the analytic model: error and NFE per inversion (printed)."""
    model, x0 = _analytic(seed=2)
    table = {}
    for name, opts in {"extrapolate": InversionOptions(), "naive": InversionOptions(inversion="naive"),
                       "fixed_point_5": InversionOptions(inversion="fixed_point"),
                       "edict": InversionOptions(inversion="edict"), "bdia": InversionOptions(inversion="bdia")}.items():
        table[name] = _reconstruction_error(model, x0, opts)
    print("analytic: name -> (max error, inversion NFE, generation NFE)", table)
    assert table["edict"][0] <= 1e-9 and table["bdia"][0] <= 1e-9
    assert table["extrapolate"][0] > 1e-6 and table["naive"][0] > 1e-6
