"""The results store: one folder per sample with lossless frames, an mp4 and record.json, written atomically."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from datasets.video_io import read_video, write_frames, write_video

RECORD = "record.json"


def _json_default(o: Any):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _clean(v: Any) -> Any:
    """NaN/inf -> None-safe JSON: floats kept as strings 'nan'/'inf' so they round-trip."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def _restore(v: Any) -> Any:
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    if isinstance(v, dict):
        return {k: _restore(x) for k, x in v.items()}
    return v


class ResultStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.samples = self.root / "samples"

    def sample_dir(self, sample_id: str) -> Path:
        return self.samples / sample_id

    def load_record(self, sample_id: str) -> Optional[dict]:
        p = self.sample_dir(sample_id) / RECORD
        if not p.is_file():
            return None
        return _restore(json.loads(p.read_text()))

    def is_done(self, sample_id: str, config_hash: str) -> bool:
        r = self.load_record(sample_id)
        return r is not None and r.get("status") == "ok" and r.get("config_hash") == config_hash

    def write(self, sample_id: str, record: dict, frames: Optional[np.ndarray] = None, fps: float = 7.0,
              save_mp4: bool = True) -> Path:
        """Write frames, mp4 and record into a temporary folder, then swap it in (never a half-written sample)."""
        final = self.sample_dir(sample_id)
        tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if frames is not None:
            write_frames(tmp / "edited", frames)
            if save_mp4:
                write_video(tmp / "edited.mp4", frames, fps)
        (tmp / RECORD).write_text(json.dumps(_clean(record), indent=1, default=_json_default))
        if final.exists():
            old = final.with_name(f".{final.name}.old{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        return final

    def edited_frames(self, sample_id: str) -> np.ndarray:
        return read_video(self.sample_dir(sample_id) / "edited")[0]

    def records(self) -> Iterator[dict]:
        if not self.samples.is_dir():
            return
        for d in sorted(self.samples.iterdir()):
            if not d.name.startswith(".") and (d / RECORD).is_file():
                yield _restore(json.loads((d / RECORD).read_text()))
