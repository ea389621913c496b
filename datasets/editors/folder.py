"""``first_frame.editor=folder``: your own edited first frames (Photoshop, GIMP, any tool), one image per sample:

    <folder>/<sample_id>.png          (or .jpg, .jpeg, .bmp, .webp): the edited first frame
    <folder>/<sample_id>_mask.png     optional: its edit region (white = edited); else the pixels that changed

An image of another size than the source frame is resized to it (its aspect ratio must match within 3 %).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from videoshop.files import file_sha256
from videoshop.video_io import IMAGE_EXTS, read_image

from .base import EditedFrame, EditorFailed, EditRequest


class FolderEditor:
    def __init__(self, name: str = "folder", folder: Optional[str] = None, **unused: Any):
        if not folder:
            raise ValueError("first_frame.folder: not set; first_frame.editor=folder reads <folder>/<sample_id>.png")
        self.name, self.folder = name, Path(str(folder)).expanduser()
        if not self.folder.is_dir():
            raise FileNotFoundError(f"first_frame.folder={self.folder}: no such folder")

    def describe(self) -> dict[str, Any]:
        return {"editor": self.name, "folder": str(self.folder)}

    def find(self, sample_id: str, suffix: str = "") -> Optional[Path]:
        for ext in IMAGE_EXTS:
            p = self.folder / f"{sample_id}{suffix}{ext}"
            if p.is_file():
                return p
        return None

    def edit(self, request: EditRequest) -> EditedFrame:
        path = self.find(request.sample_id)
        if path is None:
            raise EditorFailed(f"first_frame.folder: no edited first frame {self.folder / (request.sample_id + '.png')}")
        try:
            image = np.asarray(read_image(path))
        except Exception as e:  # noqa: BLE001
            raise EditorFailed(f"{path}: unreadable image ({type(e).__name__}: {e})".splitlines()[0]) from e
        h, w = request.source.shape[:2]
        if abs((image.shape[1] / image.shape[0]) / (w / h) - 1) > 0.03:
            raise EditorFailed(f"{path}: {image.shape[1]}x{image.shape[0]} does not match the source frame's {w}x{h} "
                               f"aspect ratio; it must be an edit of the first frame")
        mask_path, mask = self.find(request.sample_id, "_mask"), None
        if mask_path is not None:
            mask = np.asarray(read_image(mask_path)).max(axis=-1) > 127
        info = {"file": str(path), "sha256": file_sha256(path)[:16],
                **({"mask_file": str(mask_path)} if mask_path else {})}
        return EditedFrame(image, mask, mask_source="folder" if mask is not None else "difference", info=info)
