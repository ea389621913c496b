"""Reconstruction error and network evaluations (NFE) per inversion, as one table (issue: baselines and extensions).

For each model (the analytic Gaussian denoiser with its closed-form ODE, the tiny SVD, and the toy SVD when
its model mapping, videoshop.families.model_preset("toy"), and its weights exist) and each inversion (Videoshop's noise extrapolation, naive Eq. 5,
fixed-point iteration with k evaluations per step, EDICT, BDIA), invert the clean latents of a video along SVD's
truncated schedule and regenerate them with the matching sampler and the SAME conditioning (the source first
frame, no CFG), so an exact inversion reconstructs the latents to arithmetic precision. Errors are on the
normalised latents (the state the inversion sees), in float64 state; NFE are counted from the network's calls.

    .venv/bin/python -m videoshop_bench.research.inversion_table                      # analytic + tiny (+ toy if present)
    .venv/bin/python -m videoshop_bench.research.inversion_table --models analytic,tiny --out outputs/inversion_table.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from videoshop import _compat  # noqa: F401
from videoshop.families import model_preset, model_presets
from videoshop.edm import edm_coefficients, karras_sigmas, truncate_by_strength
from videoshop.inversion import InversionOptions, invert
from videoshop.sampling import regenerate

ROOT = Path(__file__).resolve().parents[1]


def inversions() -> dict[str, InversionOptions]:
    rows = {"videoshop (extrapolate)": InversionOptions(), "naive (Eq. 5)": InversionOptions(inversion="naive")}
    for k in (1, 2, 5, 10, 20):
        rows[f"fixed_point k={k}"] = InversionOptions(inversion="fixed_point", fixed_point_iterations=k)
    rows["edict p=0.93"] = InversionOptions(inversion="edict", edict_p=0.93)
    rows["bdia gamma=0.5"] = InversionOptions(inversion="bdia", bdia_gamma=0.5)
    rows["bdia gamma=0.9"] = InversionOptions(inversion="bdia", bdia_gamma=0.9)
    return rows


class AnalyticNetwork:
    """Data ~ N(mu, s^2 I): exact D(x; sigma) = mu + s^2/(s^2+sigma^2)(x - mu), as SVD's v-prediction output F."""

    def __init__(self, mu: torch.Tensor, s: float):
        self.mu, self.s, self.nfe = mu, s, 0

    def __call__(self, x, sigma):
        self.nfe += 1
        c = edm_coefficients(sigma)
        return (self.mu + self.s**2 / (self.s**2 + sigma**2) * (x - self.mu) - c.c_skip * x) / c.c_out


def analytic_case(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shape = (1, 14, 4, 8, 14)
    mu = torch.randn(shape, generator=g, dtype=torch.float64) * 0.7 + 0.3
    x0 = mu + 0.5 * torch.randn(shape, generator=g, dtype=torch.float64)
    return x0, lambda: AnalyticNetwork(mu, 0.5)


def svd_case(model: str, seed: int = 0):
    """Normalised clean latents of the first synthetic video and a factory of the source-conditioned network."""
    from videoshop_bench.datasets.synthetic import SyntheticDataset
    from videoshop.models import build_pipeline
    from videoshop.conditioning import to_model_pixels
    from videoshop.config import VideoshopConfig
    from videoshop.latents import normalize_latents

    mcfg = model_preset(model)
    pipe = build_pipeline(mcfg, "cpu")
    h, w, t = int(mcfg["height"]), int(mcfg["width"]), int(mcfg["num_frames"])
    ds = SyntheticDataset(name="synthetic", num_samples=1, num_frames=t, height=h, width=w, seed=seed)
    video = ds.load(ds.sample_ids()[0]).source_video
    cfg = VideoshopConfig()
    with torch.no_grad():
        px = to_model_pixels(np.asarray(video), h, w)
        x0 = normalize_latents(pipe.encode_video(px), cfg.normalize, cfg.normalize_center).double()

    def network():
        g = torch.Generator().manual_seed(seed)
        return pipe.conditioned_network(px[:1], t, cfg, g, (1.0, 1.0), True)

    return x0, network


def measure(x0, make_network, sigmas, options) -> dict:
    net_inv, net_gen = make_network(), make_network()
    t0 = time.perf_counter()
    with torch.no_grad():
        inv = invert(x0, sigmas.flip(0), net_inv, options, torch.Generator().manual_seed(0))
        rec, _ = regenerate(inv, sigmas, net_gen, options)
    err = (rec - x0).double()
    return dict(rmse=float(err.pow(2).mean().sqrt()), max_abs=float(err.abs().max()),
                rel=float(err.norm() / x0.double().norm()), nfe_inversion=net_inv.nfe, nfe_generation=net_gen.nfe,
                nfe_total=net_inv.nfe + net_gen.nfe, seconds=time.perf_counter() - t0,
                finite=bool(torch.isfinite(rec).all()))


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="analytic,tiny,toy")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--strength", type=float, default=0.55)
    ap.add_argument("--out", default=None, help="write the table as CSV (and .md next to it)")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    sigmas = truncate_by_strength(karras_sigmas(args.steps, 0.002, 700.0), args.strength)
    rows = []
    for model in args.models.split(","):
        if model == "analytic":
            x0, make = analytic_case()
        else:
            if model not in model_presets():
                print(f"[skip] model {model}: no such model mapping (videoshop.families.model_presets)")
                continue
            try:
                x0, make = svd_case(model)
            except Exception as e:  # noqa: BLE001  (e.g. toy weights not built yet)
                print(f"[skip] model {model}: {str(e).splitlines()[0]}")
                continue
        for name, options in inversions().items():
            rows.append(dict(model=model, inversion=name, **measure(x0, make, sigmas, options)))
            r = rows[-1]
            print(f"{model:9s} {name:24s} rmse={r['rmse']:.3e} nfe={r['nfe_total']} ({r['seconds']:.1f}s)", flush=True)
    df = pd.DataFrame(rows)
    base = df[df.inversion.str.startswith("videoshop")].set_index("model")["nfe_total"]
    df["nfe_x_videoshop"] = df.apply(lambda r: r.nfe_total / base[r.model], axis=1)
    cols = ["model", "inversion", "rmse", "max_abs", "rel", "nfe_inversion", "nfe_generation", "nfe_total",
            "nfe_x_videoshop", "seconds"]
    md = df[cols].to_markdown(index=False, floatfmt=".3g")
    print(f"\nSchedule: {args.steps} Karras steps, strength {args.strength} -> {len(sigmas) - 1} steps "
          f"(sigma_max of the inversion {float(sigmas[0]):.3g}); latent reconstruction after invert + regenerate.\n")
    print(md)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False)
        out.with_suffix(".md").write_text(md + "\n")
    return df


if __name__ == "__main__":
    main()
