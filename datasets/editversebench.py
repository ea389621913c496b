"""EditVerseBench (Ju et al. 2025, "EditVerse", arXiv:2509.20360): instruction-based video editing entries over
Pixabay videos, some with an edited first frame and masks shipped.

Layout read (github.com/adobe-research/EditVerse README "Download Benchmark" / "Evaluate Your Own Model", commit
8a38b23; data on the hub as ``sooyek/EditVerseBench``, source videos fetched with its download_source_video.py)::

    <root>/test.json                 {"<key>": {"<text>": "<video1> Add a small golden crown ...",
                                                "<video1>": "videos/174008-850361316.mp4", "<video1> link": url,
                                                "direction": "horizontal" | "vertical", "type": "add object",
                                                "source_prompt": ..., "target_prompt": ...,
                                                ["<image1>" / "<video2>" ...: further inputs the <text> names]}, ...}
    <root>/videos/*.mp4              source videos
    <root>/edited_first_frame/*      edited first frames (image, or a video whose first frame it is)
    <root>/inpaint_video_and_masks/* masks (white = edit region)
    (depths/, poses/, sketchs/, images/: other conditions, not used here)

The README does not spell out which key of an entry names its edited first frame or mask, so: the edited first
frame is the entry's value (any tag key) whose path lies under ``edited_first_frame/``; the mask is a value under
``inpaint_video_and_masks/`` (or with "mask" in its file name), first frame thresholded at 127. By default
(``only_with_first_frame: true``) only entries that ship an edited first frame are selected (Videoshop's setting);
with ``false`` the others take theirs from ``first_frames``. Sample ids are the test.json keys (as EditVerse names
its result folders). The instruction is ``<text>`` with its tags removed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .benchmarks import bad_entry, build_benchmark
from .edit_types import normalize_edit_type
from .folder_spec import safe_sample_id

NAME = "editversebench"
FIRST_FRAME_DIR = "edited_first_frame/"
MASK_DIR = "inpaint_video_and_masks/"
TYPE_MAP = {"add object": "add_object", "remove object": "remove_object", "replace object": "replace_object",
            "change object": "replace_object", "change color": "change_color", "change colour": "change_color",
            "change material": "change_appearance", "change appearance": "change_appearance",
            "change action": "change_action"}
_TAG = re.compile(r"<(video|image)\d+>")


def clean_instruction(text: str) -> str:
    """``<text>`` in words: leading tags (``<video1> Add a crown``) dropped, inner ones read "the video" /
    "the image" (``... following <image1>.`` -> ``... following the image.``)."""
    text = re.sub(r"^\s*(?:<(?:video|image)\d+>\s*)+", "", str(text))
    text = _TAG.sub(lambda m: f"the {m.group(1)}", text)
    return re.sub(r"\s+", " ", text).strip()


def edit_type_of(value) -> tuple[str, str]:
    """Our edit type for an EditVerseBench ``type`` (unknown for its non-local categories, e.g. style)."""
    v = str(value or "").strip().lower()
    if v in TYPE_MAP:
        return TYPE_MAP[v], "type"
    try:
        return normalize_edit_type(v, "")[0] if v else "unknown", "type"
    except ValueError:
        return "unknown", "type (no local-edit equivalent)"


def _tagged_paths(item: dict) -> dict[str, str]:
    return {k: str(v) for k, v in item.items() if _TAG.fullmatch(str(k)) and isinstance(v, str)}


def _find(paths: dict[str, str], prefix: str, word: str = "") -> str | None:
    for v in paths.values():
        if v.replace("\\", "/").lstrip("./").startswith(prefix) or (word and word in Path(v).name.lower()):
            return v
    return None


def read_entries(root, only_with_first_frame: bool = True, types=None) -> list[dict]:
    """Entries of test.json (in key order); a malformed entry becomes one failing entry naming the file and key."""
    root = Path(root).expanduser()
    index = root if root.is_file() else root / "test.json"
    if not index.is_file():
        raise FileNotFoundError(f"dataset.build.source={root}: no test.json (expected the EditVerseBench folder)")
    base = index.parent
    try:
        data = json.loads(index.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{index}: invalid JSON: {e}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ValueError(f"{index}: expected an object {{key: entry}}")
    wanted_types = {str(t).strip().lower() for t in types} if types else None
    entries = []
    for key, item in data.items():
        sid, where = safe_sample_id(str(key)), f"{index}:{key}"
        if not isinstance(item, dict) or not item.get("<video1>") or not item.get("<text>"):
            entries.append(bad_entry(sid, where, "expected an entry with <text> and <video1>"))
            continue
        if wanted_types is not None and str(item.get("type", "")).strip().lower() not in wanted_types:
            continue
        paths = _tagged_paths(item)
        edited, mask = _find(paths, FIRST_FRAME_DIR), _find(paths, MASK_DIR, "mask")
        if only_with_first_frame and edited is None:
            continue
        edit_type, rule = edit_type_of(item.get("type"))
        entries.append({
            "id": sid, "_where": where, "video": str(base / item["<video1>"]),
            "instruction": clean_instruction(item["<text>"]), "source_prompt": item.get("source_prompt"),
            "target_prompt": item.get("target_prompt"), "edit_type": edit_type,
            "edited": str(base / edited) if edited else None, "mask": str(base / mask) if mask else None,
            "mask_rule": ("gt", 127),
            "meta": {"dataset": NAME, "key": str(key), "evb_type": item.get("type"), "edit_type_rule": rule,
                     "direction": item.get("direction"), "link": item.get("<video1> link"), "text": item["<text>"]},
        })
    return entries


def build_editversebench(source, out_root, *, only_with_first_frame: bool = True, types=None, first_frames=None,
                         **kw) -> dict:
    """EditVerseBench -> the common folder format (``videoshop_bench.datasets.benchmarks.build_benchmark`` options)."""
    return build_benchmark(NAME, read_entries(source, only_with_first_frame, types), out_root, source=source,
                           first_frames=first_frames, settings={"only_with_first_frame": bool(only_with_first_frame),
                                                                "types": list(types) if types else None}, **kw)
