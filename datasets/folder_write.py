"""Writing the on-disk format (``datasets/folder.py``): one sample folder written atomically, and a resumable build
of many that records what it built, skipped and failed."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .folder_spec import FORMAT_VERSION, SAMPLE_FILE, check_sample_id, is_built
from .schema import Sample, SampleError
from videoshop.files import atomic_folder, atomic_write_json
from videoshop.video_io import write_frames, write_image

log = logging.getLogger(__name__)


def _json_default(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)  # paths and anything else


def write_json_atomic(path, data: dict) -> None:
    atomic_write_json(path, data, indent=2, default=_json_default)


def write_sample_files(folder: Path, sample: Sample) -> dict[str, str]:
    """The frames, edited frame and optional masks / ground truth of ``sample`` into ``folder``; returns the
    ``files`` entry of its sample.json."""
    write_frames(folder / "source", sample.source_video)
    write_image(folder / "edited.png", sample.edited_image)
    files = {"source": "source", "edited": "edited.png"}
    if sample.edit_mask is not None:
        write_image(folder / "mask.png", np.asarray(sample.edit_mask, dtype=bool))
        files["mask"] = "mask.png"
    if sample.gt_edited_video is not None:
        write_frames(folder / "gt", sample.gt_edited_video)
        files["gt"] = "gt"
    if sample.gt_masks is not None:
        write_frames(folder / "gt_masks", np.asarray(sample.gt_masks, dtype=bool))
        files["gt_masks"] = "gt_masks"
    return files


def sample_record(sample: Sample, files: dict[str, str]) -> dict:
    """The sample.json of ``sample`` whose arrays were written as ``files``."""
    t, h, w = sample.source_video.shape[:3]
    record = {
        "format_version": FORMAT_VERSION, "sample_id": str(sample.sample_id), "instruction": sample.instruction,
        "source_prompt": sample.source_prompt, "target_prompt": sample.target_prompt,
        "edit_type": sample.edit_type, "fps": float(sample.fps), "num_frames": int(t), "height": int(h),
        "width": int(w), "files": files, "meta": sample.meta,
    }
    if sample.extras:
        record["extras"] = sample.extras
    return record


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
        files = write_sample_files(tmp, sample)
        record = sample_record(sample, files)  # sample.json last: the folder is complete once it exists
        (tmp / SAMPLE_FILE).write_text(json.dumps(record, indent=2, default=_json_default))
    return final


def shard_ids(ids: list[str], shard_index: int = 0, num_shards: int = 1) -> list[str]:
    """Every ``num_shards``-th id starting at ``shard_index`` (shards partition ``ids``; order kept)."""
    n, i = int(num_shards), int(shard_index)
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"dataset.build.shard_index={i} / num_shards={n}: need 0 <= shard_index < num_shards")
    return list(ids)[i::n]


def report_path(root, shard_index: int = 0, num_shards: int = 1) -> Path:
    """Where a build (or one shard of it) writes its report."""
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
                write_sample(root, make_sample(sid), overwrite=overwrite)
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
