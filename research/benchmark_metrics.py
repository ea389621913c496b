"""Time a metric set per video (a script, not a test).

    python research/benchmark_metrics.py --backbones tiny            # metrics=paper_tiny (eval/registry.py), CPU
    python research/benchmark_metrics.py --backbones real-random --device cuda
    python research/benchmark_metrics.py --set modern_tiny --backbones real-random   # VLM judge, background, MFS
    python research/benchmark_metrics.py --set v2vbench_tiny --backbones real-random # V2VBench's eight metrics
    python research/benchmark_metrics.py --set modern_tiny --only propagation --backbones real-random

``tiny`` instantiates the ``paper_tiny`` metric set (eval/registry.py). ``real-random`` builds the real-size architectures with random
weights (open_clip ViT-B-32, torchvision raft_large with 12 updates at >= 128 px); speed does not depend on weight
values. Two parts have no real-size random stand-in and are NOT timed at real size: I3D (only the TorchScript file
defines it; the tiny stand-in is used and labelled) and TIFA (multi-GB LLaMA-2/BLIP/T5 checkpoints; skipped unless
--tifa-tiny). Videos are synthetic (datasets/synthetic.py), edited = the ground-truth edited video; the edit region
is tracked by the flow tracker (``--tracker flow``, as on a dataset without ground-truth masks). Each video is
scored twice: "cold" (source-side work computed: source embeddings, source flow, I3D source features, tracked masks)
and "warm" (source side from the cache, i.e. the cost of each further method on the same dataset). Model loading is
excluded and reported separately. ``--set`` picks the metric set (default ``paper_tiny``; ``modern_tiny``: the VLM
judge, background preservation and motion fidelity). In ``modern``, real-random means LPIPS's SqueezeNet at random
weights (its real size) and the 55 x 55 grid of the flow point tracker; the VLM judge stays the tiny Qwen2.5-VL
(its 7B architecture is timed by research/benchmark_vlm_judge.py). The warm pass scores a different edited video
(the first one with its lowest bit flipped), so metrics that cache per edited video (the judge's answers, the
V2VBench backbones' feature memo) are timed as for a further method, not as a rerun. ``v2vbench_tiny`` with
real-random builds every V2VBench model at real size with random weights (CLIP ViT-L/14, DINOv2-base, the aesthetic
predictor, PickScore's ViT-H/14, ViCLIP-L, DOVER, GMFlow).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from videoshop import _compat  # noqa: E402,F401


def build_metrics(backbones: str, device: str, cache: str, tifa_tiny: bool, tracker: str = "flow",
                  metric_set: str = "paper_tiny", only: tuple[str, ...] = ()) -> dict:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from videoshop_bench.eval.registry import set_config

    conf = Path(__file__).resolve().parents[1] / "conf"
    root = OmegaConf.create({"device": device, "paths": {"cache": cache},
                             "tracking": OmegaConf.load(conf / "tracking" / "gt_or_flow.yaml"),
                             "metrics": set_config(metric_set)})
    root.tracking.tracker = tracker
    cfg = root.metrics
    for key in [k for k in cfg if only and k not in only]:
        del cfg[key]
    if backbones == "real-random" and metric_set.startswith("v2vbench"):
        for node in cfg.values():  # every V2VBench model has a real-size random build
            node.backbone = "random"
    elif backbones == "real-random":
        for key in ("clip_tgt", "clip_src", "clip_tc"):
            if key in cfg:
                cfg[key].backbone, cfg[key].model = "random", "ViT-B-32"
        if "flow" in cfg:
            cfg.flow.backbone, cfg.flow.model, cfg.flow.num_flow_updates = "random", "raft_large", 12
            cfg.flow.min_size = 128
        if "tifa" in cfg and not tifa_tiny:
            del cfg["tifa"]
        if "background" in cfg:
            cfg.background.backbone = "random"
        if "motion_fidelity" in cfg:
            cfg.motion_fidelity.grid_size = 55
        if "propagation" in cfg:  # open_clip ViT-B-32 at random weights (embedder=dinov2: DINOv2-base)
            cfg.propagation.backbone = "random"
    out = {}
    for key, node in cfg.items():
        t = time.perf_counter()
        out[key] = instantiate(node)
        print(f"load {key}: {time.perf_counter() - t:.2f} s", flush=True)
    return out


def run(metrics: dict, samples: list) -> dict:
    import numpy as np

    times = {k: {"cold": [], "warm": [], "cold_cpu": [], "warm_cpu": []} for k in metrics}
    for s in samples:
        for phase, edited in (("cold", s.gt_edited_video), ("warm", np.bitwise_xor(s.gt_edited_video, 1))):
            for k, m in metrics.items():
                t, c = time.perf_counter(), time.process_time()
                if m.per_sample:
                    m.score(s, edited)
                else:
                    m.update(s, edited)
                times[k][phase].append(time.perf_counter() - t)
                times[k][phase + "_cpu"].append(time.process_time() - c)  # CPU s: robust to other jobs' load
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", choices=("tiny", "real-random"), default="tiny")
    p.add_argument("--set", dest="metric_set", default="paper_tiny", help="a metric set's tiny twin, e.g. modern_tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--videos", type=int, default=3)
    p.add_argument("--frames", type=int, default=14)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=112)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    p.add_argument("--tifa-tiny", action="store_true", help="real-random: include the tiny TIFA pipeline")
    p.add_argument("--json", default=None, help="write the timings here")
    p.add_argument("--only", default="", help="comma-separated metric keys of the set to time (default: all)")
    p.add_argument("--tracker", default="flow", choices=("flow", "gt_or_flow"),
                   help="flow (default): track the edit region as on a dataset without ground-truth masks")
    a = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from videoshop_bench.datasets.synthetic import SyntheticDataset

    load = os.getloadavg()
    ds = SyntheticDataset(num_samples=a.videos + 1, num_frames=a.frames, height=a.height, width=a.width)
    samples = [ds.load(i) for i in ds.sample_ids()]
    with tempfile.TemporaryDirectory() as cache:
        metrics = build_metrics(a.backbones, a.device, cache, a.tifa_tiny, a.tracker, a.metric_set,
                                tuple(k for k in a.only.split(",") if k))
        run(metrics, samples[:1])  # warm-up (lazy init, first-call allocations); not counted
        times = run(metrics, samples[1:])
    rows = {k: {ph: float(np.mean(v)) for ph, v in d.items()} for k, d in times.items()}
    print(f"\nset={a.metric_set} backbones={a.backbones} device={a.device} video={a.frames}x{a.height}x{a.width} "
          f"videos={a.videos} threads={torch.get_num_threads()} tracker={a.tracker}")
    print(f"load average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); "
          f"wall s (CPU s of this process)")
    print(f"{'metric':16s} {'cold s/video':>20s} {'warm s/video':>20s}")
    for k, r in rows.items():
        print(f"{k:16s} {r['cold']:11.3f} ({r['cold_cpu']:6.3f}) {r['warm']:11.3f} ({r['warm_cpu']:6.3f})")
    tot = {ph: sum(r[ph] for r in rows.values()) for ph in ("cold", "warm", "cold_cpu", "warm_cpu")}
    print(f"{'TOTAL':16s} {tot['cold']:11.3f} ({tot['cold_cpu']:6.3f}) {tot['warm']:11.3f} ({tot['warm_cpu']:6.3f})")
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "per_metric": rows, "total": tot,
                                            "load_average": [load[0], os.getloadavg()[0]]}, indent=1))


if __name__ == "__main__":
    main()
