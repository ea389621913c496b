"""The paper's Fig. 3: how straight is the denoising trajectory of the video model?

    python run.py experiment=trajectory                                   # toy model, offline
    python run.py experiment=trajectory model=svd model.path=ckpt/svd trajectory.num_videos=100 dataset=magicbrush

Sec. 3.5 ("Near-linearity of x_t trajectory") motivates noise extrapolation (Eq. 6) by the observation that the
vectors x_t - x_0 along a generation's trajectory are nearly collinear. For N videos generated from the first frames
of the dataset's samples (plain image-to-video sampling, Euler over the full Karras schedule, SVD's default
conditioning), this records every state x_T, ..., x_0 through the pipeline's ``callback_on_step_end``, and computes
per video the cosine similarity of (x_t - x_0) and (x_t' - x_0) for every pair of steps (``trajectory_cosines``).
It writes the mean matrix as a figure (``trajectory.png``, the paper's Fig. 3) and the three statistics the paper
reports beside the paper's values (``trajectory.md``/``.csv``, ``trajectory_statistics``).

Choices the paper leaves open, recorded in the output: "all pairs" means t != t' (the diagonal is 1 by definition
and would raise the mean); the trajectory's states are x_T (before the first step) to x_1 (the last state with a
non-zero x_t - x_0); each video's first frame conditions its generation with the method's conditioning options
(`trajectory.*`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from videoshop_bench.experiments.tables import to_safe_csv

log = logging.getLogger(__name__)

# Sec. 3.5 of the paper (shared/paper/README.md): 100 random videos, SVD img2vid
PAPER_STATISTICS = {"mean_all_pairs": 0.9282, "mean_consecutive": 0.9919, "min_consecutive": 0.9107}


def trajectory_cosines(states: list[torch.Tensor]) -> torch.Tensor:
    """(S, S) cosine similarities of x_t - x_0 for the states x_T, ..., x_1 of one trajectory (``states`` ends with
    x_0, which is dropped: x_0 - x_0 = 0 has no direction). Float64."""
    x0 = states[-1].double().flatten()
    v = torch.stack([s.double().flatten() - x0 for s in states[:-1]])
    v = v / v.norm(dim=1, keepdim=True)
    return v @ v.T


def trajectory_statistics(matrices: list[torch.Tensor]) -> dict[str, float]:
    """The paper's three numbers over videos: the mean over all pairs t != t', the mean over consecutive steps
    (t, t+1), and the minimum over consecutive steps (and videos)."""
    all_pairs, consecutive = [], []
    for c in matrices:
        n = c.shape[0]
        off = ~torch.eye(n, dtype=torch.bool)
        all_pairs.append(c[off].mean())
        consecutive.append(torch.diagonal(c, 1))
    cons = torch.cat(consecutive)
    return {"mean_all_pairs": float(torch.stack(all_pairs).mean()), "mean_consecutive": float(cons.mean()),
            "min_consecutive": float(cons.min())}


def record_trajectory(pipe, image: np.ndarray, num_frames: int, generator: torch.Generator, height: int, width: int,
                      **options: Any) -> list[torch.Tensor]:
    """Generate one video from ``image`` and return its states x_T, ..., x_0 (CPU float32)."""
    states: list[torch.Tensor] = []

    def keep(p, i, sigma, kw):
        states.append(kw["latents"].detach().float().cpu().clone())
        return {}

    steps = int(options.get("num_inference_steps", 25))
    sigma_max = float(pipe.sigma_schedule(steps, 1.0)[0])  # x_T ~ N(0, sigma_max^2 I), drawn as pipe.generate does
    shape = (1, num_frames, pipe.unet.config.out_channels, height // pipe.vae_scale_factor,
             width // pipe.vae_scale_factor)
    x_T = torch.randn(shape, generator=generator, dtype=torch.float32) * sigma_max
    pipe.generate(image, num_frames, generator=generator, height=height, width=width, latents=x_T,
                  callback_on_step_end=keep, **options)
    return [x_T.float()] + states


def plot_matrix(mean: np.ndarray, stats: dict[str, float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.4), dpi=120)
    im = ax.imshow(mean, vmin=min(0.0, float(mean.min())), vmax=1.0, cmap="viridis")
    ax.set_xlabel("denoising step t'  (0 = x_T)")
    ax.set_ylabel("denoising step t")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="cos(x_t - x_0, x_t' - x_0)")
    ax.text(0.02, -0.22, "ours: all pairs {mean_all_pairs:.4f}, consecutive {mean_consecutive:.4f}, min consecutive "
            "{min_consecutive:.4f}".format(**stats), transform=ax.transAxes, fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_trajectory(cfg: DictConfig, label: Optional[str] = None) -> pd.DataFrame:
    """``task=trajectory``: record, measure, plot and compare with the paper (outputs in ``paths.output``)."""
    from hydra.utils import instantiate

    from videoshop_bench.datasets.base import select_ids
    from videoshop.models import build_pipeline

    from videoshop.method import sample_seed

    t = cfg.trajectory
    out = Path(cfg.paths.output)
    out.mkdir(parents=True, exist_ok=True)
    pipe = build_pipeline(cfg.model, cfg.device, cfg.get("runtime"))
    pipe.set_progress_bar_config(disable=True)
    dataset = instantiate(cfg.dataset.loader)
    ids = select_ids(dataset.sample_ids(), int(t.num_videos), None)
    options = dict(num_inference_steps=int(t.num_inference_steps), noise_aug_strength=float(t.noise_aug_strength),
                   min_guidance_scale=float(t.min_guidance_scale), max_guidance_scale=float(t.max_guidance_scale),
                   fps=int(t.fps), motion_bucket_id=int(t.motion_bucket_id))
    matrices = []
    for sid in ids:
        sample = dataset.load(sid)
        gen = torch.Generator().manual_seed(sample_seed(int(cfg.seed), sid))
        states = record_trajectory(pipe, sample.source_video[0], int(cfg.model.num_frames), gen,
                                   int(cfg.model.height), int(cfg.model.width), **options)
        matrices.append(trajectory_cosines(states))
    stats = trajectory_statistics(matrices)
    mean = torch.stack(matrices).mean(0).numpy()
    np.save(out / "trajectory_matrix.npy", mean)
    table = pd.DataFrame([{"statistic": k, "ours": v, "paper": PAPER_STATISTICS[k], "ours_minus_paper": v - PAPER_STATISTICS[k]}
                          for k, v in stats.items()])
    protocol = {"model": cfg.model.name, "dataset": cfg.dataset.name, "videos": len(ids), **options,
                "all_pairs": "t != t' (diagonal excluded)", "states": "x_T .. x_1 (x_0 is the reference)",
                "paper": "Sec. 3.5: 100 random videos, SVD img2vid (setting otherwise unstated)"}
    (out / "trajectory.csv").write_text(to_safe_csv(table))
    (out / "trajectory.md").write_text(
        f"# Denoising-trajectory linearity (paper Fig. 3, Sec. 3.5)\n\n{table.to_markdown(index=False, floatfmt='.4f')}"
        f"\n\nProtocol: {json.dumps(protocol)}\n")
    plot_matrix(mean, stats, out / "trajectory.png",
                f"{cfg.model.name}: mean over {len(ids)} videos, {int(t.num_inference_steps)} steps")
    log.info("trajectory of %d videos -> %s\n%s", len(ids), out / "trajectory.md", table.to_string(index=False))
    return table
