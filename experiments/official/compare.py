"""Stage-by-stage comparison of the project's run with the official code's: one row per stage, with the largest
absolute difference, the largest difference relative to the official tensor's scale, and where the first
divergence appears (the first index along the stage's named leading axes, e.g. frame and step, whose relative
difference exceeds the stage's tolerance).

A stage is a ``Stage(name, ours, official, axes, tol)``: two arrays of the same shape whose first ``len(axes)``
dimensions are indexed by ``axes`` (e.g. ``("frame", "step")``); ``tol`` is the relative difference that counts as a
divergence (float32 rounding through a small network stays near 1e-6; uint8 stages use levels, tol 0.5 = any level).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

FLOAT_TOL = 1e-4  # relative to the official stage's max |value|: above float32 rounding through a tiny network


@dataclass
class Stage:
    name: str
    ours: np.ndarray
    official: np.ndarray
    axes: tuple = ()
    tol: float = FLOAT_TOL
    levels: bool = False  # uint8 stage: tol and max abs are in levels, max rel is levels / 255
    note: str = ""


@dataclass
class Row:
    stage: str
    shape: tuple
    max_abs: float
    max_rel: float
    first_divergence: str
    note: str = ""
    extra: dict = field(default_factory=dict)


def _as_array(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def first_divergence(diff: np.ndarray, axes: Sequence[str], threshold: float) -> str:
    """The first index (C order over the named leading axes) whose max difference exceeds ``threshold``, as
    ``"frame 1, step 3"``; ``"-"`` when none does; ``"all"`` for a stage without axes that diverges."""
    k = len(axes)
    if k == 0:
        return "all" if diff.size and float(np.max(diff)) > threshold else "-"
    per = diff.reshape(diff.shape[:k] + (-1,)).max(axis=-1) if diff.ndim > k else diff
    hits = np.argwhere(np.asarray(per) > threshold)
    if hits.size == 0:
        return "-"
    return ", ".join(f"{a} {int(i)}" for a, i in zip(axes, hits[0]))


def compare_stage(stage: Stage) -> Row:
    """One table row; a shape mismatch is a row too (max abs = inf), never an exception."""
    a, b = _as_array(stage.ours), _as_array(stage.official)
    if a.shape != b.shape:
        return Row(stage.name, tuple(b.shape), float("inf"), float("inf"), f"shape {a.shape} vs {b.shape}", stage.note)
    diff = np.abs(a - b)
    max_abs = float(diff.max()) if diff.size else 0.0
    if stage.levels:
        return Row(stage.name, tuple(b.shape), max_abs, max_abs / 255.0,
                   first_divergence(diff, stage.axes, stage.tol), stage.note,
                   extra={"frac_differing": float((diff > 0).mean()) if diff.size else 0.0})
    scale = float(np.abs(b).max()) if b.size else 0.0
    scale = scale if scale > 0 else 1.0
    return Row(stage.name, tuple(b.shape), max_abs, max_abs / scale,
               first_divergence(diff / scale, stage.axes, stage.tol), stage.note)


def compare_stages(stages: Sequence[Stage]) -> list[Row]:
    return [compare_stage(s) for s in stages]


def _fmt(x: float, levels: bool = False) -> str:
    if x == float("inf"):
        return "inf"
    if levels:
        return f"{x:.0f}"
    return "0" if x == 0 else f"{x:.2e}"


def format_table(rows: Sequence[Row], stages: Optional[Sequence[Stage]] = None) -> str:
    """Markdown table: stage | shape | max abs | max rel | first divergence | note."""
    levels = {s.name: s.levels for s in stages or []}
    lines = ["| stage | shape | max abs | max rel | first divergence | note |", "|---|---|---|---|---|---|"]
    for r in rows:
        lv = levels.get(r.stage, False)
        note = r.note
        if lv and "frac_differing" in r.extra:
            note = (note + "; " if note else "") + f"{100 * r.extra['frac_differing']:.2f} % of values differ"
        shape = "x".join(str(d) for d in r.shape)
        lines.append(f"| {r.stage} | {shape} | {_fmt(r.max_abs, lv)}{' levels' if lv else ''} | {_fmt(r.max_rel)} "
                     f"| {r.first_divergence} | {note} |")
    return "\n".join(lines)


def worst_float_rel(rows: Sequence[Row], stages: Sequence[Stage]) -> float:
    """Largest relative difference over the float stages (the headline 'equal to float rounding' number)."""
    lv = {s.name: s.levels for s in stages}
    vals = [r.max_rel for r in rows if not lv.get(r.stage, False)]
    return max(vals) if vals else 0.0


# ----------------------------------------------------------------------------- project-side recording
@contextmanager
def patched(owner: Any, **replacements: Any) -> Iterator[dict[str, Any]]:
    """``owner``'s attributes replaced by ``replacements`` inside the block and restored afterwards (also on error);
    yields the originals."""
    saved = {k: getattr(owner, k) for k in replacements}
    for k, v in replacements.items():
        setattr(owner, k, v)
    try:
        yield saved
    finally:
        for k, v in saved.items():
            setattr(owner, k, v)


def appending(rec: dict, name: str, fn: Callable, with_args: bool = False) -> Callable:
    """``fn`` unchanged, each call's return value (with ``with_args``: ``(args, value)``) appended to ``rec[name]``."""
    def wrapped(*a, **kw):
        out = fn(*a, **kw)
        rec.setdefault(name, []).append((a, out) if with_args else out)
        return out
    return wrapped


def record_calls(obj: Any, rec: dict, *names: str) -> None:
    """Each method ``names`` of ``obj`` (an instance: nothing to restore) appends its return values to ``rec``."""
    for name in names:
        setattr(obj, name, appending(rec, name, getattr(obj, name)))


def record_decodes(vae, rec: dict) -> None:
    """Wrap ``vae.decode`` so that each decoded batch (float, [-1, 1]) is appended to ``rec["decoded"]``; the return
    value is unchanged (the project side's "decoded frames" stage)."""
    orig_decode = vae.decode

    def decode(z, *a, **kw):
        out = orig_decode(z, *a, **kw)
        rec.setdefault("decoded", []).append(out.sample.detach().clone())
        return out

    vae.decode = decode


def padded_rows(xs: Sequence) -> np.ndarray:
    """Arrays of different shapes (e.g. one per layer) as the rows of one zero-padded (n, max size) array, so that a
    stage can hold them all with its first axis naming the site."""
    rows = [_as_array(x).ravel() for x in xs]
    out = np.zeros((len(rows), max(r.size for r in rows)))
    for i, r in enumerate(rows):
        out[i, :r.size] = r
    return out
