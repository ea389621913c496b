"""Acceptance of the toy model (videoshop/assets/toy) on a held-out synthetic split, as Markdown tables.

    python -m experiments.evaluate_toy --out outputs/toy_eval                    # everything, one process
    python -m experiments.evaluate_toy --out D --parts gen,recon,source,videoshop  # a subset (run several in
    python -m experiments.evaluate_toy --out D --report                          #  parallel), then the tables

Held-out split: ``SyntheticDataset(seed=1000, difficulty='easy')`` (training used data_seed 12345), rendered at the
model's size. Methods are built from the real conf/method/*.yaml with ``model=toy`` (Hydra compose), and every
sample's generator is the runner's ``sample_seed(42, sample_id)``, so numbers match `python run.py model=toy ...`.
Parts:
- gen: plain SVD from the held-out first frame (svd_no_source settings): motion = mean |frame_{t+1} - frame_t|
  (uint8 units; a static video scores 0; the source video is the reference), first-frame PSNR vs the condition,
  and the VAE's own encode/decode PSNR (the ceiling of any latent method here).
- recon: invert the source and regenerate with its own first frame (videoshop, videoshop_no_extrapolation): PSNR/SSIM
  vs the source.
- source: the unedited source video scored against the ground-truth edited video (the floor).
- <method>: edit, scored against the ground truth overall / inside / outside the edit region.
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

EDIT_METHODS = ("videoshop", "videoshop_no_norm", "videoshop_no_rescale", "videoshop_no_extrapolation",
                "videoshop_no_threshold", "svd_no_source")
CONF = str(Path(__file__).resolve().parents[1] / "conf")


def compose(overrides: list[str]):
    from hydra import compose as hcompose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return hcompose("config", overrides=overrides + ["paths.output=.", "logger=none"])


MODEL_OVERRIDES: list[str] = []  # extra model.* overrides (e.g. model.path=DIR for a retrained copy)


def build(method: str, model: str, pipe=None):
    from hydra.utils import instantiate

    from videoshop.models import build_pipeline

    cfg = compose([f"model={model}", f"method={method}", *MODEL_OVERRIDES])
    pipe = pipe or build_pipeline(cfg.model, "cpu")
    pipe.set_progress_bar_config(disable=True)
    return cfg, pipe, instantiate(cfg.method, pipeline=pipe, _convert_="all")


def fidelity(edited: np.ndarray, ref: np.ndarray, masks=None) -> dict[str, float]:
    from eval.fidelity import psnr, ssim_mean

    out = {"psnr": psnr(edited, ref), "ssim": 100 * ssim_mean(edited, ref)}
    if masks is not None and masks.any() and not masks.all():
        out.update(psnr_in=psnr(edited, ref, masks), psnr_out=psnr(edited, ref, ~masks),
                   ssim_in=100 * ssim_mean(edited, ref, masks), ssim_out=100 * ssim_mean(edited, ref, ~masks))
    return out


def motion(frames: np.ndarray) -> float:
    """Mean absolute frame-to-frame change in uint8 units (0 for a static video)."""
    return float(np.abs(np.diff(frames.astype(np.float64), axis=0)).mean())


def run_part(part: str, samples, model: str, out: Path, seed: int) -> None:
    from experiments.runner import sample_seed
    from eval.fidelity import psnr
    from videoshop.conditioning import to_model_pixels, to_uint8_frames

    rows = []
    t0 = time.time()
    if part == "source":
        for s in samples:
            rows.append(dict(sample_id=s.sample_id, edit_type=s.edit_type, **fidelity(s.source_video, s.gt_edited_video, s.gt_masks)))
    elif part == "gen":
        cfg, pipe, method = build("svd_no_source", model)
        for s in samples:
            g = torch.Generator().manual_seed(sample_seed(seed, s.sample_id))
            frames = method.edit(s.as_reconstruction(), g).frames
            px = to_model_pixels(s.source_video, *s.source_video.shape[1:3])
            with torch.no_grad():
                vae_rec = to_uint8_frames(pipe.decode(pipe.encode_video(px)))
            rows.append(dict(sample_id=s.sample_id, motion_generated=motion(frames), motion_source=motion(s.source_video),
                             motion_static=0.0, first_frame_psnr=psnr(frames[:1], s.source_video[:1]),
                             later_frames_psnr_vs_source=psnr(frames[1:], s.source_video[1:]),
                             vae_psnr=psnr(vae_rec, s.source_video)))
    elif part == "recon":
        for m in ("videoshop", "videoshop_no_extrapolation"):
            cfg, pipe, method = build(m, model)
            for s in samples:
                r = s.as_reconstruction()
                g = torch.Generator().manual_seed(sample_seed(seed, r.sample_id))
                frames = method.edit(r, g).frames
                rows.append(dict(sample_id=s.sample_id, method=m, **fidelity(frames, s.source_video)))
    else:
        cfg, pipe, method = build(part, model)
        for s in samples:
            g = torch.Generator().manual_seed(sample_seed(seed, s.sample_id))
            res = method.edit(s, g)
            rec = dict(sample_id=s.sample_id, edit_type=s.edit_type, finite=res.finite)
            rec.update(fidelity(res.frames, s.gt_edited_video, s.gt_masks) if res.finite else {})
            rows.append(rec)
    pd.DataFrame(rows).to_csv(out / f"{part}.csv", index=False)
    print(f"{part}: {len(rows)} rows in {time.time() - t0:.0f}s", flush=True)


def report(out: Path) -> str:
    lines = ["# Toy model acceptance (held-out synthetic split)", ""]
    if (out / "gen.csv").is_file():
        g = pd.read_csv(out / "gen.csv")
        lines += [f"## Generation (svd_no_source settings: 25 steps, noise_aug 0.02, CFG 1->3), n={len(g)}", "",
                  "| quantity | mean | std |", "|---|---|---|"]
        for c in g.columns[1:]:
            lines.append(f"| {c} | {g[c].mean():.3f} | {g[c].std():.3f} |")
        lines.append("")
    if (out / "recon.csv").is_file():
        r = pd.read_csv(out / "recon.csv").groupby("method")[["psnr", "ssim"]].agg(["mean", "count"])
        lines += ["## Reconstruction (invert + regenerate with own first frame) vs source", "",
                  "| inversion | PSNR | SSIM x100 | n |", "|---|---|---|---|"]
        for m, name in (("videoshop", "noise-extrapolated (videoshop)"), ("videoshop_no_extrapolation", "naive")):
            if m in r.index:
                lines.append(f"| {name} | {r.loc[m, ('psnr', 'mean')]:.2f} | {r.loc[m, ('ssim', 'mean')]:.2f} | "
                             f"{int(r.loc[m, ('psnr', 'count')])} |")
        lines.append("")
    cols = ["psnr", "psnr_in", "psnr_out", "ssim", "ssim_in", "ssim_out"]
    rows = []
    for part in ("source",) + EDIT_METHODS:
        f = out / f"{part}.csv"
        if f.is_file():
            d = pd.read_csv(f)
            n_bad = int((~d["finite"].astype(bool)).sum()) if "finite" in d else 0
            rows.append((part if part != "source" else "source video (floor)", d.reindex(columns=cols).mean(), len(d), n_bad))
    if rows:
        lines += ["## Editing vs ground-truth edited video (in / out = inside / outside the edit region)", "",
                  "| method | PSNR | PSNR in | PSNR out | SSIM | SSIM in | SSIM out | n | non-finite |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, m, n, bad in rows:
            lines.append(f"| {name} | " + " | ".join(f"{m[c]:.2f}" for c in cols) + f" | {n} | {bad} |")
        lines.append("")
    text = "\n".join(lines)
    (out / "summary.md").write_text(text)
    return text


def main(argv=None) -> None:
    from datasets.synthetic import SyntheticDataset

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="outputs/toy_eval")
    p.add_argument("--model", default="toy")
    p.add_argument("--num-samples", type=int, default=50)
    p.add_argument("--data-seed", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42, help="run seed (per-sample generators as the runner)")
    p.add_argument("--parts", default="gen,recon,source," + ",".join(EDIT_METHODS))
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
        for part in a.parts.split(","):
            run_part(part, samples, a.model, out, a.seed)
    print(report(out))


if __name__ == "__main__":
    main()
