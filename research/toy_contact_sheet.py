"""Contact sheet of the toy model's edits: per sample, rows of source / ground-truth edit / the ground truth's own
VAE round trip (the closest a latent method can get: what the VAE cannot draw, no method here can) / method output.

    python -m videoshop_bench.research.toy_contact_sheet --out docs/toy_contact_sheet.png               # 5 held-out samples
    python -m videoshop_bench.research.toy_contact_sheet --out sheet.png --method svd_no_source --num-samples 3 --no-ceiling

Samples are the held-out split of ``videoshop_bench.research.evaluate_toy`` (``SyntheticDataset(seed=1000, difficulty='easy')``),
the first ``--num-samples`` ids; each edit uses the runner's per-sample generator ``sample_seed(seed, sample_id)``,
so the output rows are the videos the acceptance tables score. Frames are enlarged by ``--scale`` (nearest).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from videoshop import _compat  # noqa: E402,F401

CEILING_ROW = "truth via VAE"


def sheet_rows(videos: list[np.ndarray], scale: int, gap: int = 2) -> np.ndarray:
    """Rows of frames side by side as one uint8 image: each (T, H, W, 3) video a row, frames and rows ``gap`` px
    apart."""
    rows = []
    for video in videos:
        big = video.repeat(scale, axis=1).repeat(scale, axis=2)
        t, h, w, _ = big.shape
        row = np.full((h, t * (w + gap) - gap, 3), 255, np.uint8)
        for i in range(t):
            row[:, i * (w + gap): i * (w + gap) + w] = big[i]
        rows.append(row)
    pad = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([x for row in rows for x in (pad, row)][1:])


def contact_sheet(samples, outputs: list[np.ndarray], scale: int = 3,
                  ceilings: list[np.ndarray] | None = None) -> "PIL.Image.Image":  # noqa: F821
    """One block per sample (a caption line, then source / ground truth / [``ceilings``: the truth's VAE round
    trip] / output rows) with row labels."""
    from PIL import Image, ImageDraw

    label_w, caption_h, gap = 90, 14, 10
    names = ["source", "ground truth"] + ([CEILING_ROW] if ceilings is not None else []) + ["output"]
    middle = [[c] for c in ceilings] if ceilings is not None else [[] for _ in samples]
    blocks = [sheet_rows([s.source_video, s.gt_edited_video, *m, o], scale) for s, m, o in zip(samples, middle, outputs)]
    width = label_w + max(b.shape[1] for b in blocks)
    height = sum(caption_h + b.shape[0] + gap for b in blocks)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    y = 0
    for s, block in zip(samples, blocks):
        draw.text((2, y + 1), f"{s.sample_id}: {s.instruction}", fill="black")
        y += caption_h
        img.paste(Image.fromarray(block), (label_w, y))
        row_h = (block.shape[0] - 2 * (len(names) - 1)) // len(names)
        for k, name in enumerate(names):
            draw.text((2, y + k * (row_h + 2) + row_h // 2 - 5), name, fill="black")
        y += block.shape[0] + gap
    return img


def main(argv=None) -> None:
    from videoshop_bench.datasets.synthetic import SyntheticDataset
    from videoshop_bench.research.evaluate_toy import MODEL_OVERRIDES, build, compose, vae_round_trip
    from videoshop.method import sample_seed

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/toy_contact_sheet.png")
    p.add_argument("--model", default="toy")
    p.add_argument("--method", default="videoshop")
    p.add_argument("--num-samples", type=int, default=5)
    p.add_argument("--data-seed", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--scale", type=int, default=3)
    p.add_argument("--override", action="append", default=[], help="model.* override, e.g. model.path=DIR")
    p.add_argument("--no-ceiling", action="store_true", help="leave out the ground truth's VAE round-trip row")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    MODEL_OVERRIDES[:] = a.override
    cfg = compose([f"model={a.model}", *a.override])
    ds = SyntheticDataset(a.num_samples, int(cfg.model.num_frames), int(cfg.model.height), int(cfg.model.width),
                          seed=a.data_seed, difficulty="easy")
    samples = [ds.load(i) for i in ds.sample_ids()]
    _, pipe, method = build(a.method, a.model)
    outputs = [method.edit(s, torch.Generator().manual_seed(sample_seed(a.seed, s.sample_id))).frames for s in samples]
    ceilings = None if a.no_ceiling else [vae_round_trip(pipe, s.gt_edited_video) for s in samples]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(samples, outputs, a.scale, ceilings).save(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
