"""Seeded selection of HD-VILA-100M clips for an expert set like the paper's (45 clips, Sec. 4 "Datasets").

HD-VILA-100M publishes metadata only (YouTube ids and clip spans); clips must be downloaded separately. This
module reads a local metadata file plus a folder of already downloaded clips, picks ``n`` of the clips that are
present with a seed, and writes a manifest (``manifest.jsonl``, the format ``videoshop_bench.datasets.expert`` reads) with
each clip's first frame exported for the expert to edit (``first_frames/<id>.png``). The experts then fill
``edited``, ``mask`` and ``instruction`` (and optionally ``edit_type``) per line and build with
``python run.py task=build dataset=expert dataset.build.source=<out>/manifest.jsonl``.

Metadata lines may be nested, as HD-VILA's ``hdvila_part*.jsonl``::

    {"video_id": "abc", "url": "https://www.youtube.com/watch?v=abc",
     "clip": [{"clip_id": "abc.1.mp4", "span": ["00:00:10.000", "00:00:17.500"]}, ...]}

or flat: ``{"clip_id", "video_id", "url", "span": [start, end]}`` or with ``start``/``end`` (seconds or
``HH:MM:SS.mmm``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .folder_spec import safe_sample_id
from .folder_write import write_json_atomic
from .schema import SampleError
from videoshop.video_io import VIDEO_EXTS, read_video, write_image

log = logging.getLogger(__name__)


def parse_time(value) -> Optional[float]:
    """Seconds from a number or 'HH:MM:SS(.mmm)' / 'MM:SS' text; None for None."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    parts = str(value).strip().split(":")
    try:
        secs = 0.0
        for p in parts:
            secs = secs * 60 + float(p)
        return secs
    except ValueError:
        raise ValueError(f"cannot parse time {value!r} (use seconds or HH:MM:SS.mmm)") from None


def read_hdvila_metadata(path: Union[str, Path]) -> list[dict]:
    """Flat clip records {clip_id, video_id, url, start, end, duration} from a (nested or flat) JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset.build.metadata={path}: no such file")
    clips = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            sub = rec.get("clip") or rec.get("clips")
            items = sub if isinstance(sub, list) else [rec]
            for c in items:
                span = c.get("span") or [c.get("start"), c.get("end")]
                start, end = parse_time(span[0]), parse_time(span[1])
                clip_id = str(c.get("clip_id") or c.get("id"))
                if clip_id == "None":
                    raise ValueError("no clip_id")
                clips.append({"clip_id": clip_id, "video_id": str(c.get("video_id", rec.get("video_id", ""))),
                              "url": c.get("url", rec.get("url")), "start": start, "end": end,
                              "duration": None if start is None or end is None else round(end - start, 3)})
        except (ValueError, TypeError, AttributeError, IndexError) as e:
            raise SampleError(f"{path}:{i}: bad HD-VILA record: {e}") from None
    return clips


def find_clip_file(clips_dir: Path, clip: dict) -> Optional[Path]:
    """A downloaded file for ``clip``: <clips_dir>/[<video_id>/]<clip_id> (with or without a video extension)."""
    cid = clip["clip_id"]
    stem = cid[: -len(Path(cid).suffix)] if Path(cid).suffix.lower() in VIDEO_EXTS else cid
    for folder in (clips_dir, clips_dir / clip.get("video_id", "")):
        if (folder / cid).is_file():
            return folder / cid
        for ext in VIDEO_EXTS:
            if (folder / f"{stem}{ext}").is_file():
                return folder / f"{stem}{ext}"
    return None


def sample_hdvila_clips(metadata: Union[str, Path], clips_dir: Union[str, Path], *, n: int = 45, seed: int = 0,
                        min_duration: Optional[float] = None, max_duration: Optional[float] = None,
                        one_per_video: bool = True) -> list[dict]:
    """``n`` downloaded clips chosen with ``seed`` (same inputs and seed -> same selection, in the same order).

    Candidates: clips in the metadata whose file is in ``clips_dir`` and whose duration is within bounds; they
    are sorted by clip id, permuted by ``numpy.random.default_rng(seed)``, and taken in that order (at most one per
    source video when ``one_per_video``).
    """
    clips_dir = Path(clips_dir)
    if not clips_dir.is_dir():
        raise FileNotFoundError(f"dataset.build.clips_dir={clips_dir}: no such folder")
    candidates = []
    for c in read_hdvila_metadata(metadata):
        d = c["duration"]
        if d is not None and ((min_duration and d < min_duration) or (max_duration and d > max_duration)):
            continue
        f = find_clip_file(clips_dir, c)
        if f is not None:
            candidates.append({**c, "file": str(f)})
    candidates.sort(key=lambda c: c["clip_id"])
    order = np.random.default_rng(int(seed)).permutation(len(candidates))
    chosen, videos = [], set()
    for i in order:
        c = candidates[int(i)]
        if one_per_video and c["video_id"] in videos:
            continue
        chosen.append(c)
        videos.add(c["video_id"])
        if len(chosen) == int(n):
            break
    if len(chosen) < int(n):
        log.warning("HD-VILA: only %d of %d requested clips available (%d candidates downloaded)", len(chosen),
                    n, len(candidates))
    return chosen


def read_first_frame(path) -> np.ndarray:
    """The first frame (H, W, 3) uint8 of a video without decoding the rest (falls back to ``read_video``)."""
    try:
        import av

        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return frame.to_ndarray(format="rgb24")
    except Exception:  # noqa: BLE001 - read_video gives the error message naming the file
        pass
    return read_video(path)[0][0]


def write_selection(selection: list[dict], out_dir: Union[str, Path], export_first_frames: bool = True,
                    settings: Optional[dict] = None) -> Path:
    """Write ``<out_dir>/manifest.jsonl`` for the expert set (edited/mask/instruction to be filled in) and the
    first frame of each clip to ``first_frames/<id>.png``; returns the manifest path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for c in selection:
        sid = safe_sample_id(Path(c["clip_id"]).stem if Path(c["clip_id"]).suffix.lower() in VIDEO_EXTS
                             else c["clip_id"])
        if export_first_frames:
            write_image(out_dir / "first_frames" / f"{sid}.png", read_first_frame(c["file"]))
        lines.append({"id": sid, "video": str(Path(c["file"]).resolve()), "edited": f"edited/{sid}.png",
                      "mask": f"masks/{sid}.png", "instruction": "", "edit_type": "", "clip_id": c["clip_id"],
                      "video_id": c["video_id"], "url": c["url"], "start": c["start"], "end": c["end"]})
    tmp = out_dir / ".manifest.jsonl.tmp"
    tmp.write_text("".join(json.dumps(x) + "\n" for x in lines))
    tmp.replace(out_dir / "manifest.jsonl")
    write_json_atomic(out_dir / "selection.json", {"settings": settings or {}, "clips": selection})
    return out_dir / "manifest.jsonl"
