"""The one on-disk format of built datasets: a folder per sample, written atomically, read by ``FolderDataset``.

::

    <root>/<sample_id>/sample.json      instruction, prompts, edit_type, fps, num_frames, height, width, meta
                      source/0000.png   lossless source frames (T of them)
                      edited.png        the edited first frame (same size as the frames)
                      mask.png          optional first-frame edit mask (white = edited region)
                      gt/0000.png       optional ground-truth edited video
                      gt_masks/0000.png optional per-frame edit masks (white = edited region)
    <root>/build_report*.json           what a build did (built / skipped / failed with reasons)

A sample folder exists only once complete: ``write_sample`` writes into ``<root>/.tmp-<id>-<pid>/`` and renames
it into place, so an interrupted build never leaves a half sample that a rerun would skip.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .schema import Sample, SampleError
from videoshop.files import atomic_folder, atomic_write_json
from videoshop.video_io import (InputLimits, frame_files, read_frames, read_image, resample_frames, resize_video,
                                write_frames, write_image)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_FILE = "sample.json"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")


def check_sample_id(sample_id: str) -> str:
    """A sample id usable as a folder name (letters, digits, '.', '_', '-'; not starting with '.')."""
    sid = str(sample_id)
    if not _SAFE_ID.match(sid) or len(sid) > 200:
        raise SampleError(f"sample id {sid!r}: use letters, digits, '.', '_' or '-' (not leading), at most 200 chars")
    return sid


def safe_sample_id(text: str) -> str:
    """Turn arbitrary text (a file stem, a clip id) into a valid sample id."""
    sid = re.sub(r"[^A-Za-z0-9._\-]+", "_", str(text)).strip("._-") or "sample"
    return sid[:200]


def is_built(root, sample_id: str) -> bool:
    return (Path(root) / str(sample_id) / SAMPLE_FILE).is_file()


def _json_default(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def write_json_atomic(path, data: dict) -> None:
    atomic_write_json(path, data, indent=2, default=_json_default)


def write_sample(root, sample: Sample, overwrite: bool = False) -> Path:
    """Validate ``sample`` and write it as ``<root>/<sample_id>/`` atomically; returns the sample folder.

    An existing complete sample is kept unless ``overwrite``; then it is replaced (old folder removed after the
    new one is in place).
    """
    sample.validate()
    sid = check_sample_id(sample.sample_id)
    if sample.edited_image.shape[:2] != sample.source_video.shape[1:3]:
        raise SampleError(f"{sid}: edited_image size {sample.edited_image.shape[:2]} != frame size "
                          f"{sample.source_video.shape[1:3]}")
    root = Path(root)
    final = root / sid
    if final.exists() and not overwrite and is_built(root, sid):
        return final
    with atomic_folder(final) as tmp:  # an incomplete leftover or (overwrite) the old folder is swapped out
        write_frames(tmp / "source", sample.source_video)
        write_image(tmp / "edited.png", sample.edited_image)
        files = {"source": "source", "edited": "edited.png"}
        if sample.edit_mask is not None:
            write_image(tmp / "mask.png", np.asarray(sample.edit_mask, dtype=bool))
            files["mask"] = "mask.png"
        if sample.gt_edited_video is not None:
            write_frames(tmp / "gt", sample.gt_edited_video)
            files["gt"] = "gt"
        if sample.gt_masks is not None:
            write_frames(tmp / "gt_masks", np.asarray(sample.gt_masks, dtype=bool))
            files["gt_masks"] = "gt_masks"
        t, h, w = sample.source_video.shape[:3]
        record = {
            "format_version": FORMAT_VERSION, "sample_id": sid, "instruction": sample.instruction,
            "source_prompt": sample.source_prompt, "target_prompt": sample.target_prompt,
            "edit_type": sample.edit_type, "fps": float(sample.fps), "num_frames": int(t), "height": int(h),
            "width": int(w), "files": files, "meta": sample.meta,
        }
        if sample.extras:
            record["extras"] = sample.extras
        (tmp / SAMPLE_FILE).write_text(json.dumps(record, indent=2, default=_json_default))
    return final


def _read_frames_dir(folder: Path, sample_dir: Path, limits: InputLimits, mode: str = "RGB") -> np.ndarray:
    """The frames of ``folder``: none may link outside ``sample_dir``; sizes checked against ``limits`` from the
    listing and the image headers before any pixel is decoded."""
    if not folder.is_dir():
        raise SampleError(f"missing frame folder {folder}")
    return read_frames(frame_files(folder, inside=sample_dir), folder, limits, mode=mode)


FILE_KEYS = ("source", "edited", "mask", "gt", "gt_masks")
# every key a sample.json may hold; another key (a misspelled `instrucion`) is refused, naming it
SAMPLE_KEYS = ("format_version", "sample_id", "instruction", "source_prompt", "target_prompt", "edit_type", "fps",
               "num_frames", "height", "width", "files", "meta", "extras")
MAX_SAMPLE_JSON_BYTES = 1_000_000  # a sample.json is a few hundred bytes; larger ones are refused unread


def read_sample_json(meta_path: Path) -> dict:
    """sample.json as a dict: refused (one line naming the file) when missing, larger than MAX_SAMPLE_JSON_BYTES,
    not UTF-8, not JSON, nested too deeply to parse, not an object, or holding a key outside SAMPLE_KEYS."""
    if not meta_path.is_file():
        raise SampleError(f"missing {meta_path}")
    size = meta_path.stat().st_size
    if size > MAX_SAMPLE_JSON_BYTES:
        raise SampleError(f"{meta_path}: {size} bytes, more than {MAX_SAMPLE_JSON_BYTES} (not read)")
    try:
        rec = json.loads(meta_path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise SampleError(f"{meta_path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except RecursionError as e:
        raise SampleError(f"{meta_path}: JSON nested too deeply to parse") from e
    except (OSError, ValueError) as e:
        raise SampleError(f"cannot parse {meta_path}: {e}".splitlines()[0]) from e
    if not isinstance(rec, dict):
        raise SampleError(f"{meta_path}: expected a JSON object")
    unknown = sorted(set(rec) - set(SAMPLE_KEYS))
    if unknown:
        raise SampleError(f"{meta_path}: unknown key(s) {', '.join(map(repr, unknown))}; a sample.json holds "
                          f"{', '.join(SAMPLE_KEYS)} (put anything else under 'meta')")
    return rec


def _sample_fields(rec: dict, meta_path: Path) -> dict[str, Any]:
    """The typed fields of a sample.json; one line naming the file and the key for any value that does not fit."""
    def bad(key: str, why: str) -> SampleError:
        return SampleError(f"{meta_path}: {key}={rec.get(key)!r}: {why}")

    out: dict[str, Any] = {}
    for key in ("instruction", "source_prompt", "target_prompt", "edit_type", "sample_id"):
        v = rec.get(key)
        if v is not None and not isinstance(v, str):
            raise bad(key, "must be a string")
        out[key] = v
    fps = rec.get("fps", 7.0)
    if fps is None:
        fps = 7.0
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or not 0 < fps <= 1000:
        raise bad("fps", "must be a number in (0, 1000]")
    out["fps"] = float(fps)
    for key in ("num_frames", "height", "width"):
        v = rec.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise bad(key, "must be a positive integer")
        out[key] = v
    meta = rec.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise bad("meta", "must be an object")
    out["meta"] = dict(meta or {})
    extras = rec.get("extras")
    if extras is not None and not isinstance(extras, dict):
        raise bad("extras", "must be an object")
    out["extras"] = dict(extras or {})
    return out


def _sample_files(rec: dict, folder: Path, meta_path: Path) -> dict[str, Path]:
    """``files`` entries as paths that stay inside the sample folder (no absolute paths, no '..' out of it)."""
    files = rec.get("files")
    if files is None:
        files = {"source": "source", "edited": "edited.png"}
    if not isinstance(files, dict):
        raise SampleError(f"{meta_path}: files must be an object mapping {', '.join(FILE_KEYS)} to paths")
    unknown = sorted(set(files) - set(FILE_KEYS))
    if unknown:
        raise SampleError(f"{meta_path}: unknown files key(s) {unknown}; expected {', '.join(FILE_KEYS)}")
    out: dict[str, Path] = {}
    root = folder.resolve()
    for key in FILE_KEYS:
        rel = files.get(key, {"source": "source", "edited": "edited.png"}.get(key))
        if rel in (None, ""):
            continue
        if not isinstance(rel, str):
            raise SampleError(f"{meta_path}: files.{key}={rel!r}: must be a path relative to the sample folder")
        target = (folder / rel).resolve()
        if Path(rel).is_absolute() or not target.is_relative_to(root):
            raise SampleError(f"{meta_path}: files.{key}={rel!r} leaves the sample folder {folder}")
        out[key] = folder / rel
    return out


def read_sample(folder, num_frames: Optional[int] = None, height: Optional[int] = None,
                width: Optional[int] = None, limits: InputLimits = InputLimits()) -> Sample:
    """Read one sample folder (optionally resampled to ``num_frames`` and resized to ``height`` x ``width``).

    Validated, not coerced (docs/datasets.md "Input rules"): sample.json's fields are type- and range-checked,
    ``files`` entries must stay inside the folder, images are 8-bit RGB/grey without transparency, masks follow
    ``video_io.MASK_RULE`` and must not be empty, no file may link outside the folder, and sizes beyond ``limits``
    are refused from the headers before decoding. Raises SampleError with one line naming the file or key at fault.
    """
    folder = Path(folder)
    meta_path = folder / SAMPLE_FILE
    rec = read_sample_json(meta_path)
    fields_ = _sample_fields(rec, meta_path)
    files = _sample_files(rec, folder, meta_path)
    if "source" not in files or "edited" not in files:
        raise SampleError(f"{meta_path}: files.source and files.edited are required")
    video = _read_frames_dir(files["source"], folder, limits)
    n = fields_["num_frames"]
    if n is not None and int(n) != video.shape[0]:
        raise SampleError(f"{files['source']}: {video.shape[0]} frames, sample.json says {n}")
    edited_path = files["edited"]
    if not edited_path.is_file():
        raise SampleError(f"missing edited first frame {edited_path}")
    edited = np.array(read_image(edited_path, limits=limits))  # writable (PIL arrays are read-only)
    if edited.shape[:2] != video.shape[1:3]:
        raise SampleError(f"{edited_path}: size {edited.shape[:2]} != source frame size {video.shape[1:3]}")
    mask = gt = gt_masks = None
    if "mask" in files:
        mask = read_image(files["mask"], mode="mask", limits=limits)
        if mask.shape != video.shape[1:3]:
            raise SampleError(f"{files['mask']}: size {mask.shape} != source frame size {video.shape[1:3]}")
        if not mask.any():
            raise SampleError(f"{files['mask']}: empty mask (no pixel is 255); omit files.mask for a sample "
                              f"without an edit region")
    if "gt" in files:
        gt = _read_frames_dir(files["gt"], folder, limits)
        if gt.shape != video.shape:
            raise SampleError(f"{files['gt']}: shape {gt.shape} != source {video.shape}")
    if "gt_masks" in files:
        gt_masks = _read_frames_dir(files["gt_masks"], folder, limits, mode="mask")
        if gt_masks.shape != video.shape[:3]:
            raise SampleError(f"{files['gt_masks']}: shape {gt_masks.shape} != {video.shape[:3]}")
    sample = Sample(
        sample_id=str(fields_["sample_id"] or folder.name), source_video=video, edited_image=edited, edit_mask=mask,
        instruction=fields_["instruction"] or "", source_prompt=fields_["source_prompt"],
        target_prompt=fields_["target_prompt"], edit_type=fields_["edit_type"] or "unknown",
        gt_edited_video=gt, gt_masks=gt_masks, fps=fields_["fps"], meta=fields_["meta"], extras=fields_["extras"],
    )
    if sample.sample_id != folder.name:
        raise SampleError(f"{meta_path}: sample_id={sample.sample_id!r} differs from its folder name {folder.name!r}")
    sample = conform_sample(sample, num_frames, height, width)
    try:
        return sample.validate()
    except SampleError as e:
        raise SampleError(f"{meta_path}: {e}") from e


def conform_sample(sample: Sample, num_frames: Optional[int] = None, height: Optional[int] = None,
                   width: Optional[int] = None) -> Sample:
    """Resample frames uniformly to ``num_frames`` and resize every array to ``height`` x ``width`` (None = keep)."""
    if num_frames and sample.num_frames != int(num_frames):
        sample.source_video = resample_frames(sample.source_video, int(num_frames))
        if sample.gt_edited_video is not None:
            sample.gt_edited_video = resample_frames(sample.gt_edited_video, int(num_frames))
        if sample.gt_masks is not None:
            sample.gt_masks = resample_frames(sample.gt_masks, int(num_frames))
    h, w = int(height or sample.size[0]), int(width or sample.size[1])
    if (h, w) != sample.size and abs((w / h) / (sample.size[1] / sample.size[0]) - 1) > 0.02:
        sample.meta.setdefault("load_notes", []).append(
            f"loader resized {sample.size[1]}x{sample.size[0]} -> {w}x{h}: aspect ratio "
            f"{sample.size[1] / sample.size[0]:.2f} stretched to {w / h:.2f}")
    if (h, w) != sample.size:
        sample.source_video = fit_frames(sample.source_video, h, w, "resize")
        sample.edited_image = fit_frames(sample.edited_image[None], h, w, "resize")[0]
        if sample.edit_mask is not None:
            sample.edit_mask = fit_frames(sample.edit_mask[None], h, w, "resize", mask=True)[0]
        if sample.gt_edited_video is not None:
            sample.gt_edited_video = fit_frames(sample.gt_edited_video, h, w, "resize")
        if sample.gt_masks is not None:
            sample.gt_masks = fit_frames(sample.gt_masks, h, w, "resize", mask=True)
    return sample


def printable_name(name: str) -> str:
    """A folder name as text that can be logged and written anywhere: a name that is not valid UTF-8 (Python holds
    its bytes as surrogates) gets those bytes as ``\\xNN`` escapes, and its sample then fails with one line naming
    it instead of breaking the run's logs and tables."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class FolderDataset:
    """A built dataset in the common on-disk format (implements ``videoshop_bench.datasets.base.VideoEditDataset``).

    ``num_frames`` / ``height`` / ``width`` (None = as stored) resample and resize on load, e.g. to feed a
    64x112 example set to a model at another resolution.
    """

    def __init__(self, root, name: str = "folder", num_frames: Optional[int] = None, height: Optional[int] = None,
                 width: Optional[int] = None, limits: InputLimits = InputLimits()):
        self.root = Path(root).expanduser()
        if not self.root.is_dir() and not self.root.is_absolute() and (REPO_ROOT / self.root).is_dir():
            self.root = REPO_ROOT / self.root  # e.g. datasets/examples from any working directory
        self.name = str(name)
        self.num_frames, self.height, self.width = num_frames, height, width
        self.limits = limits  # the runner sets the run's ``limits.*`` (``set_limits``): checked before decoding
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset folder {self.root} does not exist (build it first: "
                                    f"python run.py task=build dataset=..., or set dataset.loader.root)")

    def sample_ids(self) -> list[str]:
        """Every visible sub-folder: one without sample.json is listed too, so that it fails (one line) instead of
        vanishing from the run."""
        names = [p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        self._undecodable = {printable_name(n): n for n in names if printable_name(n) != n}
        return sorted(printable_name(n) for n in names)

    def set_limits(self, limits: InputLimits) -> None:
        """Refuse inputs beyond ``limits`` from their headers, before decoding (``Runner`` passes ``limits.*``)."""
        self.limits = limits

    def load(self, sample_id: str) -> Sample:
        folder = self.root / str(sample_id)
        if str(sample_id) in getattr(self, "_undecodable", {}):  # listed by sample_ids() with its bytes escaped
            raise SampleError(f"sample folder {folder}: its name is not valid UTF-8 (shown with its bytes escaped); "
                              f"rename it (letters, digits, '.', '_', '-')")
        if not folder.is_dir():
            raise SampleError(f"no sample folder {folder}")
        return read_sample(folder, self.num_frames, self.height, self.width, self.limits)

    def __len__(self) -> int:
        return len(self.sample_ids())

    def __repr__(self) -> str:
        return f"FolderDataset(root={str(self.root)!r}, name={self.name!r})"


# ----------------------------------------------------------------------------- building
def shard_ids(ids: list[str], shard_index: int = 0, num_shards: int = 1) -> list[str]:
    """Every ``num_shards``-th id starting at ``shard_index`` (shards partition ``ids``; order kept)."""
    n, i = int(num_shards), int(shard_index)
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"dataset.build.shard_index={i} / num_shards={n}: need 0 <= shard_index < num_shards")
    return list(ids)[i::n]


