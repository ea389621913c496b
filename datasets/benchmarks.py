"""What the published editing benchmarks (EditVerseBench, FiVE-Bench, V2VBench, DAVIS 2017) share once their index
files are read: an *entry* per sample, converted here to the sample schema at the model's length and size.

An entry is a dict (each benchmark module's ``read_entries`` makes them from the published files)::

    id            sample id (folder name of the built sample)
    _where        "<file>:<row or key>" named by every error about this entry
    video         a video file or a folder of frames
    instruction   the edit instruction (or the target prompt for prompt-driven benchmarks)
    source_prompt, target_prompt, edit_type (None = keyword rules on the instruction)
    edited        optional: the benchmark's edited first frame (an image, or a video whose first frame it is)
    mask          optional: the first-frame edit region (an image, a video, or a folder of per-frame masks)
    masks_dir     optional: per-frame edit-region masks (a folder, one per source frame, same names/order)
    mask_rule     how a mask image becomes bool: ("gt", t) = value > t, ("eq", v) = value == v (DAVIS palette ids)
    extras        benchmark-specific data kept in ``Sample.extras`` (e.g. FiVE-Bench's judge questions)
    meta          anything else worth recording (benchmark name, version, original fields)

Benchmarks that ship no edited first frame (FiVE-Bench, V2VBench, DAVIS) take them from ``first_frames``: a folder
of ``<sample_id>.png`` (or .jpg) made with any image editor. A sample without one fails with one line naming the
file it looked for; the other samples build. ``first_frames="editor"`` builds them without one (the source frame
stands in, ``meta["edited_first_frame"] = "missing"``): a run then makes it with ``first_frame.editor=...``
(experiments/first_frame.py), and ``first_frame.editor=none`` refuses such a sample with one line.

Frames: ``num_frames`` spread uniformly over the whole clip (or at ``sample_fps`` from the start), brought to
``height`` x ``width`` by ``fit`` (crop | resize | pad) as the expert builder does; the original clip's path,
frame count, fps, size and the chosen frame indices are recorded in ``meta.original`` for metric protocols that
evaluate at the original resolution (FiVE-Bench, V2VBench).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from .base import select_ids
from .edit_types import normalize_edit_type
from .expert import read_selected_frames
from .fit import fit_frames, fit_image
from .folder_spec import check_sample_id
from .folder_write import build_samples, report_path, shard_ids
from .schema import Sample, SampleError
from videoshop.video_io import IMAGE_EXTS, VIDEO_EXTS, read_image

log = logging.getLogger(__name__)
# dataset.build.first_frames=editor: build without edited first frames; each run makes them with first_frame.editor
# (experiments/first_frame.py), and such a sample's meta["edited_first_frame"] says "missing"
FROM_EDITOR = "editor"
EDITOR_MISSING = "missing"


# ----------------------------------------------------------------------------- files
def frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, in name order (00000.jpg, 00001.jpg, ...)."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS)


def find_video(folder: Path, stem: str) -> Optional[Path]:
    """``<folder>/<stem>`` as a frame folder or ``<folder>/<stem>.<video ext>``; None when neither exists."""
    folder = Path(folder)
    if (folder / stem).is_dir():
        return folder / stem
    for ext in VIDEO_EXTS:
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


def first_frame_file(first_frames, sample_id: str, where: str = "") -> Path:
    """``<first_frames>/<sample_id>.<png|jpg|...>``; SampleError naming the expected file when there is none."""
    where = where or sample_id
    if not first_frames:
        raise SampleError(f"{where}: the benchmark ships no edited first frame; give a folder of them "
                          f"(dataset.build.first_frames=DIR holding {sample_id}.png), or "
                          f"dataset.build.first_frames={FROM_EDITOR} to make them at run time (first_frame.editor=...)")
    folder = Path(first_frames).expanduser()
    for ext in IMAGE_EXTS:
        if (folder / f"{sample_id}{ext}").is_file():
            return folder / f"{sample_id}{ext}"
    raise SampleError(f"{where}: no edited first frame {folder / (sample_id + '.png')} "
                      f"(dataset.build.first_frames)")


def read_first_image(path, where: str) -> np.ndarray:
    """An RGB (H, W, 3) uint8 image from an image file or the first frame of a video / frame folder."""
    path = Path(path)
    if not path.exists():
        raise SampleError(f"{where}: file not found: {path}")
    if path.is_dir() or path.suffix.lower() in VIDEO_EXTS:
        frames, _, _, _ = read_selected_frames(path, 2)
        return np.ascontiguousarray(frames[0])
    return np.array(read_image(path))


def mask_from_array(values: np.ndarray, rule=("gt", 127)) -> np.ndarray:
    """Bool mask from a mask image's values: ("gt", t) -> value > t (grey, or any channel for RGB);
    ("eq", v) -> value == v (an indexed palette image's object id, e.g. DAVIS)."""
    kind, v = rule
    a = np.asarray(values)
    if kind == "eq":
        return (a[..., 0] if a.ndim == 3 else a) == int(v)
    if a.ndim == 3:
        a = a.max(axis=-1)
    return a > int(v)


def read_mask_image(path, rule=("gt", 127), where: str = "") -> np.ndarray:
    """(H, W) bool mask from a mask image (palette images keep their indices), a video or a frame folder (first
    frame); one line naming the file when unreadable."""
    from PIL import Image

    path = Path(path)
    if not path.exists():
        raise SampleError(f"{where}: mask not found: {path}")
    if path.is_dir():  # a folder of per-frame masks: its first file (palette indices kept)
        files = frame_files(path)
        if not files:
            raise SampleError(f"{where}: no mask images in {path}")
        path = files[0]
    try:
        if path.suffix.lower() in VIDEO_EXTS:
            return mask_from_array(read_first_image(path, where), rule)
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im) if im.mode in ("P", "L", "1", "I", "I;16") else np.asarray(im.convert("RGB"))
        return mask_from_array(arr, rule)
    except SampleError:
        raise
    except Exception as e:  # noqa: BLE001
        raise SampleError(f"{where}: cannot read mask {path}: {type(e).__name__}: {e}".splitlines()[0]) from e


