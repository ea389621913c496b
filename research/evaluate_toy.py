"""Acceptance of the toy model (videoshop/assets/toy) on a held-out synthetic split, as Markdown tables.

    python -m videoshop_bench.research.evaluate_toy --out outputs/toy_eval                    # everything, one process
    python -m videoshop_bench.research.evaluate_toy --out D --parts gen,recon,source,videoshop  # a subset (run several in
    python -m videoshop_bench.research.evaluate_toy --out D --report                          #  parallel), then the tables
    python -m videoshop_bench.research.evaluate_toy --out D --parts videoshop --seeds 42,43 # more run seeds (rows per seed)

Held-out split: ``SyntheticDataset(seed=1000, difficulty='easy')`` (training used data_seed 12345), rendered at the
model's size. Methods are built from the real conf/method/*.yaml with ``model=toy`` (Hydra compose), and every
sample's generator is the runner's ``sample_seed(42, sample_id)``, so numbers match `python run.py model=toy ...`.
Parts:
- gen: plain SVD from the held-out first frame (svd_no_source settings): motion = mean |frame_{t+1} - frame_t|
  (uint8 units; a static video scores 0; the source video is the reference, and the source's VAE round trip is what
  the decoder alone adds: the floor for any latent model), first-frame PSNR vs the condition,
  and the VAE's own encode/decode PSNR (the ceiling of any latent method here).
- recon: invert the source and regenerate with its own first frame, per inversion (``recon_<method>`` for
  videoshop, videoshop_no_extrapolation = naive, fixed_point, edict, bdia; ``recon`` = all): PSNR/SSIM vs the source.
- source: the unedited source video scored against the ground-truth edited video (the floor).
- vae_ceiling: the ground-truth edited video's own VAE round trip (encode, decode), scored against it like a
  method: no latent method can be expected closer than this, column by column (overall, inside, outside the edit).
- <method>: edit, scored against the ground truth overall / inside / outside the edit region.
- sigma_<value>: videoshop with the extrapolation threshold Sigma (Eq. 6) = value (the Sigma sweep).
Every table gives the mean and a 95 % bootstrap interval over samples and run seeds (``bootstrap_ci``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from videoshop import _compat  # noqa: E402,F401

from videoshop_bench.experiments.methods import METHOD_SETS  # noqa: E402

EDIT_METHODS = METHOD_SETS.get("toy_edit").methods
RECON_METHODS = {"videoshop": "noise-extrapolated (videoshop)", "videoshop_no_extrapolation": "naive (Eq. 5)",
                 "fixed_point": "fixed-point (k=5)", "edict": "EDICT (p=0.93)", "bdia": "BDIA (gamma=0.5)"}
ROW_NAMES = {"source": "source video (floor)", "vae_ceiling": "VAE round trip of the truth (ceiling)"}
CONF = str(Path(__file__).resolve().parents[1] / "conf")


def compose(overrides: list[str]):
    from hydra import compose as hcompose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return hcompose("config", overrides=overrides + ["paths.output=.", "logger=none"])


MODEL_OVERRIDES: list[str] = []  # extra model.* overrides (e.g. model.path=DIR for a retrained copy)


def build(method: str, model: str, pipe=None, extra: tuple[str, ...] = ()):
    from hydra.utils import instantiate

    from videoshop.models import build_pipeline

    cfg = compose([f"model={model}", f"method={method}", *MODEL_OVERRIDES, *extra])
    pipe = pipe or build_pipeline(cfg.model, "cpu")
    pipe.set_progress_bar_config(disable=True)
    return cfg, pipe, instantiate(cfg.method, pipeline=pipe, _convert_="all")


def fidelity(edited: np.ndarray, ref: np.ndarray, masks=None) -> dict[str, float]:
    from videoshop_bench.eval.fidelity import psnr, ssim_mean

    out = {"psnr": psnr(edited, ref), "ssim": 100 * ssim_mean(edited, ref)}
    if masks is not None and masks.any() and not masks.all():
        out.update(psnr_in=psnr(edited, ref, masks), psnr_out=psnr(edited, ref, ~masks),
                   ssim_in=100 * ssim_mean(edited, ref, masks), ssim_out=100 * ssim_mean(edited, ref, ~masks))
    return out


def motion(frames: np.ndarray) -> float:
    """Mean absolute frame-to-frame change in uint8 units (0 for a static video)."""
    return float(np.abs(np.diff(frames.astype(np.float64), axis=0)).mean())


@torch.no_grad()
def vae_round_trip(pipe, frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 frames encoded by the pipeline's VAE and decoded again (what any latent method starts from)."""
    from videoshop.conditioning import to_model_pixels, to_uint8_frames

    return to_uint8_frames(pipe.decode(pipe.encode_video(to_model_pixels(frames, *frames.shape[1:3]))))


