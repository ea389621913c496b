"""Seconds per Videoshop edit for model configs: `python -m videoshop_bench.research.model_timing [MODEL ...]` (default: the tiny
stand-ins). Builds model=<MODEL>'s mapping (videoshop.families.model_preset) with videoshop.models.build_pipeline, edits one random video with the
default Videoshop settings (a warm-up, then the median of --repeats runs) and prints a Markdown row per model with
the network evaluations, CPU seconds and wall seconds."""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from videoshop.families import FAMILIES, model_preset
from videoshop.models import build_pipeline

TINY = [f.model_name("tiny") for f in FAMILIES if "tiny" in f.kinds()]  # every family's tiny stand-in


def time_model(name: str, device: str = "cpu", repeats: int = 3) -> dict:
    cfg = model_preset(name)
    pipe = build_pipeline(cfg, device=device)
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    t, h, w = int(cfg["num_frames"]), int(cfg["height"]), int(cfg["width"])
    video, image = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8), rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    kw = {"prompt": "a photo"} if getattr(pipe, "takes_prompt", False) else {}
    edit = lambda: pipe(video=video, edited_image=image, generator=torch.Generator().manual_seed(0), **kw)  # noqa: E731
    edit()  # warm-up
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = edit()
        if device != "cpu":
            torch.cuda.synchronize()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return dict(model=name, shape=f"{t} x {h} x {w}", nfe=out.nfe, cpu_s=float(np.median(cpu)),
                wall_s=float(np.median(wall)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="*", default=TINY)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print("| model | frames x H x W | NFE | CPU s / edit | wall s / edit |\n|---|---|---|---|---|")
    for name in args.models:
        r = time_model(name, args.device, args.repeats)
        print(f"| {r['model']} | {r['shape']} | {r['nfe']} | {r['cpu_s']:.2f} | {r['wall_s']:.2f} |")


if __name__ == "__main__":
    main()