def read_mask_frames(folder, indices: np.ndarray, num_source: int, rule, where: str) -> np.ndarray:
    """(len(indices), H, W) bool masks: the per-frame mask files of ``folder`` at the selected frame indices.
    The folder must hold one mask per source frame (same count), so frame i of the video is mask i."""
    files = frame_files(folder) if Path(folder).is_dir() else []
    if len(files) != num_source:
        raise SampleError(f"{where}: {folder} holds {len(files)} mask(s) for {num_source} source frames")
    return np.stack([read_mask_image(files[int(i)], rule, where) for i in indices])


# ----------------------------------------------------------------------------- conversion
def _aspect_check(what: str, path, size, video_size, where: str) -> None:
    a, b = size[1] / size[0], video_size[1] / video_size[0]
    if abs(a / b - 1) > 0.03:
        raise SampleError(f"{where}: {what} {path}: size {size[1]}x{size[0]} does not match the video's "
                          f"{video_size[1]}x{video_size[0]}; it must be an edit of the first frame")


def convert_entry(e: dict, *, num_frames: int = 14, height: int = 576, width: int = 1024, fit: str = "crop",
                  sample_fps: Optional[float] = None, first_frames=None) -> Sample:
    """One benchmark entry (module docstring) -> a validated Sample at the target geometry."""
    sid = check_sample_id(e["id"])
    where = e.get("_where", sid)
    instruction = str(e.get("instruction") or "").strip()
    if not instruction:
        raise SampleError(f"{where}: no instruction or target prompt")
    try:
        edit_type, edit_type_source = normalize_edit_type(e.get("edit_type"), instruction)
    except ValueError as err:
        raise SampleError(f"{where}: {err}") from None
    if not e.get("video") or not Path(e["video"]).exists():
        raise SampleError(f"{where}: source video not found: {e.get('video')}")
    from_editor = not e.get("edited") and str(first_frames) == FROM_EDITOR
    edited_path = None if from_editor else (e.get("edited") or first_frame_file(first_frames, sid, where))
    video, src_fps, total, idx = read_selected_frames(e["video"], int(num_frames), sample_fps)
    if from_editor:  # a stand-in (the source frame) that the run's first_frame.editor replaces; editor=none refuses it
        edited = np.ascontiguousarray(video[0])
    else:
        edited = read_first_image(edited_path, where)
        _aspect_check("edited first frame", edited_path, edited.shape[:2], video.shape[1:3], where)
    rule = e.get("mask_rule") or ("gt", 127)
    mask = gt_masks = None
    if e.get("masks_dir"):
        gt_masks = read_mask_frames(e["masks_dir"], idx, total, rule, where)
        _aspect_check("masks", e["masks_dir"], gt_masks.shape[1:], video.shape[1:3], where)
    if e.get("mask"):
        mask = read_mask_image(e["mask"], rule, where)
        _aspect_check("mask", e["mask"], mask.shape, video.shape[1:3], where)
    elif gt_masks is not None:
        mask = gt_masks[0]
    if mask is not None and not mask.any():
        raise SampleError(f"{where}: empty first-frame edit mask ({e.get('mask') or e.get('masks_dir')})")
    h, w = int(height), int(width)
    out_fps = float(sample_fps) if sample_fps else float(num_frames) / max(total / src_fps, 1e-6)
    meta = {**(e.get("meta") or {}), "original": {
        "video": str(e["video"]), "num_frames": int(total), "fps": float(src_fps), "height": int(video.shape[1]),
        "width": int(video.shape[2]), "edited": str(edited_path) if edited_path else None, "mask": str(e.get("mask") or e.get("masks_dir") or "")
        or None}, "frame_indices": idx.tolist(), "fit": fit, "edit_type_source": edit_type_source,
        "edited_first_frame": "benchmark" if e.get("edited") else (EDITOR_MISSING if from_editor else "first_frames folder")}
    return Sample(sample_id=sid, source_video=fit_frames(video, h, w, fit), edited_image=fit_image(edited, h, w, fit),
                  edit_mask=None if mask is None else fit_image(mask, h, w, fit, mask=True),
                  gt_masks=None if gt_masks is None else fit_frames(gt_masks, h, w, fit, mask=True),
                  instruction=instruction, source_prompt=e.get("source_prompt"), target_prompt=e.get("target_prompt"),
                  edit_type=edit_type, fps=round(out_fps, 4), meta=meta, extras=dict(e.get("extras") or {})).validate()


