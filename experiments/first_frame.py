"""The first-frame editing stage of a run (``first_frame.*``, conf/first_frame/default.yaml): before a sample is
edited, its edited first frame is made by the editor ``first_frame.editor`` (datasets/editors/registry.py) from the source
video's first frame and the sample's instruction or target prompt, and its edit mask by the editor or by difference.

``none`` (the default) leaves every sample as its dataset has it. Edits are cached under
``<paths.cache>/first_frame/<key>/`` (edited.png, mask.png, info.json) by a content hash of the source frame, the
prompt, the seed and the editor's description (weights, resolved revision, options, mask threshold), so ten methods
over one benchmark edit each first frame once. Each sample's record keeps what made its frame (``first_frame``:
editor, weights, revision, seed, prompt, mask source, cache hit).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from videoshop_bench.datasets.benchmarks import EDITOR_MISSING as MISSING  # a sample built without an edited first frame
from videoshop_bench.datasets.schema import Sample, SampleError
from videoshop_bench.datasets.editors.base import EditedFrame, EditorFailed, EditRequest, finish_edit
from videoshop_bench.datasets.editors.registry import EDITORS, build_editor
from videoshop_bench.eval.cache import fingerprint
from videoshop.files import atomic_folder
from videoshop.method import sample_seed
from videoshop.registry import UnknownEntry
from videoshop.video_io import read_image, write_image

from .errors import ConfigError, one_line

log = logging.getLogger(__name__)
PROMPT_FIELDS = ("instruction", "target_prompt")


def prompt_for(sample: Sample, field: str) -> str:
    """The text the editor follows: the sample's ``field`` (instruction | target_prompt), the other when empty."""
    first = getattr(sample, field) or ""
    other = getattr(sample, PROMPT_FIELDS[1 - PROMPT_FIELDS.index(field)]) or ""
    text = (first or other).strip()
    if not text:
        raise SampleError(f"{sample.sample_id}: first_frame: the sample has neither an instruction nor a target prompt")
    return text


class FirstFrameStage:
    """``apply(sample) -> (sample with its edited first frame, notes)``; built once per run from ``first_frame.*``."""

    def __init__(self, editor: str = "none", prompt: Optional[str] = None, seed: int = 0, folder: Optional[str] = None,
                 weights: str = "pretrained", hub_id: Optional[str] = None, path: Optional[str] = None,
                 revision: Optional[str] = None, num_inference_steps: Optional[int] = None,
                 options: Optional[dict] = None, mask_threshold: int = 24,
                 min_changed: float = 0.001, device: str = "auto", dtype: str = "auto", cpu_offload: bool = False,
                 cache: bool = True, cache_dir: Optional[str] = None):
        try:
            self.entry = EDITORS.get(str(editor))
        except UnknownEntry as e:
            raise ConfigError(f"first_frame.editor={editor}: {e}") from None
        if prompt is not None and prompt not in PROMPT_FIELDS:
            raise ConfigError(f"first_frame.prompt={prompt}: expected one of {', '.join(PROMPT_FIELDS)} (or null)")
        self.name, self.prompt_field = self.entry.name, prompt or self.entry.prompt
        self.seed, self.threshold, self.min_changed = int(seed), int(mask_threshold), float(min_changed)
        self.cache_dir = Path(cache_dir) / "first_frame" if (cache and cache_dir and self.entry.needs_weights) else None
        self._lock = threading.Lock()  # one edit at a time: the prefetch thread and the loop share the pipeline
        if num_inference_steps is not None and self.entry.needs_weights:
            options = {**(options or {}), "num_inference_steps": int(num_inference_steps)}
        try:
            self.editor = build_editor(self.name, folder=folder, weights=weights, hub_id=hub_id, path=path,
                                       revision=revision, options=options, device=device, dtype=dtype,
                                       cpu_offload=cpu_offload)
        except (ValueError, FileNotFoundError) as e:
            raise ConfigError(one_line(e)) from None

    @property
    def active(self) -> bool:
        return self.name != "none"

    def apply(self, sample: Sample) -> tuple[Sample, list[str]]:
        if not self.active:
            if sample.meta.get("edited_first_frame") == MISSING:
                try:
                    self.editor.edit(EditRequest(sample.sample_id, sample.source_video[0], "", 0))
                except EditorFailed as e:
                    raise SampleError(f"first_frame (none): {e}") from None
            return sample, []
        prompt = prompt_for(sample, self.prompt_field)
        seed = sample_seed(self.seed, sample.sample_id)
        has_edit = sample.meta.get("edited_first_frame") != MISSING
        request = EditRequest(sample.sample_id, np.ascontiguousarray(sample.source_video[0]), prompt, seed,
                              sample.edited_image if has_edit else None, sample.edit_mask if has_edit else None)
        try:
            result, hit = self._cached_edit(request)
        except EditorFailed as e:
            raise SampleError(f"first_frame ({self.name}): {e}") from None
        except Exception as e:  # noqa: BLE001  (the editor's own error on this sample: recorded, the run goes on)
            raise SampleError(f"first_frame ({self.name}): {sample.sample_id}: {one_line(e)}") from e
        record = {"editor": self.name, **{k: v for k, v in self.editor.describe().items() if k != "editor"},
                  "seed": seed, "prompt": prompt, "prompt_field": self.prompt_field, "mask_source": result.mask_source,
                  "edited_pixels": round(float(result.mask.mean()), 6), "cached": hit, **result.info}
        out = replace(sample, edited_image=result.image, edit_mask=result.mask, meta=dict(sample.meta, first_frame=record))
        out, gt_note = ground_truth_for(out, sample, self.name, has_edit)
        return out, [f"first frame made by {self.name} ({'cached' if hit else 'edited'}; prompt: {prompt!r})"] + gt_note

    def _cached_edit(self, request: EditRequest) -> tuple[EditedFrame, bool]:
        """(the edit, whether it came from the cache): the editor runs only on a cache miss."""
        key = fingerprint(request.source, request.prompt, request.seed, self.editor.describe(), self.threshold,
                          self.min_changed)
        folder = self.cache_dir / key if self.cache_dir else None
        if folder is not None and (folder / "info.json").is_file():
            try:
                return self._read(folder), True
            except Exception as e:  # noqa: BLE001  (a damaged entry is made again)
                log.warning("first_frame cache %s unreadable (%s): editing again", folder, one_line(e))
        with self._lock:
            edited = self.editor.edit(request)
        result = finish_edit(request, edited, self.threshold, self.min_changed)
        if folder is not None:
            with atomic_folder(folder) as tmp:
                write_image(tmp / "edited.png", result.image)
                write_image(tmp / "mask.png", result.mask)
                (tmp / "info.json").write_text(json.dumps({"mask_source": result.mask_source, "info": result.info}))
        return result, False

    @staticmethod
    def _read(folder: Path) -> EditedFrame:
        info = json.loads((folder / "info.json").read_text())
        image = np.asarray(read_image(folder / "edited.png"))
        mask = np.asarray(read_image(folder / "mask.png")).max(axis=-1) > 127
        return EditedFrame(image, mask, info["mask_source"], info["info"])


