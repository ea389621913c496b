"""How well does a mask tracker recover the edit region? Mean IoU against the synthetic dataset's ground truth.

    python -m videoshop_bench.research.tracker_iou                                   # 30 samples of seed 0, every variant
    python -m videoshop_bench.research.tracker_iou --samples 50 --seeds 0 1 2 --out outputs/tracker_iou.csv

For each sample, the first-frame edit mask is tracked by ``videoshop_bench.eval.tracking.flow_track_masks`` through the video that
``track_on`` names (``source``, the ground-truth ``edited`` video, or ``auto``: edited for add-object edits, source
otherwise) and compared, frame by frame, with the ground-truth per-frame masks (``masks_iou``; mean over frames,
then over samples). Printed per edit type and overall, for the flow channels variants. A script, not a test:
``tests/test_eval_tracking.py`` asserts the default variant's overall mean on seed 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from videoshop import _compat  # noqa: E402,F401

VARIANTS = {"luma": ("luma",), "contrast": ("contrast",), "luma+contrast": ("luma", "contrast")}


def sample_iou(sample, track_on: str, channels: tuple[str, ...]) -> float:
    """Mean over frames of the IoU between the region ``MaskTracker`` (flow tracker, which never reads the ground
    truth) finds, with the ground-truth edited video as the method's output, and the ground-truth masks."""
    from videoshop_bench.eval.tracking import MaskTracker, masks_iou

    tracker = MaskTracker("flow", track_on=track_on, flow_channels=channels, device="cpu")
    return float(masks_iou(tracker.track(sample, sample.gt_edited_video), sample.gt_masks).mean())


def main(argv=None):
    import pandas as pd

    from videoshop_bench.datasets.synthetic import SyntheticDataset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=30, help="samples per seed (edit types cycle)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--difficulty", default="standard", choices=["easy", "standard"])
    ap.add_argument("--track-on", nargs="+", default=["auto", "source", "edited"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--out", default=None, help="CSV of per-sample IoUs")
    args = ap.parse_args(argv)

    rows = []
    t0 = time.perf_counter()
    for seed in args.seeds:
        ds = SyntheticDataset(num_samples=args.samples, seed=seed, difficulty=args.difficulty)
        for sid in ds.sample_ids():
            s = ds.load(sid)
            for on in args.track_on:
                for name in args.variants:
                    rows.append(dict(seed=seed, sample=sid, edit_type=s.edit_type, track_on=on, channels=name,
                                     iou=sample_iou(s, on, VARIANTS[name])))
    df = pd.DataFrame(rows)
    table = df.pivot_table(index=["track_on", "channels"], columns="edit_type", values="iou", aggfunc="mean")
    table["all"] = df.groupby(["track_on", "channels"])["iou"].mean()
    pd.set_option("display.width", 200)
    print(f"mean IoU vs ground-truth masks; seeds {args.seeds}, {args.samples} samples each, {args.difficulty}; "
          f"{time.perf_counter() - t0:.1f} s")
    print(table.round(3).to_string())
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out, index=False)
    return table


if __name__ == "__main__":
    main()
