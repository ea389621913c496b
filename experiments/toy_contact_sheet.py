"""Contact sheet of the toy model's edits: per sample, rows of source / ground-truth edit / method output frames.

    python -m experiments.toy_contact_sheet --out docs/toy_contact_sheet.png               # 5 held-out samples
    python -m experiments.toy_contact_sheet --out sheet.png --method svd_no_source --num-samples 3

Samples are the held-out split of ``experiments.evaluate_toy`` (``SyntheticDataset(seed=1000, difficulty='easy')``),
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

ROW_NAMES = ("source", "ground truth", "output")


def sheet_rows(source: np.ndarray, truth: np.ndarray, output: np.ndarray, scale: int, gap: int = 2) -> np.ndarray:
    """(3 rows of frames side by side) as one uint8 image: each (T, H, W, 3) video a row, frames ``gap`` px apart."""
    rows = []
    for video in (source, truth, output):
        big = video.repeat(scale, axis=1).repeat(scale, axis=2)
        t, h, w, _ = big.shape
        row = np.full((h, t * (w + gap) - gap, 3), 255, np.uint8)
        for i in range(t):
            row[:, i * (w + gap): i * (w + gap) + w] = big[i]
        rows.append(row)
    pad = np.full((gap, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([rows[0], pad, rows[1], pad, rows[2]])


def contact_sheet(samples, outputs: list[np.ndarray], scale: int = 3) -> "PIL.Image.Image":  # noqa: F821
    """One block per sample (a caption line, then source / ground truth / output rows) with row labels."""
    from PIL import Image, ImageDraw

    label_w, caption_h, gap = 90, 14, 10
    blocks = [sheet_rows(s.source_video, s.gt_edited_video, o, scale) for s, o in zip(samples, outputs)]
    width = label_w + max(b.shape[1] for b in blocks)
    height = sum(caption_h + b.shape[0] + gap for b in blocks)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    y = 0
    for s, block in zip(samples, blocks):
        draw.text((2, y + 1), f"{s.sample_id}: {s.instruction}", fill="black")
        y += caption_h
        img.paste(Image.fromarray(block), (label_w, y))
        row_h = (block.shape[0] - 4) // 3
        for k, name in enumerate(ROW_NAMES):
            draw.text((2, y + k * (row_h + 2) + row_h // 2 - 5), name, fill="black")
        y += block.shape[0] + gap
    return img


def main(argv=None) -> None:
    from datasets.synthetic import SyntheticDataset
    from experiments.evaluate_toy import MODEL_OVERRIDES, build, compose
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
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    MODEL_OVERRIDES[:] = a.override
    cfg = compose([f"model={a.model}", *a.override])
    ds = SyntheticDataset(a.num_samples, int(cfg.model.num_frames), int(cfg.model.height), int(cfg.model.width),
                          seed=a.data_seed, difficulty="easy")
    samples = [ds.load(i) for i in ds.sample_ids()]
    _, _, method = build(a.method, a.model)
    outputs = [method.edit(s, torch.Generator().manual_seed(sample_seed(a.seed, s.sample_id))).frames for s in samples]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(samples, outputs, a.scale).save(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
