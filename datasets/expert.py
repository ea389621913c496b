"""Expert dataset and user videos: raw source videos + edited first frames + masks + instructions -> samples.

Inputs (``source``) in one of three forms, paths relative to the manifest's folder:

* a CSV manifest (``.csv``) or a JSONL manifest (``.jsonl``), one sample per row with columns
  ``video`` (required: a video file, a folder of frames or a .npy), ``edited`` (required: the edited first
  frame), ``instruction`` (required), ``mask`` (edit region, white = edited; required unless
  ``require_mask=False``), and optional ``id``, ``edit_type``, ``source_prompt``, ``target_prompt``;
* a folder containing ``manifest.csv`` or ``manifest.jsonl`` (read as above);
* a folder of sample folders ``<id>/`` each with ``source.<mp4|mov|...>`` (or ``source/`` frames),
  ``edited.<png|jpg>``, ``mask.<png|...>`` and ``instruction.txt`` or ``meta.json``
  (``{"instruction": ..., "edit_type": ..., "source_prompt": ..., "target_prompt": ...}``).

Videos of any length, frame rate and size are resampled to ``num_frames`` (uniformly over the whole clip, or at
``sample_fps`` from the start) and brought to ``height`` x ``width`` (16:9 at the model's resolution by default)
by centre-cropping to that aspect ratio and resizing (``fit='crop'``; or 'resize' / 'pad'); the edited frame
and mask go through the same geometry. The paper's expert set: 45 HD-VILA-100M clips, 14 frames, 16:9.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np

from .base import select_ids
from .edit_types import normalize_edit_type
from .fit import fit_frames, fit_image
from .folder_spec import check_sample_id, safe_sample_id
from .folder_write import build_samples, report_path, shard_ids
from .schema import Sample, SampleError
from videoshop.video_io import IMAGE_EXTS, VIDEO_EXTS, InputLimits, open_video_stream, read_image, read_video

log = logging.getLogger(__name__)

MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
ALIASES = {"video": ("video", "source", "source_video", "video_path"),
           "edited": ("edited", "edited_image", "edited_frame", "edited_path", "target", "target_image"),
           "mask": ("mask", "edit_mask", "mask_path"),
           "instruction": ("instruction", "edit_instruction", "prompt"),
           "id": ("id", "sample_id", "clip_id")}
ASPECT_TOLERANCE = 0.03  # relative difference allowed between the video's and the edited frame's aspect ratio


# ----------------------------------------------------------------------------- reading the entries
def _get(row: dict, key: str):
    for k in ALIASES.get(key, (key,)):
        v = row.get(k)
        if v is not None and not (isinstance(v, float) and v != v) and str(v).strip() != "":
            return v
    return None


def read_manifest(path: Union[str, Path]) -> list[dict]:
    """Rows of a CSV or JSONL manifest as dicts with absolute paths; raises SampleError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise SampleError(f"manifest not found: {path}")
    rows: list[dict] = []
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SampleError(f"manifest {path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    if path.suffix.lower() == ".csv":
        for i, r in enumerate(csv.DictReader(io.StringIO(text, newline="")), start=2):
            rows.append({**{k.strip(): v for k, v in r.items() if k}, "_where": f"{path}:{i}"})
    elif path.suffix.lower() in (".jsonl", ".json"):
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except RecursionError:
                raise SampleError(f"{path}:{i}: JSON nested too deeply to parse") from None
            except ValueError as e:
                raise SampleError(f"{path}:{i}: invalid JSON: {e}") from e
            if not isinstance(r, dict):
                raise SampleError(f"{path}:{i}: expected a JSON object per line")
            rows.append({**r, "_where": f"{path}:{i}"})
    else:
        raise SampleError(f"manifest {path}: expected a .csv or .jsonl file")
    entries = []
    for r in rows:
        e = {k: _get(r, k) for k in ("id", "video", "edited", "mask", "instruction")}
        for k in ("edit_type", "source_prompt", "target_prompt"):
            e[k] = _get(r, k)
        for k in ("video", "edited", "mask"):
            if e[k] is not None and not Path(str(e[k])).expanduser().is_absolute():
                e[k] = str(path.parent / str(e[k]))
        if e["id"] is None:
            if e["video"] is None:
                raise SampleError(f"{r['_where']}: no 'video' (and no 'id')")
            e["id"] = Path(str(e["video"])).stem
        e["id"] = safe_sample_id(str(e["id"]))
        e["_where"] = r["_where"]
        e["extra"] = {k: v for k, v in r.items() if k not in sum(ALIASES.values(), ()) and not k.startswith("_")
                      and k not in ("edit_type", "source_prompt", "target_prompt")}
        entries.append(e)
    return entries


def _find(folder: Path, stem: str, exts: tuple[str, ...]) -> Optional[Path]:
    for p in sorted(folder.glob(f"{stem}.*")):
        if p.suffix.lower() in exts:
            return p
    return None


def read_sample_folders(root: Union[str, Path]) -> list[dict]:
    """Entries from a folder of sample folders (see module docstring)."""
    root = Path(root)
    entries = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        video = _find(d, "source", VIDEO_EXTS + (".npy", ".npz")) or _find(d, "video", VIDEO_EXTS)
        if video is None and (d / "source").is_dir():
            video = d / "source"
        e = {"id": safe_sample_id(d.name), "video": str(video) if video else None,
             "edited": str(p) if (p := _find(d, "edited", IMAGE_EXTS)) else None,
             "mask": str(p) if (p := _find(d, "mask", IMAGE_EXTS)) else None,
             "instruction": None, "edit_type": None, "source_prompt": None, "target_prompt": None,
             "_where": str(d), "extra": {}}
        if (d / "meta.json").is_file():
            try:
                meta = json.loads((d / "meta.json").read_bytes().decode("utf-8"))
            except RecursionError:
                raise SampleError(f"{d / 'meta.json'}: JSON nested too deeply to parse") from None
            except ValueError as err:  # UnicodeDecodeError included
                raise SampleError(f"{d / 'meta.json'}: invalid JSON: {err}") from err
            for k in ("instruction", "edit_type", "source_prompt", "target_prompt"):
                e[k] = meta.get(k, e[k])
            e["extra"] = {k: v for k, v in meta.items() if k not in e}
        if e["instruction"] is None and (d / "instruction.txt").is_file():
            try:
                e["instruction"] = (d / "instruction.txt").read_bytes().decode("utf-8").strip()
            except UnicodeDecodeError as err:
                raise SampleError(f"{d / 'instruction.txt'}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        entries.append(e)
    return entries


def read_entries(source: Union[str, Path]) -> list[dict]:
    source = Path(source).expanduser()
    if source.is_file():
        return read_manifest(source)
    if source.is_dir():
        for name in MANIFEST_NAMES:
            if (source / name).is_file():
                return read_manifest(source / name)
        return read_sample_folders(source)
    raise FileNotFoundError(f"dataset.build.source={source}: no such manifest or folder")


# ----------------------------------------------------------------------------- conversion
def temporal_indices(num_source: int, num_frames: int, source_fps: float, sample_fps: Optional[float]) -> np.ndarray:
    """Frame indices: ``num_frames`` spread uniformly over the whole clip (``sample_fps`` None), or taken at
    ``sample_fps`` from the start (the last frame repeats if the clip is too short)."""
    if not sample_fps:
        return np.round(np.linspace(0, num_source - 1, num_frames)).astype(int)
    idx = np.round(np.arange(num_frames) * float(source_fps) / float(sample_fps)).astype(int)
    return np.minimum(idx, num_source - 1)


def _check_frames(path, video: np.ndarray) -> None:
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise SampleError(f"{path}: expected (T, H, W, 3) uint8 frames, got {video.shape} {video.dtype}")
    if video.shape[0] < 2:
        raise SampleError(f"{path}: {video.shape[0]} frame(s); need at least 2")


def read_selected_frames(path, num_frames: int, sample_fps: Optional[float] = None,
                         limits: InputLimits = InputLimits()):
    """``(frames, source_fps, source_frame_count, indices)``: only the frames ``temporal_indices`` selects.

    Video files are decoded twice with PyAV (count, then keep the selected frames), so memory stays at
    ``num_frames`` frames whatever the clip's length; frame folders and arrays go through ``read_video``.
    """
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in (".npy", ".npz"):
        video, fps = read_video(path, limits)
        _check_frames(path, video)
        idx = temporal_indices(video.shape[0], num_frames, fps, sample_fps)
        return video[idx], fps, video.shape[0], idx
    try:
        import av

        with av.open(str(path)) as container:
            stream = open_video_stream(container, path, limits)  # header checked before decoding
            fps = float(stream.average_rate) if stream.average_rate else 7.0
            total = 0
            for frame in container.decode(stream):  # counted without keeping pixels; a misstated length too
                total += 1
                limits.check_video(path, total, frame.height, frame.width)
        if total < 2:
            raise SampleError(f"{path}: {total} decodable frame(s); need at least 2")
        idx = temporal_indices(total, num_frames, fps, sample_fps)
        wanted, kept = set(idx.tolist()), {}
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(container.streams.video[0])):
                if i in wanted:
                    kept[i] = frame.to_ndarray(format="rgb24")
                if i >= idx.max():
                    break
        video = np.stack([kept[int(i)] for i in idx])
    except SampleError:  # also VideoReadError: already one line naming the file
        raise
    except Exception as err:  # noqa: BLE001
        raise SampleError(f"cannot read video {path}: {type(err).__name__}: {err}".splitlines()[0]) from err
    _check_frames(path, video)
    return video, fps, total, idx


def _check_aspect(what: str, path, size: tuple[int, int], video_size: tuple[int, int]) -> None:
    a, b = size[1] / size[0], video_size[1] / video_size[0]
    if abs(a / b - 1) > ASPECT_TOLERANCE:
        raise SampleError(f"{what} {path}: size {size[1]}x{size[0]} (aspect {a:.3f}) does not match the video's "
                          f"{video_size[1]}x{video_size[0]} (aspect {b:.3f}); it must be an edit of the first frame")


def convert_entry(e: dict, *, num_frames: int = 14, height: int = 576, width: int = 1024, fit: str = "crop",
                  sample_fps: Optional[float] = None, require_mask: bool = True, dataset: str = "expert") -> Sample:
    """Validate every field of one entry and convert it to a Sample at the target geometry."""
    sid = check_sample_id(e["id"])
    where = e.get("_where", sid)
    instruction = e.get("instruction")
    if instruction is None or not str(instruction).strip():
        raise SampleError(f"{where}: instruction is empty")
    try:
        edit_type, edit_type_source = normalize_edit_type(e.get("edit_type"), str(instruction))
    except ValueError as err:
        raise SampleError(f"{where}: {err}") from None
    for k in ("video", "edited"):
        if not e.get(k):
            raise SampleError(f"{where}: no {k} given")
        if not Path(e[k]).exists():
            raise SampleError(f"{where}: {k} file not found: {e[k]}")
    if not e.get("mask"):
        if require_mask:
            raise SampleError(f"{where}: no mask given (set dataset.build.require_mask=false to allow)")
    elif not Path(e["mask"]).is_file():
        raise SampleError(f"{where}: mask file not found: {e['mask']}")
    video, src_fps, total, idx = read_selected_frames(e["video"], int(num_frames), sample_fps)
    edited = read_image(e["edited"])
    _check_aspect("edited frame", e["edited"], edited.shape[:2], video.shape[1:3])
    mask = None
    if e.get("mask"):
        mask = read_image(e["mask"], mode="mask")
        _check_aspect("mask", e["mask"], mask.shape, video.shape[1:3])
        if not mask.any():
            raise SampleError(f"mask {e['mask']}: empty (no pixel is 255; white = edited region)")
    out_fps = float(sample_fps) if sample_fps else float(num_frames) / max(total / src_fps, 1e-6)
    frames = fit_frames(video, int(height), int(width), fit)
    meta = {"dataset": dataset, "original": {"video": str(e["video"]), "edited": str(e["edited"]),
                                             "mask": str(e["mask"]) if e.get("mask") else None,
                                             "num_frames": int(total), "fps": float(src_fps),
                                             "height": int(video.shape[1]), "width": int(video.shape[2])},
            "frame_indices": idx.tolist(), "fit": fit, "edit_type_source": edit_type_source, **(e.get("extra") or {})}
    return Sample(sample_id=sid, source_video=frames, edited_image=fit_image(edited, int(height), int(width), fit),
                  edit_mask=fit_image(mask, int(height), int(width), fit, mask=True) if mask is not None else None,
                  instruction=str(instruction).strip(), source_prompt=e.get("source_prompt"),
                  target_prompt=e.get("target_prompt"), edit_type=edit_type, fps=round(out_fps, 4),
                  meta=meta).validate()


class ExpertDataset:
    """Raw user videos read and converted on the fly (implements ``VideoEditDataset``); ``build_expert`` writes
    the same samples once to the common folder format, which is what benchmark runs should read."""

    def __init__(self, source, name: str = "expert", num_frames: int = 14, height: int = 576, width: int = 1024,
                 fit: str = "crop", sample_fps: Optional[float] = None, require_mask: bool = True):
        self.source, self.name = Path(source), str(name)
        self.options = dict(num_frames=int(num_frames), height=int(height), width=int(width), fit=fit,
                            sample_fps=sample_fps, require_mask=bool(require_mask), dataset=self.name)
        entries = read_entries(self.source)
        self._entries: dict[str, dict] = {}
        for e in entries:
            if e["id"] in self._entries:
                raise SampleError(f"{e['_where']}: duplicate sample id {e['id']!r}")
            self._entries[e["id"]] = e

    def sample_ids(self) -> list[str]:
        return list(self._entries)

    def load(self, sample_id: str) -> Sample:
        if sample_id not in self._entries:
            raise KeyError(f"{self.source}: no sample {sample_id!r}")
        return convert_entry(self._entries[sample_id], **self.options)


def build_expert(source, out_root, *, name: str = "expert", num_frames: int = 14, height: int = 576,
                 width: int = 1024, fit: str = "crop", sample_fps: Optional[float] = None, require_mask: bool = True,
                 limit: Optional[int] = None, ids: Optional[Iterable[str]] = None, shard_index: int = 0,
                 num_shards: int = 1, overwrite: bool = False) -> dict:
    """Convert a manifest/folder of raw user videos into the common folder format; returns the build report."""
    ds = ExpertDataset(source, name=name, num_frames=num_frames, height=height, width=width, fit=fit,
                       sample_fps=sample_fps, require_mask=require_mask)
    selected = shard_ids(select_ids(ds.sample_ids(), limit, ids), shard_index, num_shards)
    settings = {"dataset": name, "source": str(source), **ds.options, "shard_index": shard_index,
                "num_shards": num_shards}
    return build_samples(out_root, selected, ds.load, settings=settings, overwrite=overwrite,
                         report_file=report_path(out_root, shard_index, num_shards), desc=name)
