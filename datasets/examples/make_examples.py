"""Regenerate the two committed example samples (deterministic): python datasets/examples/make_examples.py

They show the on-disk format (datasets/folder.py) at the tiny model's size: 14 frames, 64x112, PNG.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, when run as a script

from videoshop_bench.datasets.folder import write_sample  # noqa: E402
from videoshop_bench.datasets.schema import Sample  # noqa: E402

T, H, W = 14, 64, 112


def _background() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    sky = np.stack([90 + 0 * x, 150 + 0 * x, 220 + 0 * x], -1)
    grass = np.stack([60 + 0 * x, 150 + 0 * x, 70 + 0 * x], -1)
    return np.where((y > 40)[..., None], grass, sky).astype(np.uint8)


def _disc(cy: float, cx: float, r: float) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return (y - cy) ** 2 + (x - cx) ** 2 <= r * r


def _video(color, moving_extra=None):
    frames, masks = [], []
    for t in range(T):
        f = _background().copy()
        ball = _disc(36, 20 + 5 * t, 8)
        f[ball] = color
        m = ball.copy() if moving_extra is None else np.zeros((H, W), bool)
        if moving_extra is not None:
            box = np.zeros((H, W), bool)
            box[8:20, 80 - 2 * t:92 - 2 * t] = True
            f[box] = moving_extra
            m = box
        frames.append(f)
        masks.append(m)
    return np.stack(frames), np.stack(masks)


def main(root=Path(__file__).parent):
    src, _ = _video((220, 40, 40))
    gt, gt_masks = _video((40, 60, 220))
    write_sample(root, Sample("ball_red_to_blue", src, gt[0], gt_masks[0], "make the red ball blue",
                              "a red ball rolling on grass", "a blue ball rolling on grass", "change_color",
                              gt, gt_masks, 7.0, {"dataset": "examples", "note": "rendered; gt is exact"}),
                 overwrite=True)
    gt2, m2 = _video((220, 40, 40), moving_extra=(250, 220, 40))
    write_sample(root, Sample("ball_add_kite", src, gt2[0], m2[0], "add a yellow kite in the sky",
                              "a red ball rolling on grass", "a red ball rolling on grass and a yellow kite",
                              "add_object", None, None, 7.0, {"dataset": "examples", "note": "no ground truth"}),
                 overwrite=True)


if __name__ == "__main__":
    main()
