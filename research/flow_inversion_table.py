"""Reconstruction error of flow inversions on an analytic Gaussian rectified flow (closed-form velocity):
`python -m videoshop_bench.research.flow_inversion_table` prints, per data spread s and noise-level grid, the max |x_rec - x0|
after invert -> Euler regeneration for noise extrapolation (threshold 0 and 1 in EDM units), naive inversion and
fixed-point iteration (20 evaluations per step). See docs/models.md."""

from __future__ import annotations


import pandas as pd
import torch

from videoshop.flow import invert_flow, sample_flow_euler
from videoshop.inversion import InversionOptions


class GaussianFlow:
    """Data x0 ~ N(mu, s^2 I), noise eps ~ N(0, I), x_sigma = (1 - sigma) x0 + sigma eps. The exact velocity
    v(x, sigma) = E[eps - x0 | x_sigma = x] = (sigma - (1 - sigma) s^2) / a^2 (x - (1 - sigma) mu) - mu,
    a^2 = (1 - sigma)^2 s^2 + sigma^2; affine in x, so the implicit inverse Euler step (Eq. 4) has a closed form.
    s = 0 (one data point) makes every ODE path straight."""

    def __init__(self, mu: torch.Tensor, s: float):
        self.mu, self.s = mu, s
        self.nfe = 0

    def coeffs(self, sigma: float) -> tuple[float, torch.Tensor]:
        a2 = (1 - sigma) ** 2 * self.s**2 + sigma**2
        A = (sigma - (1 - sigma) * self.s**2) / a2
        return A, -A * (1 - sigma) * self.mu - self.mu  # v = A x + b

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        self.nfe += 1
        A, b = self.coeffs(sigma)
        return A * x + b

    def exact_next(self, x_t: torch.Tensor, sigma_t: float, sigma_next: float) -> torch.Tensor:
        """The x_{t+1} whose Euler step lands on x_t: x = x_t + d (A x + b), d = sigma_{t+1} - sigma_t."""
        A, b = self.coeffs(sigma_next)
        d = sigma_next - sigma_t
        return (x_t + d * b) / (1 - d * A)


def shifted_grid(n: int = 12, top: float = 0.9, shift: float = 3.0) -> torch.Tensor:
    """Ascending [0, ...] flow sigmas with Wan/SD3's shift sigma' = shift s / (1 + (shift - 1) s)."""
    s = torch.linspace(0, top, n + 1, dtype=torch.float64)
    return shift * s / (1 + (shift - 1) * s)


def fine_grid(n: int = 30) -> torch.Tensor:
    """[0] + n log-spaced levels from 1e-3 to ~0.89 (a small first step)."""
    return torch.cat([torch.zeros(1, dtype=torch.float64), torch.logspace(-3, -0.05, n, dtype=torch.float64)])


INVERSIONS = {"extrapolate (Sigma=0)": InversionOptions(threshold=0.0),
              "extrapolate (Sigma=1)": InversionOptions(threshold=1.0),
              "naive": InversionOptions(inversion="naive"),
              "fixed_point x20": InversionOptions(inversion="fixed_point", fixed_point_iterations=20)}


def table(spreads=(0.0, 0.05, 0.2, 0.5), dim: int = 128, seed: int = 4) -> pd.DataFrame:
    rows = []
    for s in spreads:
        g = torch.Generator().manual_seed(seed)
        mu = torch.randn(dim, generator=g, dtype=torch.float64)
        x0 = mu + s * torch.randn(dim, generator=g, dtype=torch.float64)
        flow = GaussianFlow(mu, s)
        for grid_name, sig in (("shifted x12", shifted_grid()), ("log x30", fine_grid())):
            row = {"s": s, "grid": grid_name}
            for name, opts in INVERSIONS.items():
                inv = invert_flow(x0, sig, flow, opts, torch.Generator().manual_seed(0))
                x_rec, _ = sample_flow_euler(inv.latents, sig.flip(0), flow)
                row[name] = float((x_rec - x0).abs().max())
            rows.append(row)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    print(table().to_markdown(index=False, floatfmt=".4f"))
