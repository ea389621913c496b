"""Frame windows: a run's metrics scored on part of each video (config ``frame_windows``), by the same metric objects.

Videoshop's edited frame 0 is the image editor's; the video method makes frames 1..T-1. ``FrameWindow(start=1)``
scores the paper's ten metrics over frames 1..T-1 only (experiment ``first_frame_editors``), so what the propagation
kept is measured apart from the frame it was given. Nothing is copied per metric: the window trims the inputs and
the ordinary ``score`` / ``sample_features`` run on them.

What a window trims (``FrameWindow.trim``): everything frame-aligned with the edited video, namely the edited video,
the source video, the ground-truth edited video and the ground-truth masks. What it keeps: the frame-0 references, namely
``edited_image`` (the target CLIP_tgt and TIFA judge against) and ``edit_mask`` (the region the tracker starts from).
Per-frame edit regions (CLIP_tgt+, CLIP_src+, Flow+) are tracked on the WHOLE video from frame 0 and then cut to the
window (eval/tracking.py reads ``sample.meta[WINDOW_KEY]``), so a window never restarts tracking at its own first
frame with a mask drawn on frame 0.

Columns: ``<column>[start:stop]`` (Python slice notation over frames 0..T-1), e.g. ``clip_tgt[1:]``; a set
metric's window key is ``<key>[start:stop]`` (``fvd[1:]``, features stored as ``fvd[1:]/source``).
A metric needs ``min_frames`` frames (``EditMetric.min_frames``: 2 for the pairwise Flow and CLIP_TC, 10 for the real
I3D of FVD); a shorter window skips it with the reason recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Optional

import numpy as np

WINDOW_KEY = "frame_window"  # sample.meta key: the WholeVideo a trimmed sample was cut from
_SUFFIX = re.compile(r"^(?P<base>.+?)(?P<suffix>\[\d*:-?\d*\])$")


@dataclass(frozen=True)
class FrameWindow:
    """Frames ``start`` .. ``stop - 1`` of every video (``stop`` None: to the end; a negative ``stop`` counts from
    the end, as a Python slice); ``metrics``: the metric keys scored there (None: every metric of the run)."""

    start: int = 1
    stop: Optional[int] = None
    metrics: Optional[tuple[str, ...]] = None

    def __post_init__(self):
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise ValueError(f"frame window start must be an integer >= 0, got {self.start!r}")
        if self.stop is not None and (isinstance(self.stop, bool) or not isinstance(self.stop, int)
                                      or 0 <= self.stop <= self.start):
            raise ValueError(f"frame window stop must be null, negative or > start ({self.start}), got {self.stop!r}")

    @property
    def frames(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def suffix(self) -> str:
        return f"[{self.start}:{'' if self.stop is None else self.stop}]"

    def column(self, name: str) -> str:
        return name + self.suffix

    def describe(self) -> str:
        """'frames 1..T-1' (T: the video's length)."""
        end = "T-1" if self.stop is None else (f"T{self.stop - 1}" if self.stop < 0 else str(self.stop - 1))
        return f"frames {self.start}..{end}"

    def length(self, num_frames: int) -> int:
        return len(range(num_frames)[self.frames])

    def applies(self, key: str) -> bool:
        return self.metrics is None or key in self.metrics

    def trim(self, sample, edited: np.ndarray):
        """(the sample cut to the window, the edited video cut to it); see the module docstring for what is kept."""
        s = self.frames
        cut = lambda a: None if a is None else a[s]  # noqa: E731
        part = replace(sample, source_video=sample.source_video[s], gt_edited_video=cut(sample.gt_edited_video),
                       gt_masks=cut(sample.gt_masks),
                       meta=dict(sample.meta, **{WINDOW_KEY: WholeVideo(self, sample, edited)}))
        return part, edited[s]


@dataclass(frozen=True)
class WholeVideo:
    """What a windowed sample was cut from: per-frame regions are computed on it, then cut to the window."""

    window: FrameWindow
    sample: Any
    edited: np.ndarray


def whole_video(sample) -> Optional[WholeVideo]:
    """The WholeVideo a trimmed sample came from, or None for a whole sample."""
    meta = getattr(sample, "meta", None)
    return meta.get(WINDOW_KEY) if isinstance(meta, dict) else None


def split_window(name: str) -> tuple[str, str]:
    """``'clip_tgt[1:]'`` -> ``('clip_tgt', '[1:]')``; a name without a window -> ``(name, '')``."""
    m = _SUFFIX.match(name)
    return (m["base"], m["suffix"]) if m else (name, "")


def display_name(column: str, names: dict[str, str]) -> str:
    """The display name of a possibly windowed column: ``clip_tgt_plus[1:]`` -> ``CLIP_tgt+ [1:]``."""
    base, suffix = split_window(column)
    return f"{names.get(base, base)}{' ' + suffix if suffix else ''}"


def parse_windows(node: Optional[Iterable[Any]]) -> tuple[FrameWindow, ...]:
    """``frame_windows`` config (a list of {start, stop, metrics}) -> FrameWindows; ValueError names the entry."""
    out = []
    for i, w in enumerate(node or []):
        if not isinstance(w, dict) or set(w) - {"start", "stop", "metrics"}:
            raise ValueError(f"frame_windows[{i}]: expected a mapping with start, stop, metrics, got {w!r}")
        metrics = w.get("metrics")
        try:
            out.append(FrameWindow(w.get("start", 1), w.get("stop"), None if metrics is None else tuple(metrics)))
        except ValueError as e:
            raise ValueError(f"frame_windows[{i}]: {e}") from None
    if len({w.suffix for w in out}) != len(out):
        raise ValueError("frame_windows: two windows cover the same frames")
    return tuple(out)
