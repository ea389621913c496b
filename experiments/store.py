"""The results store: one folder per sample with lossless frames, an mp4, record.json and the sample's set-metric
features (features.safetensors), written atomically and safe under concurrent writers.

Many workers (processes, SLURM jobs) may share one run folder. A sample folder is built under a private scratch
name ``.<id>.tmp.<host>.<pid>.<nonce>`` and renamed into place; a folder already there is first renamed away
(``.<id>.old...``) and deleted after. Renames are atomic, so a reader sees the old or the new folder, never a mix;
concurrent writers of one sample end with one complete folder (the last one). Editing the same sample twice at
once is prevented one level up by claims (experiments/claims.py). A crashed writer leaves scratch folders;
``cleanup()`` (run at the start of every run) restores a sample folder whose swap was interrupted and deletes the
rest. Tables (results.csv, summaries) go through ``atomic_write_text``: a temporary file, then ``os.replace``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from videoshop.video_io import read_video, write_frames, write_video

from videoshop.files import atomic_path, scratch_abandoned, scratch_name, scratch_owner, swap_in_folder

from .claims import ClaimBook

log = logging.getLogger(__name__)

RECORD = "record.json"
FEATURES = "features.safetensors"


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


def restore_values(v: Any) -> Any:
    """A stored record's values as written: the strings 'nan', 'inf', '-inf' back to floats (see ``_clean``)."""
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    if isinstance(v, dict):
        return {k: restore_values(x) for k, x in v.items()}
    if isinstance(v, list):
        return [restore_values(x) for x in v]
    return v


def _read_record(path: Path) -> Optional[dict]:
    try:
        return restore_values(json.loads(path.read_text()))
    except FileNotFoundError:  # swapped away by a concurrent writer, or never written
        return None
    except ValueError as e:
        log.warning("%s: unreadable record (%s), treated as missing", path, e)
        return None


class ResultStore:
    """``claims``: when given, a write of a sample this process claimed raises ``ClaimLost`` if the claim was lost."""

    def __init__(self, root: str | Path, claims: Optional[ClaimBook] = None):
        self.root = Path(root)
        self.samples = self.root / "samples"
        self.claims = claims

    def sample_dir(self, sample_id: str) -> Path:
        return self.samples / sample_id

    def record_path(self, sample_id: str) -> Path:
        return self.sample_dir(sample_id) / RECORD

    def load_record(self, sample_id: str) -> Optional[dict]:
        return _read_record(self.record_path(sample_id))

    def write(self, sample_id: str, record: dict, frames: Optional[np.ndarray] = None, fps: float = 7.0,
              save_mp4: bool = True, features: Optional[dict[str, np.ndarray]] = None,
              features_meta: Optional[dict[str, str]] = None) -> Path:
        """Write frames, mp4, features and record into a scratch folder, then swap it in (never a half-written
        sample, whatever other writers do). ``features``: named arrays (set-metric inputs such as I3D features,
        named ``<metric key>/<name>``), ``features_meta``: string metadata stored with them (metric key -> class)."""
        if self.claims is not None:
            self.claims.check(sample_id)
        final = self.sample_dir(sample_id)
        self.samples.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(scratch_name(final.name, "tmp"))
        tmp.mkdir()
        try:
            if frames is not None:
                write_frames(tmp / "edited", frames)
                if save_mp4:
                    write_video(tmp / "edited.mp4", frames, fps)
            if features:
                save_features(tmp / FEATURES, features, features_meta)
            (tmp / RECORD).write_text(json.dumps(_clean(record), indent=1, default=_json_default))  # last: complete
            if self.claims is not None:
                self.claims.check(sample_id)
            swap_in_folder(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def write_features(self, sample_id: str, features: dict[str, np.ndarray],
                       features_meta: Optional[dict[str, str]] = None) -> Path:
        """Add or replace a finished sample's features file (atomic)."""
        path = self.sample_dir(sample_id) / FEATURES
        with atomic_path(path) as tmp:
            save_features(tmp, features, features_meta)
        return path

    def load_features(self, sample_id: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """The sample's stored features (name -> array) and their metadata; empty dicts if it has none."""
        return load_features(self.sample_dir(sample_id) / FEATURES)

    def edited_frames(self, sample_id: str) -> np.ndarray:
        return read_video(self.sample_dir(sample_id) / "edited")[0]

    def records(self) -> Iterator[dict]:
        """Every finished sample's record, in sample-id order (scratch folders skipped)."""
        if not self.samples.is_dir():
            return
        for d in sorted(self.samples.iterdir()):
            if not d.name.startswith("."):
                rec = _read_record(d / RECORD)
                if rec is not None:
                    yield rec

    def cleanup(self, older_than_s: float = 3600.0) -> list[str]:
        """Finish or discard what crashed writers left: a sample folder whose swap was cut between its two renames
        is restored from the newest complete scratch folder; other abandoned scratch entries (dead writer on this
        host, or older than ``older_than_s``) are deleted, as are abandoned temporary table files in the root.
        Returns what was done, one line per entry."""
        done: list[str] = []
        for folder in (self.samples, self.root):
            if not folder.is_dir():
                continue
            entries = [p for p in folder.iterdir() if scratch_abandoned(p, older_than_s)]
            entries.sort(key=lambda p: (scratch_owner(p.name)[1] != "tmp", -p.stat().st_mtime))  # newest tmp first
            for p in entries:
                final = p.with_name(scratch_owner(p.name)[0])
                if folder == self.samples and p.is_dir() and not final.exists() and (p / RECORD).is_file():
                    try:
                        os.rename(p, final)
                        done.append(f"restored {final.name} from {p.name}")
                        continue
                    except OSError:
                        pass
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                done.append(f"removed {p.name}")
        for line in done:
            log.warning("store cleanup in %s: %s", self.root, line)
        return done


def save_features(path: str | Path, features: dict[str, np.ndarray], meta: Optional[dict[str, str]] = None) -> None:
    """Named arrays (and string metadata) to a safetensors file (no pickles)."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in features.items()}, str(path), metadata=meta or None)


def load_features(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays, metadata) of a safetensors file written by ``save_features``; empty if it does not exist."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except FileNotFoundError:
        return {}, {}