def report_path(root, shard_index: int = 0, num_shards: int = 1) -> Path:
    i, n = int(shard_index), int(num_shards)
    name = "build_report.json" if n == 1 else f"build_report.shard{i}of{n}.json"
    return Path(root) / name


def build_samples(root, ids, make_sample, *, settings: Optional[dict] = None, overwrite: bool = False,
                  report_file=None, desc: str = "build") -> dict:
    """Build each id with ``make_sample(id) -> Sample`` into ``root`` in the common format.

    Resumable: ids already built are skipped (unless ``overwrite``). A failing sample is recorded with its error
    and the build goes on. The report (also written to ``report_file``, default ``<root>/build_report.json``)
    lists built / skipped / failed ids and the failures' reasons.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    report = {"root": str(root), "settings": settings or {}, "requested": len(ids), "built": [], "skipped": [],
              "failed": []}
    report_file = Path(report_file) if report_file else report_path(root)
    try:
        for sid in tqdm(list(ids), desc=desc, unit="sample"):
            if not overwrite and is_built(root, sid):
                report["skipped"].append(sid)
                continue
            try:
                sample = make_sample(sid)
                write_sample(root, sample, overwrite=overwrite)
                report["built"].append(sid)
            except Exception as e:  # noqa: BLE001 - recorded, the build goes on
                reason = f"{type(e).__name__}: {e}".splitlines()[0]
                log.warning("sample %s failed: %s", sid, reason)
                report["failed"].append({"id": sid, "error": reason})
    finally:
        report["counts"] = {k: len(report[k]) for k in ("built", "skipped", "failed")}
        write_json_atomic(report_file, report)
    log.info("%s: built %d, skipped %d (already built), failed %d -> %s", desc, *report["counts"].values(),
             report_file)
    return report


# ----------------------------------------------------------------------------- geometry
FIT_MODES = ("crop", "resize", "pad")


def center_crop_box(h: int, w: int, aspect: float) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the largest centred box of ``aspect`` = width / height inside h x w."""
    if w / h > aspect:  # too wide: crop the sides
        cw = max(1, int(round(h * aspect)))
        return 0, (w - cw) // 2, h, cw
    ch = max(1, int(round(w / aspect)))
    return (h - ch) // 2, 0, ch, w


