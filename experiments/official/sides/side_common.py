"""Helpers shared by the side scripts (run in the side environments, Python 3.11 with the official code's old
libraries; never imports the project: only the standard library here, torch / PIL imported where used).

Each side script is launched as ``python <method>_side.py --official DIR --weights W --inputs IN.pt --out OUT.pt
[--compat PATH] [flags]`` by ``experiments/official_check.py``; this file sits beside them, on their ``sys.path``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys


def parse_side_args(compat: bool = True, flags: tuple[str, ...] = ()) -> argparse.Namespace:
    """The arguments every side script takes: ``--official --weights --inputs --out``, ``--compat`` (the CPU-torch
    shim's path) when ``compat``, and the boolean ``flags`` (e.g. ``--keep-temporal-bias``)."""
    ap = argparse.ArgumentParser()
    for k in ("--official", "--weights", "--inputs", "--out") + (("--compat",) if compat else ()):
        ap.add_argument(k, required=True)
    for flag in flags:
        ap.add_argument(flag, action="store_true")
    return ap.parse_args()


def load_compat(path: str) -> None:
    """videoshop/_compat.py (the CPU-torch operator shim) loaded by file path, before anything imports torchvision."""
    spec = importlib.util.spec_from_file_location("_videoshop_compat", path)
    compat = importlib.util.module_from_spec(spec)
    sys.modules["_videoshop_compat"] = compat  # keeps its torch.library fragment alive
    spec.loader.exec_module(compat)


def start_side(compat: bool = True, flags: tuple[str, ...] = ()):
    """What every side does first: parse the arguments, load the shim (when ``compat``), torch on one thread, and
    the driver's inputs; returns ``(args, inputs)``. The caller puts the official code on ``sys.path``."""
    args = parse_side_args(compat, flags)
    if compat:
        load_compat(args.compat)
    import torch

    torch.set_num_threads(1)
    return args, torch.load(args.inputs, weights_only=False)


def save_frames(folder: str, frames, pattern: str = "{:05d}.png") -> str:
    """uint8 (H, W, 3) frames as PNG files ``pattern.format(i)`` in ``folder`` (created); returns ``folder``."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(os.path.join(folder, pattern.format(i)))
    return folder


def record_after(owner, name: str, record) -> None:
    """Replace ``owner.name`` by a wrapper that calls it unchanged, then ``record(out, *args, **kwargs)``."""
    orig = getattr(owner, name)

    def wrapped(*a, **kw):
        out = orig(*a, **kw)
        record(out, *a, **kw)
        return out

    setattr(owner, name, wrapped)


def rng_hash() -> str:
    """A short hash of torch's global CPU RNG state."""
    import torch

    return hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()[:16]