def bootstrap_ci(values: pd.DataFrame, column: str, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``column`` and its 95 % percentile bootstrap interval over samples and run seeds.

    ``values`` has one row per (sample_id, seed). Each replicate resamples sample ids with replacement and, for each
    drawn sample, one of its seeds at random, so both the sample and the seed variation enter the interval.
    Non-finite values are dropped first; (nan, nan, nan) when none are left.
    """
    d = values[["sample_id", "seed", column]].replace([np.inf, -np.inf], np.nan).dropna()
    if d.empty:
        return (float("nan"),) * 3
    groups = [g[column].to_numpy(np.float64) for _, g in d.groupby("sample_id")]
    counts = np.array([len(g) for g in groups])
    table = np.full((len(groups), counts.max()), np.nan)
    for i, g in enumerate(groups):
        table[i, : len(g)] = g
    rng = np.random.default_rng(seed)
    pick = rng.integers(len(groups), size=(n_boot, len(groups)))
    which = (rng.random((n_boot, len(groups))) * counts[pick]).astype(int)
    lo, hi = np.percentile(table[pick, which].mean(axis=1), [2.5, 97.5])
    return float(d[column].mean()), float(lo), float(hi)


def run_part(part: str, samples, model: str, out: Path, seeds: list[int]) -> None:
    rows = []
    t0 = time.time()
    for seed in seeds:
        rows += [dict(r, seed=seed) for r in _part_rows(part, samples, model, seed)]
    pd.DataFrame(rows).to_csv(out / f"{part}.csv", index=False)
    print(f"{part}: {len(rows)} rows in {time.time() - t0:.0f}s", flush=True)


def _part_rows(part: str, samples, model: str, seed: int) -> list[dict]:
    from videoshop.method import sample_seed
    from videoshop_bench.eval.fidelity import psnr

    rows = []
    if part == "source":
        for s in samples:
            rows.append(dict(sample_id=s.sample_id, edit_type=s.edit_type, **fidelity(s.source_video, s.gt_edited_video, s.gt_masks)))
    elif part == "vae_ceiling":
        _, pipe, _ = build("videoshop", model)
        for s in samples:
            rows.append(dict(sample_id=s.sample_id, edit_type=s.edit_type,
                             **fidelity(vae_round_trip(pipe, s.gt_edited_video), s.gt_edited_video, s.gt_masks)))
    elif part == "gen":
        cfg, pipe, method = build("svd_no_source", model)
        for s in samples:
            g = torch.Generator().manual_seed(sample_seed(seed, s.sample_id))
            frames = method.edit(s.as_reconstruction(), g).frames
            vae_rec = vae_round_trip(pipe, s.source_video)
            rows.append(dict(sample_id=s.sample_id, motion_generated=motion(frames), motion_source=motion(s.source_video),
                             motion_vae_round_trip=motion(vae_rec), motion_static=0.0,
                             first_frame_psnr=psnr(frames[:1], s.source_video[:1]),
                             later_frames_psnr_vs_source=psnr(frames[1:], s.source_video[1:]),
                             vae_psnr=psnr(vae_rec, s.source_video)))
    elif part.startswith("recon_"):
        m = part[len("recon_"):]
        cfg, pipe, method = build(m, model)
        for s in samples:
            r = s.as_reconstruction()
            g = torch.Generator().manual_seed(sample_seed(seed, r.sample_id))
            res = method.edit(r, g)
            rows.append(dict(sample_id=s.sample_id, method=m, nfe=res.nfe, finite=res.finite,
                             **(fidelity(res.frames, s.source_video) if res.finite else {})))
    else:
        sigma = part[len("sigma_"):] if part.startswith("sigma_") else None
        cfg, pipe, method = build("videoshop" if sigma else part, model,
                                  extra=(f"method.threshold={sigma}",) if sigma else ())
        for s in samples:
            g = torch.Generator().manual_seed(sample_seed(seed, s.sample_id))
            res = method.edit(s, g)
            rec = dict(sample_id=s.sample_id, edit_type=s.edit_type, finite=res.finite)
            rec.update(fidelity(res.frames, s.gt_edited_video, s.gt_masks) if res.finite else {})
            rows.append(rec)
    return rows


def _read(path: Path) -> pd.DataFrame:
    d = pd.read_csv(path)
    if "seed" not in d:  # CSVs written before run seeds were recorded
        d["seed"] = 42
    return d


def _cell(d: pd.DataFrame, column: str, digits: int = 2) -> str:
    m, lo, hi = bootstrap_ci(d, column) if column in d else (float("nan"),) * 3
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _n(d: pd.DataFrame) -> str:
    return f"{d['sample_id'].nunique()} x {d['seed'].nunique()}"


def paired_differences(out: Path, parts: list[str], reference: str = "videoshop") -> list[str]:
    """Markdown table: each part minus ``reference`` on the same (sample, seed) pairs, with bootstrap intervals
    (a paired comparison: Table 5's ordering and the Sigma sweep without the between-sample spread)."""
    ref_path = out / f"{reference}.csv"
    if not ref_path.is_file():
        return []
    ref = _read(ref_path)
    cols = ["psnr", "psnr_in", "psnr_out", "ssim"]
    rows = []
    for part in parts:
        f = out / f"{part}.csv"
        if not f.is_file():
            continue
        d = _read(f).merge(ref, on=["sample_id", "seed"], suffixes=("", "_ref"))
        diff = d[["sample_id", "seed"]].copy()
        for c in cols:
            diff[c] = d[c] - d[f"{c}_ref"] if c in d and f"{c}_ref" in d else np.nan
        rows.append(f"| {part} | " + " | ".join(_cell(diff, c) for c in cols) + f" | {_n(diff)} |")
    if not rows:
        return []
    return [f"## Paired differences: method minus {reference} on the same samples and seeds", "",
            "| method | dPSNR | dPSNR in | dPSNR out | dSSIM | n |", "|---|---|---|---|---|---|", *rows, ""]


def per_edit_type(out: Path, method: str = "videoshop") -> list[str]:
    """Markdown table per edit type: the source (floor), the VAE round trip of the truth (ceiling) and ``method``
    (PSNR / SSIM vs the ground truth), and ``method`` minus the source on the same samples (all its seeds; the
    source does not depend on the seed), with bootstrap intervals."""
    if not ((out / "source.csv").is_file() and (out / f"{method}.csv").is_file()):
        return []
    src, m = _read(out / "source.csv"), _read(out / f"{method}.csv")
    ceil = _read(out / "vae_ceiling.csv") if (out / "vae_ceiling.csv").is_file() else None
    paired = m.merge(src.drop(columns=["seed"]), on="sample_id", suffixes=("", "_src"))
    for c in ("psnr", "ssim"):
        paired[f"d{c}"] = paired[c] - paired[f"{c}_src"]

    def both(d):
        return f"{d['psnr'].mean():.2f} / {d['ssim'].mean():.1f}" if d is not None and len(d) else "-"

    rows = []
    for et, d in paired.groupby("edit_type"):
        c = ceil[ceil["edit_type"] == et] if ceil is not None else None
        rows.append(f"| {et} | {both(src[src['edit_type'] == et])} | {both(c)} | {both(m[m['edit_type'] == et])} | "
                    f"{_cell(d, 'dpsnr')} | {_cell(d, 'dssim')} | {_n(d)} |")
    return [f"## Per edit type: {method} vs the source (floor) and the VAE round trip of the truth (ceiling)", "",
            f"| edit type | source PSNR / SSIM | VAE ceiling PSNR / SSIM | {method} PSNR / SSIM | "
            f"{method} - source dPSNR | dSSIM | n |", "|---|---|---|---|---|---|---|", *rows, ""]


def report(out: Path) -> str:
    lines = ["# Toy model acceptance (held-out synthetic split)", "",
             "Mean [95 % bootstrap interval over samples and run seeds]; n = samples x run seeds.", ""]
    if (out / "gen.csv").is_file():
        g = _read(out / "gen.csv")
        lines += [f"## Generation (svd_no_source settings: 25 steps, noise_aug 0.02, CFG 1->3), n={_n(g)}", "",
                  "| quantity | mean [95 % CI] | std |", "|---|---|---|"]
        for c in [c for c in g.columns if c not in ("sample_id", "seed")]:
            lines.append(f"| {c} | {_cell(g, c, 3)} | {g[c].std():.3f} |")
        lines.append("")
    recon = [(m, _read(out / f"recon_{m}.csv")) for m in RECON_METHODS if (out / f"recon_{m}.csv").is_file()]
    if (out / "recon.csv").is_file():  # older single file with a method column
        old = _read(out / "recon.csv")
        recon += [(m, old[old["method"] == m]) for m in RECON_METHODS if (old["method"] == m).any()]
    if recon:
        lines += ["## Reconstruction (invert + regenerate with own first frame) vs source", "",
                  "| inversion | PSNR | SSIM x100 | NFE | n | non-finite |", "|---|---|---|---|---|---|"]
        for m, d in recon:
            nfe = f"{d['nfe'].mean():.0f}" if "nfe" in d else "-"
            bad = int((~d["finite"].astype(bool)).sum()) if "finite" in d else 0
            lines.append(f"| {RECON_METHODS[m]} | {_cell(d, 'psnr')} | {_cell(d, 'ssim')} | {nfe} | {_n(d)} | {bad} |")
        lines.append("")
    cols = ["psnr", "psnr_in", "psnr_out", "ssim", "ssim_in", "ssim_out"]
    sigmas = sorted((p.stem for p in out.glob("sigma_*.csv")), key=lambda n: float(n[len("sigma_"):]))
    for title, parts in (("Editing vs ground-truth edited video (in / out = inside / outside the edit region)",
                          ("source", "vae_ceiling") + EDIT_METHODS),
                         ("Sigma sweep (videoshop, extrapolation threshold Sigma of Eq. 6; default 1)", tuple(sigmas))):
        rows = []
        for part in parts:
            f = out / f"{part}.csv"
            if f.is_file():
                d = _read(f)
                n_bad = int((~d["finite"].astype(bool)).sum()) if "finite" in d else 0
                rows.append((ROW_NAMES.get(part, part), d, n_bad))
        if rows:
            lines += [f"## {title}", "",
                      "| method | PSNR | PSNR in | PSNR out | SSIM | SSIM in | SSIM out | n | non-finite |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for name, d, bad in rows:
                lines.append(f"| {name} | " + " | ".join(_cell(d, c) for c in cols) + f" | {_n(d)} | {bad} |")
            lines.append("")
    lines += paired_differences(out, [p for p in EDIT_METHODS[1:] + tuple(sigmas)])
    lines += per_edit_type(out)
    text = "\n".join(lines)
    (out / "summary.md").write_text(text)
    return text


def main(argv=None) -> None:
    from videoshop_bench.datasets.synthetic import SyntheticDataset

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="outputs/toy_eval")
    p.add_argument("--model", default="toy")
    p.add_argument("--num-samples", type=int, default=50)
    p.add_argument("--data-seed", type=int, default=1000)
    p.add_argument("--seeds", default="42", help="run seeds, comma-separated (per-sample generators as the runner)")
    p.add_argument("--parts", default="gen,recon,source,vae_ceiling," + ",".join(EDIT_METHODS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--override", action="append", default=[], help="model.* override, e.g. model.path=DIR")
    p.add_argument("--report", action="store_true", help="only merge the CSVs into summary.md")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    MODEL_OVERRIDES[:] = a.override
    if not a.report:
        torch.set_num_threads(a.threads)
        cfg = compose([f"model={a.model}"])
        ds = SyntheticDataset(a.num_samples, int(cfg.model.num_frames), int(cfg.model.height), int(cfg.model.width),
                              seed=a.data_seed, difficulty="easy")
        samples = [ds.load(i) for i in ds.sample_ids()]
        seeds = [int(x) for x in a.seeds.split(",")]
        for part in a.parts.split(","):
            for p in ([f"recon_{m}" for m in RECON_METHODS] if part == "recon" else [part]):
                run_part(p, samples, a.model, out, seeds)
    print(report(out))


if __name__ == "__main__":
    main()
