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

This module reads the format; what a valid folder holds is ``folder_spec.py``, writing and building is
``folder_write.py``, frame geometry ``fit.py``. Their public names are importable from here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .fit import FIT_MODES, center_crop_box, conform_sample, fit_frames, fit_image
from .folder_spec import (FILE_KEYS, FORMAT_VERSION, MAX_SAMPLE_JSON_BYTES, SAMPLE_FILE, SAMPLE_KEYS,
                          check_sample_id, is_built, printable_name, read_sample_json, safe_sample_id, sample_fields,
                          sample_files)
from .folder_write import build_samples, report_path, shard_ids, write_json_atomic, write_sample
from .schema import Sample, SampleError
from videoshop.video_io import InputLimits, frame_files, read_frames, read_image

REPO_ROOT = Path(__file__).resolve().parents[1]
__all__ = [  # the format's public names, wherever they are defined
    "FolderDataset", "read_sample", "read_frames_dir", "REPO_ROOT",
    "FIT_MODES", "center_crop_box", "conform_sample", "fit_frames", "fit_image",
    "FILE_KEYS", "FORMAT_VERSION", "MAX_SAMPLE_JSON_BYTES", "SAMPLE_FILE", "SAMPLE_KEYS", "check_sample_id", "is_built",
    "printable_name", "read_sample_json", "safe_sample_id", "sample_fields", "sample_files",
    "build_samples", "report_path", "shard_ids", "write_json_atomic", "write_sample",
]


def read_frames_dir(folder: Path, sample_dir: Path, limits: InputLimits, mode: str = "RGB") -> np.ndarray:
    """The frames of ``folder``: none may link outside ``sample_dir``; sizes checked against ``limits`` from the
    listing and the image headers before any pixel is decoded."""
    if not folder.is_dir():
        raise SampleError(f"missing frame folder {folder}")
    return read_frames(frame_files(folder, inside=sample_dir), folder, limits, mode=mode)


def read_source(files: dict[str, Path], folder: Path, num_frames: Optional[int], limits: InputLimits) -> np.ndarray:
    """The source frames, as many as sample.json's ``num_frames`` says (when it says)."""
    video = read_frames_dir(files["source"], folder, limits)
    if num_frames is not None and int(num_frames) != video.shape[0]:
        raise SampleError(f"{files['source']}: {video.shape[0]} frames, sample.json says {num_frames}")
    return video


def read_edited(path: Path, frame_size: tuple, limits: InputLimits) -> np.ndarray:
    """The edited first frame, of the source frames' size."""
    if not path.is_file():
        raise SampleError(f"missing edited first frame {path}")
    edited = np.array(read_image(path, limits=limits))  # writable (PIL arrays are read-only)
    if edited.shape[:2] != frame_size:
        raise SampleError(f"{path}: size {edited.shape[:2]} != source frame size {frame_size}")
    return edited


def read_mask(path: Path, frame_size: tuple, limits: InputLimits) -> np.ndarray:
    """The first-frame edit mask, of the frames' size and not empty."""
    mask = read_image(path, mode="mask", limits=limits)
    if mask.shape != frame_size:
        raise SampleError(f"{path}: size {mask.shape} != source frame size {frame_size}")
    if not mask.any():
        raise SampleError(f"{path}: empty mask (no pixel is 255); omit files.mask for a sample without an edit region")
    return mask


def read_ground_truth(files: dict[str, Path], folder: Path, video: np.ndarray, limits: InputLimits):
    """(edited video, per-frame masks), each None when the sample has none; shapes equal to the source's."""
    gt = gt_masks = None
    if "gt" in files:
        gt = read_frames_dir(files["gt"], folder, limits)
        if gt.shape != video.shape:
            raise SampleError(f"{files['gt']}: shape {gt.shape} != source {video.shape}")
    if "gt_masks" in files:
        gt_masks = read_frames_dir(files["gt_masks"], folder, limits, mode="mask")
        if gt_masks.shape != video.shape[:3]:
            raise SampleError(f"{files['gt_masks']}: shape {gt_masks.shape} != {video.shape[:3]}")
    return gt, gt_masks


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
    fields = sample_fields(rec, meta_path)
    files = sample_files(rec, folder, meta_path)
    video = read_source(files, folder, fields["num_frames"], limits)
    edited = read_edited(files["edited"], video.shape[1:3], limits)
    mask = read_mask(files["mask"], video.shape[1:3], limits) if "mask" in files else None
    gt, gt_masks = read_ground_truth(files, folder, video, limits)
    sample = Sample(
        sample_id=str(fields["sample_id"] or folder.name), source_video=video, edited_image=edited, edit_mask=mask,
        instruction=fields["instruction"] or "", source_prompt=fields["source_prompt"],
        target_prompt=fields["target_prompt"], edit_type=fields["edit_type"] or "unknown",
        gt_edited_video=gt, gt_masks=gt_masks, fps=fields["fps"], meta=fields["meta"], extras=fields["extras"],
    )
    if sample.sample_id != folder.name:
        raise SampleError(f"{meta_path}: sample_id={sample.sample_id!r} differs from its folder name {folder.name!r}")
    sample = conform_sample(sample, num_frames, height, width)
    try:
        return sample.validate()
    except SampleError as e:
        raise SampleError(f"{meta_path}: {e}") from e


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
