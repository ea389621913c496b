"""EDM inversion of a latent video: naive (Eq. 5), noise-extrapolated (Eq. 6-7) (paper Sec. 3.4-3.5), and the
alternatives the paper discusses in Sec. 3.4: fixed-point iteration (Meiri et al. 2023), EDICT (Wallace et al. 2023)
and BDIA (Zhang, Lewis and Kleijn 2023), each adapted to SVD's EDM Euler step.

A *network* here is any callable ``network(x, sigma) -> F`` returning the raw model output
F_theta(c_in(sigma) x; c_noise(sigma)) for the latent ``x`` at noise level ``sigma`` (it applies c_in itself).
Inversion walks an ASCENDING sigma list [0 = sigma_0 < sigma_1 < ... < sigma_T] and, at each step, picks an
approximation x_bar of the unknown next latent to feed the network, then solves the Euler step exactly (Eq. 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from .edm import denoised, edm_coefficients, inverse_euler_step
from .options import MAX_ITERATIONS, check_options, option

Network = Callable[[torch.Tensor, float], torch.Tensor]
INVERSIONS = ("extrapolate", "naive", "fixed_point", "edict", "bdia")


@dataclass
class InversionOptions:
    """Every choice in the inversion that the paper and the authors' code make differently.

    Defaults reproduce the authors' code (shared/paper/official_code_notes.md). Each option is declared once, with its
    type, range and choices (``videoshop.options.option``); ``videoshop.config.VideoshopConfig`` inherits them and
    the run's config schema reads them.

    inversion: which inversion runs. "extrapolate" = Videoshop (noise extrapolation, Eq. 6-7); "naive" = Eq. 5 (the
        '- Extrapolation' ablation); "fixed_point" = Eq. 4 solved by ``fixed_point_iterations`` network evaluations
        per step (Meiri et al. 2023); "edict" = EDICT's coupled x/y sequences with mixing ``edict_p`` (Wallace et al.
        2023, 2 evaluations per step); "bdia" = BDIA with ``bdia_gamma`` (Zhang et al. 2023, 1 evaluation per step).
        "edict" and "bdia" change the generation sampler too (``regenerate``).
    threshold: Sigma in Eq. 6. ``None`` = always extrapolate (the '- Threshold' ablation, which divides by
        sigma_0 = 0 on the first step and yields non-finite latents, as the paper's Table 5 reports).
    threshold_compare: which sigma is compared with Sigma: "lower" (sigma_t, Eq. 6 and the code) or "upper".
    noise: below the threshold, "fixed" reuses one eps drawn before the loop (code) or "fresh" draws a new one
        at every step (paper's N(0, sigma_{t+1})).
    noise_std: "x0" scales that noise by std(x0) (code) or "unit" does not (paper).
    naive_input_scaling: for naive inversion, "paper" evaluates F(c_in^t x_t; c_noise^{t+1}) exactly as Eq. 5;
        "next" uses c_in^{t+1} (plain x_bar = x_t).
    """

    inversion: str = option("extrapolate", "str", choices=INVERSIONS)
    threshold: Optional[float] = option(1.0, "float", nullable=True, min=0)
    threshold_compare: str = option("lower", "str", choices=("lower", "upper"))
    noise: str = option("fixed", "str", choices=("fixed", "fresh"))
    noise_std: str = option("x0", "str", choices=("x0", "unit"))
    naive_input_scaling: str = option("paper", "str", choices=("paper", "next"))
    fixed_point_iterations: int = option(5, "int", min=1, max=MAX_ITERATIONS)
    edict_p: float = option(0.93, "float", min=0, max=1, min_open=True, why="EDICT divides by p when inverting")
    bdia_gamma: float = option(0.5, "float", min=0, max=1, max_open=True,
                               why="gamma = 1 is plain Euler, which BDIA cannot invert (its inverse divides by 1 - gamma)")

    def __post_init__(self) -> None:
        check_options(self, "inversion option")


@dataclass
class InversionResult:
    latents: torch.Tensor
    nfe: int
    branches: list[str] = field(default_factory=list)  # per step: naive | extrapolate | noise | fixed_point | edict | bdia
    trajectory: list[torch.Tensor] = field(default_factory=list)
    # second state carried by the exact inversions: EDICT's y sequence at sigma_T, or BDIA's z_{T-1} (None otherwise)
    aux: Optional[torch.Tensor] = None
    method: str = "extrapolate"

    def record_step(self, i: int, x: torch.Tensor, branch: str, nfe: int, keep_trajectory: bool,
                    progress: Optional[Callable[[int], None]]) -> None:
        """Bookkeeping after inversion step i: network evaluations, branch taken, trajectory, progress callback."""
        self.nfe += nfe
        self.branches.append(branch)
        if keep_trajectory:
            self.trajectory.append(x)
        if progress is not None:
            progress(i)


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


def standard_normal(x0: torch.Tensor, generator) -> torch.Tensor:
    """eps ~ N(0, I) shaped like ``x0``, drawn on the CPU from ``generator``; a list of generators (one per sample of
    a batch) draws each sample's eps from its own, so a batched edit makes the same draws as one edit per sample."""
    if isinstance(generator, (list, tuple)):
        return torch.cat([standard_normal(x0[b : b + 1], g) for b, g in enumerate(generator)])
    return torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)


def latent_std(x0: torch.Tensor, per_sample: bool) -> torch.Tensor:
    """std(x0), the authors' scale of the below-threshold noise: over the whole tensor, or per sample of a batch."""
    if not per_sample:
        return x0.std()
    return torch.stack([x.std() for x in x0]).view(-1, *([1] * (x0.ndim - 1)))


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
    """Invert clean latents ``x0`` along the ascending ``sigmas_up`` with the inversion ``options.inversion`` names.

    "extrapolate" / "naive" / "fixed_point": Eq. 7 with the network input chosen by Eq. 6, Eq. 5, or solved by
    fixed-point iteration of Eq. 4. "edict" and "bdia" run their own exact schemes (``invert_edict``,
    ``invert_bdia``). Returns the latent at sigmas_up[-1], from which ``regenerate`` regenerates (paper Sec. 3.5).
    """
    if options.inversion == "edict":
        return invert_edict(x0, sigmas_up, network, options.edict_p, keep_trajectory, progress)
    if options.inversion == "bdia":
        return invert_bdia(x0, sigmas_up, network, options.bdia_gamma, options.naive_input_scaling,
                           keep_trajectory, progress)
    return invert_along(EDM_STEPS, x0, sigmas_up, network, options, generator, keep_trajectory, progress)


@dataclass(frozen=True)
class StepFamily:
    """What Eq. 5-7 need from a model family, each a function of (latents, noise levels): the network inputs of Eq. 5
    (``naive_input(x_t, level_t, level_next, scaling)``), Eq. 6 above and below the threshold
    (``extrapolated_input(x_t, x0, level_t, level_next)``, ``noised_input(x0, eps, level_next, scale)``), Eq. 6's
    branch condition (``uses_extrapolation(level_t, level_next, threshold, compare)``), the exact inverse of the
    sampler's step for a fixed network output (Eq. 7: ``inverse_step(x_t, F, level_t, level_next)``); Eq. 4 by
    fixed-point iteration follows from that inverse step (``fixed_point_solve``).

    EDM (SVD, this module: levels are sigmas), rectified flow (videoshop/flow.py: flow sigmas) and VP/DDIM
    (videoshop/vp.py: alpha_bar values) each define one; ``invert_along`` is the one inversion loop for all.
    """

    name: str
    naive_input: Callable
    extrapolated_input: Callable
    noised_input: Callable
    uses_extrapolation: Callable
    inverse_step: Callable
    inversions: tuple = ("extrapolate", "naive", "fixed_point")


def invert_along(steps: StepFamily, x0: torch.Tensor, levels_up: torch.Tensor, network: Network,
                 options: InversionOptions = InversionOptions(), generator: Optional[torch.Generator] = None,
                 keep_trajectory: bool = False, progress: Optional[Callable[[int], None]] = None) -> InversionResult:
    """Invert ``x0`` along ``levels_up`` (ascending noise) with ``steps``' functions (paper Sec. 3.5): at each step the
    network input x_bar_{t+1} is chosen by Eq. 5 (naive), Eq. 6 (extrapolated, or noised below the threshold Sigma)
    or solved by fixed-point iteration (Eq. 4), and the step is inverted exactly for it (Eq. 7)."""
    if options.inversion not in steps.inversions:
        raise ValueError(f"inversion={options.inversion!r} is not available for {steps.name} models: expected one of "
                         f"{steps.inversions}")
    x_t = x0
    eps = standard_normal(x0, generator)
    noise_scale = latent_std(x0, isinstance(generator, (list, tuple))) if options.noise_std == "x0" else 1.0
    result = InversionResult(latents=x0, nfe=0, trajectory=[x0] if keep_trajectory else [],
                             method=options.inversion)
    for i in range(len(levels_up) - 1):
        level_t, level_next = float(levels_up[i]), float(levels_up[i + 1])
        if options.inversion == "fixed_point":
            x_t, n = fixed_point_solve(steps.inverse_step, x_t, network, level_t, level_next,
                                       int(options.fixed_point_iterations))
            result.record_step(i, x_t, "fixed_point", n, keep_trajectory, progress)
            continue
        if options.inversion == "naive":
            x_bar, branch = steps.naive_input(x_t, level_t, level_next, options.naive_input_scaling), "naive"
        elif steps.uses_extrapolation(level_t, level_next, options.threshold, options.threshold_compare):
            x_bar, branch = steps.extrapolated_input(x_t, x0, level_t, level_next), "extrapolate"
        else:
            if options.noise == "fresh":
                eps = standard_normal(x0, generator)
            x_bar, branch = steps.noised_input(x0, eps, level_next, noise_scale), "noise"
        F = network(x_bar, level_next)
        x_t = steps.inverse_step(x_t, F.to(x_t.dtype), level_t, level_next)
        result.record_step(i, x_t, branch, 1, keep_trajectory, progress)
    result.latents = x_t
    return result


def fixed_point_solve(inverse_step: Callable, x_t: torch.Tensor, network: Network, level_t: float, level_next: float,
                      iterations: int, x_init: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, int]:
    """Solve Eq. 4 for x_{t+1} by fixed-point iteration x <- inverse_step(x_t, F(x)) (Meiri et al. 2023), for any
    family's exact inverse step (EDM Euler, flow Euler, DDIM).

    Starts from ``x_init`` (default x_t) and returns (x_{t+1}, number of network evaluations).
    """
    x = x_t if x_init is None else x_init
    for _ in range(iterations):
        x = inverse_step(x_t, network(x, level_next).to(x_t.dtype), level_t, level_next)
    return x, iterations


def fixed_point_inverse_step(
    x_t: torch.Tensor, network: Network, sigma_t: float, sigma_next: float, iterations: int,
    x_init: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, int]:
    """Eq. 4 by fixed-point iteration on SVD's EDM Euler step (``fixed_point_solve`` with ``inverse_euler_step``)."""
    return fixed_point_solve(inverse_euler_step, x_t, network, sigma_t, sigma_next, iterations, x_init)


# ----------------------------------------------------------------------------- EDICT (Wallace et al. 2023)
EDM_STEPS = StepFamily("EDM", naive_network_input, extrapolated_network_input, noised_network_input,
                       uses_extrapolation, inverse_euler_step, INVERSIONS)


def euler_affine(sigma_next: float, sigma_t: float, sigma_data: float = 1.0) -> tuple[float, float]:
    """(A, B) with euler_step(x, F, sigma_next, sigma_t) = A x + B F (Eq. 3 is affine in x for a given F).

    A = 1 + (sigma_t - sigma_{t+1})(1 - c_skip) / sigma_{t+1},  B = -(sigma_t - sigma_{t+1}) c_out / sigma_{t+1},
    with c_skip, c_out at sigma_{t+1}. EDICT's a_t, b_t (its DDIM step x_{t-1} = a_t x_t + b_t eps) become A, B.
    """
    c = edm_coefficients(sigma_next, sigma_data)
    d = sigma_t - sigma_next
    return 1.0 + d * (1.0 - c.c_skip) / sigma_next, -d * c.c_out / sigma_next


def edict_denoise_step(x_next: torch.Tensor, y_next: torch.Tensor, network: Network, sigma_next: float,
                       sigma_t: float, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One EDICT denoising step (Wallace et al. 2023, Eq. 14-15) on EDM Euler steps, sigma_{t+1} -> sigma_t:

        x_inter = A x_{t+1} + B F(y_{t+1}; sigma_{t+1})       y_inter = A y_{t+1} + B F(x_inter; sigma_{t+1})
        x_t = p x_inter + (1 - p) y_inter                      y_t = p y_inter + (1 - p) x_t

    (A, B from ``euler_affine``). Two network evaluations.
    """
    A, B = euler_affine(sigma_next, sigma_t)
    x_inter = A * x_next + B * network(y_next, sigma_next).to(x_next.dtype)
    y_inter = A * y_next + B * network(x_inter, sigma_next).to(y_next.dtype)
    x_t = p * x_inter + (1 - p) * y_inter
    return x_t, p * y_inter + (1 - p) * x_t


def edict_inverse_step(x_t: torch.Tensor, y_t: torch.Tensor, network: Network, sigma_t: float, sigma_next: float,
                       p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact algebraic inverse of ``edict_denoise_step`` (Wallace et al. 2023, Eq. 16), sigma_t -> sigma_{t+1}:

        y_inter = (y_t - (1 - p) x_t) / p                       x_inter = (x_t - (1 - p) y_inter) / p
        y_{t+1} = (y_inter - B F(x_inter; sigma_{t+1})) / A     x_{t+1} = (x_inter - B F(y_{t+1}; sigma_{t+1})) / A

    Every network input is known when it is needed, so no approximation is made. Two network evaluations.
    """
    A, B = euler_affine(sigma_next, sigma_t)
    y_inter = (y_t - (1 - p) * x_t) / p
    x_inter = (x_t - (1 - p) * y_inter) / p
    y_next = (y_inter - B * network(x_inter, sigma_next).to(y_t.dtype)) / A
    return (x_inter - B * network(y_next, sigma_next).to(x_t.dtype)) / A, y_next


def invert_edict(x0: torch.Tensor, sigmas_up: torch.Tensor, network: Network, p: float = 0.93,
                 keep_trajectory: bool = False, progress: Optional[Callable[[int], None]] = None) -> InversionResult:
    """EDICT inversion from x = y = x0; returns x at sigma_T in ``latents`` and y in ``aux`` (2 NFE per step)."""
    x, y = x0, x0.clone()
    result = InversionResult(latents=x0, nfe=0, trajectory=[x0] if keep_trajectory else [], method="edict")
    for i in range(len(sigmas_up) - 1):
        x, y = edict_inverse_step(x, y, network, float(sigmas_up[i]), float(sigmas_up[i + 1]), p)
        result.record_step(i, x, "edict", 2, keep_trajectory, progress)
    result.latents, result.aux = x, y
    return result


# ----------------------------------------------------------------------------- BDIA (Zhang, Lewis, Kleijn 2023)
def euler_direction(z: torch.Tensor, F: torch.Tensor, sigma: float) -> torch.Tensor:
    """The probability-flow ODE direction dz/dsigma = (z - D(z; sigma)) / sigma that an Euler step integrates."""
    return (z - denoised(z, F, edm_coefficients(sigma))) / sigma


def bdia_step(z_next: torch.Tensor, z_i: torch.Tensor, F_i: torch.Tensor, sigma_next: float, sigma_i: float,
              sigma_prev: float, gamma: float) -> torch.Tensor:
    """One BDIA denoising step z_{i+1}, z_i -> z_{i-1} (noise levels sigma_{i+1} > sigma_i > sigma_{i-1}).

    BDIA (ECCV form, as in the authors' README):
        z_{i-1} = z_{i+1} - gamma (z_{i+1} - z_i) - (1 - gamma) Delta(t_i -> t_{i+1} | z_i) + Delta(t_i -> t_{i-1} | z_i).
    With EDM Euler increments Delta(t_i -> t_j | z_i) = (sigma_j - sigma_i) d_i, d_i = (z_i - D(z_i; sigma_i)) / sigma_i
    (Eq. 3 written as an increment), the EDM-Euler form is
        z_{i-1} = (1 - gamma) z_{i+1} + gamma z_i - (1 - gamma)(sigma_{i+1} - sigma_i) d_i + (sigma_{i-1} - sigma_i) d_i.
    gamma = 1 is the plain Euler step (Eq. 3); gamma = 0 is the fully bi-directional update. (BDIA's arXiv v1 writes
    the same update with gamma' = 1 - gamma; at the default 0.5 both agree.) One network evaluation (F_i at z_i).
    """
    d_i = euler_direction(z_i, F_i, sigma_i)
    return ((1 - gamma) * z_next + gamma * z_i - (1 - gamma) * (sigma_next - sigma_i) * d_i
            + (sigma_prev - sigma_i) * d_i)


def bdia_inverse_step(z_prev: torch.Tensor, z_i: torch.Tensor, F_i: torch.Tensor, sigma_prev: float, sigma_i: float,
                      sigma_next: float, gamma: float) -> torch.Tensor:
    """``bdia_step`` solved for z_{i+1} (exact; BDIA's inversion): with d_i as in ``bdia_step``,
        z_{i+1} = (z_{i-1} - gamma z_i - (sigma_{i-1} - sigma_i) d_i) / (1 - gamma) + (sigma_{i+1} - sigma_i) d_i.
    """
    d_i = euler_direction(z_i, F_i, sigma_i)
    return (z_prev - gamma * z_i - (sigma_prev - sigma_i) * d_i) / (1 - gamma) + (sigma_next - sigma_i) * d_i


def invert_bdia(x0: torch.Tensor, sigmas_up: torch.Tensor, network: Network, gamma: float = 0.5,
                naive_input_scaling: str = "paper", keep_trajectory: bool = False,
                progress: Optional[Callable[[int], None]] = None) -> InversionResult:
    """BDIA inversion: z_0 = x0; z_1 by one naive inverse Euler step (Eq. 5 + Eq. 4, as BDIA uses one DDIM inversion
    step to start); then z_{i+1} = ``bdia_inverse_step``(z_{i-1}, z_i) exactly. Returns z_T in ``latents`` and
    z_{T-1} in ``aux`` (the pair that ``sample_bdia`` resumes from). One network evaluation per step.
    """
    sig = [float(s) for s in sigmas_up]
    result = InversionResult(latents=x0, nfe=0, trajectory=[x0] if keep_trajectory else [], method="bdia")
    F = network(naive_network_input(x0, sig[0], sig[1], naive_input_scaling), sig[1])
    z_prev, z_i = x0, inverse_euler_step(x0, F.to(x0.dtype), sig[0], sig[1])
    result.record_step(0, z_i, "naive", 1, keep_trajectory, progress)
    for i in range(1, len(sig) - 1):
        F_i = network(z_i, sig[i]).to(z_i.dtype)
        z_prev, z_i = z_i, bdia_inverse_step(z_prev, z_i, F_i, sig[i - 1], sig[i], sig[i + 1], gamma)
        result.record_step(i, z_i, "bdia", 1, keep_trajectory, progress)
    result.latents = z_i
    result.aux = z_prev if len(sig) > 2 else None  # one step only: nothing to pair with, regenerate with Euler
    return result