class BenchmarkDataset:
    """Entries of a published benchmark converted on the fly (implements ``VideoEditDataset``); ``build_benchmark``
    writes the same samples once in the common folder format, which edit runs read."""

    def __init__(self, name: str, entries: Iterable[dict], *, num_frames: int = 14, height: int = 576,
                 width: int = 1024, fit: str = "crop", sample_fps: Optional[float] = None, first_frames=None,
                 convert: Callable[..., Sample] = None):
        self.name = str(name)
        self.convert = convert or convert_entry
        self.options = dict(num_frames=int(num_frames), height=int(height), width=int(width), fit=fit,
                            sample_fps=sample_fps, first_frames=str(first_frames) if first_frames else None)
        self._entries: dict[str, dict] = {}
        for e in entries:
            sid, n = e["id"], 1
            while sid in self._entries:  # a repeated id fails alone (one line), the first one builds
                n += 1
                sid = f"{e['id']}__dup{n}"
            if sid != e["id"]:
                first = self._entries[e["id"]]["_where"]
                e = bad_entry(sid, e["_where"], f"duplicate sample id {e['id']!r} (first at {first})")
            self._entries[sid] = e

    def sample_ids(self) -> list[str]:
        return list(self._entries)

    def load(self, sample_id: str) -> Sample:
        e = self._entries.get(sample_id)
        if e is None:
            raise KeyError(f"{self.name}: no sample {sample_id!r}")
        if e.get("error"):  # a row the index reader could not parse: its one line, raised at build time
            raise SampleError(e["error"])
        return self.convert(e, **self.options)


def build_benchmark(name: str, entries: list[dict], out_root, *, source, limit: Optional[int] = None,
                    ids=None, shard_index: int = 0, num_shards: int = 1, overwrite: bool = False,
                    settings: Optional[dict] = None, **options) -> dict:
    """Convert a benchmark's entries into the common folder format (resumable, sharded, one line per failure)."""
    ds = BenchmarkDataset(name, entries, **options)  # options: geometry, first_frames, convert
    selected = shard_ids(select_ids(ds.sample_ids(), limit, ids), shard_index, num_shards)
    settings = {"dataset": name, "source": str(source), **ds.options, "shard_index": shard_index,
                "num_shards": num_shards, **(settings or {})}
    return build_samples(out_root, selected, ds.load, settings=settings, overwrite=overwrite,
                         report_file=report_path(out_root, shard_index, num_shards), desc=name)


def bad_entry(sample_id: str, where: str, reason: str) -> dict:
    """An entry that stands for a malformed index row: it keeps its id so that the build records its one line."""
    return {"id": sample_id, "_where": where, "error": f"{where}: {reason}"}


def read_rows(path) -> list[dict]:
    """Rows of a CSV or JSONL file as dicts with ``_where`` = "<file>:<line>"; a line that is not a JSON object
    becomes ``{"_where", "_error"}`` (reported by its sample, the other rows build)."""
    import csv
    import json

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    rows: list[dict] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            for i, r in enumerate(csv.DictReader(f), start=2):
                rows.append({**{k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in r.items() if k},
                             "_where": f"{path}:{i}"})
        return rows
    if path.suffix.lower() not in (".jsonl", ".json"):
        raise ValueError(f"{path}: expected a .csv or .jsonl file")
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except ValueError as e:
            r = {"_error": f"invalid JSON: {e}"}
        if not isinstance(r, dict):
            r = {"_error": "expected a JSON object per line"}
        rows.append({**r, "_where": f"{path}:{i}"})
    return rows