def fit_frames(frames: np.ndarray, height: int, width: int, fit: str = "crop", mask: bool = False) -> np.ndarray:
    """Bring (T, H, W[, 3]) frames to ``height`` x ``width``: ``crop`` = centre-crop to the target aspect ratio then
    resize (the default, no distortion), ``resize`` = stretch, ``pad`` = letterbox with black (False for masks)."""
    if fit not in FIT_MODES:
        raise ValueError(f"fit={fit!r}: expected one of {FIT_MODES}")
    frames = np.asarray(frames)
    h, w = frames.shape[1:3]
    aspect = width / height
    if fit == "crop":
        top, left, ch, cw = center_crop_box(h, w, aspect)
        frames = frames[:, top:top + ch, left:left + cw]
    elif fit == "pad":
        if w / h > aspect:
            ph, pw = int(round(w / aspect)) - h, 0
        else:
            ph, pw = 0, int(round(h * aspect)) - w
        pad = [(0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)] + [(0, 0)] * (frames.ndim - 3)
        frames = np.pad(frames, pad)
    frames = np.ascontiguousarray(frames)
    if not frames.flags.writeable:  # torch.from_numpy warns on read-only arrays (e.g. from PIL)
        frames = frames.copy()
    return resize_video(frames, int(height), int(width), mask=mask)


def fit_image(image: np.ndarray, height: int, width: int, fit: str = "crop", mask: bool = False) -> np.ndarray:
    """``fit_frames`` for one (H, W[, 3]) image or mask."""
    return fit_frames(np.asarray(image)[None], height, width, fit, mask)[0]
