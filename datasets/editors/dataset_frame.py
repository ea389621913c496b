"""``first_frame.editor=none``: the dataset's own edited first frame (MagicBrush's, the expert set's, the synthetic
world's ground truth, a benchmark's shipped frames). The default: runs without an editor are unchanged."""

from __future__ import annotations

from typing import Any

from .base import EditedFrame, EditorFailed, EditRequest


class DatasetFirstFrame:
    def __init__(self, name: str = "none", **unused: Any):
        self.name = name

    def describe(self) -> dict[str, Any]:
        return {"editor": self.name}

    def edit(self, request: EditRequest) -> EditedFrame:
        if request.dataset_edit is None:
            raise EditorFailed(f"{request.sample_id}: the dataset has no edited first frame for this sample: set "
                               f"first_frame.editor to an image editor (instruct_pix2pix, magicbrush, flux_kontext, "
                               f"qwen_image_edit) or folder (first_frame.folder=DIR of <sample_id>.png)")
        return EditedFrame(request.dataset_edit, request.dataset_mask, mask_source="dataset")