def ground_truth_for(edited: Sample, original: Sample, editor: str, had_edit: bool) -> tuple[Sample, list[str]]:
    """``edited`` (the sample with the editor's first frame) with the dataset's ground truth kept only where it
    still describes this edit: the editor's frame equals the dataset's own edited frame. Otherwise the ground-truth
    video and masks (the dataset's edit, e.g. the synthetic world's) are dropped, so that PSNR/SSIM to ground truth
    are skipped with the reason (``meta['ground_truth_dropped']``, read by eval/fidelity.py) and the region metrics
    track the editor's mask instead of the dataset's masks. The record's ``first_frame`` says which (``ground_truth``,
    ``region_masks``)."""
    record = dict(edited.meta["first_frame"])
    has_gt = original.gt_edited_video is not None or original.gt_masks is not None
    region = f"tracked from the {record['mask_source']} edit mask of frame 0 (tracking.tracker)"
    if not has_gt:
        record.update(ground_truth="none in the dataset", region_masks=region)
        return replace(edited, meta=dict(edited.meta, first_frame=record)), []
    if had_edit and np.array_equal(edited.edited_image, original.edited_image):
        record.update(ground_truth="kept: the editor's frame 0 is the dataset's own edited frame",
                      region_masks="the dataset's ground-truth masks where it has them (tracking.tracker=gt_or_flow)")
        return replace(edited, meta=dict(edited.meta, first_frame=record)), []
    why = f"first_frame.editor={editor} made frame 0, the dataset's ground truth shows its own edit"
    record.update(ground_truth="dropped", region_masks=region)
    out = replace(edited, gt_edited_video=None, gt_masks=None,
                  meta=dict(edited.meta, first_frame=record, ground_truth_dropped=why))
    return out, [f"ground truth video and masks dropped ({why}), edit regions {region}"]


def build_stage(node: Any, cache_dir: Optional[str]) -> FirstFrameStage:
    """The stage from the ``first_frame`` config mapping (plain dict); missing weights raise their one line."""
    node = dict(node or {})
    return FirstFrameStage(**node, cache_dir=cache_dir)
