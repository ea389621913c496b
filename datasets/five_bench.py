"""FiVE-Bench (Li et al., ICCV 2025, arXiv:2503.13684): 100 videos (74 from DAVIS, 26 generated), 420
source/target prompt pairs in six fine-grained edit types, per-frame edit masks, and the questions its VLM judge
(FiVE-Acc) asks.

Layout read (github.com/Harvard-AI-and-Robotics-Lab/FiVE-Bench README and evaluation/evaluate.py, commit 2825ec1;
data on the hub as ``LIMinghan/FiVE-Fine-Grained-Video-Editing-Benchmark``)::

    <root>/edit_prompt/edit<k>_FiVE.json   k = 1..6, a JSON list of entries {video_name, source_prompt,
                                           target_prompt (edited words in [brackets]), editing_type_id, save_dir,
                                           source_yes_no_question, target_yes_no_question,
                                           multiple_choice_question, [editing_instruction]}
    <root>/images/<video_name>/00001.jpg   source frames (what the official evaluation reads)
    <root>/bmasks/<video_name>/00001.jpg   per-frame edit masks, same names (JPEG)
    <root>/videos/<video_name>.mp4         the same clips as mp4 (used when images/<video_name>/ is absent)

File k is edit type k of the paper: 1 rigid object replacement, 2 non-rigid object replacement, 3 colour, 4
material, 5 object addition, 6 object removal. Sample ids are ``edit<k>_<video_name>`` (``_<save_dir>`` appended
when a file has several entries for one video). FiVE-Bench ships no edited first frames: they come from
``first_frames`` (module ``videoshop_bench.datasets.benchmarks``). The judge's questions are kept in ``Sample.extras['five_bench']``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

from .benchmarks import bad_entry, build_benchmark, find_video
from .folder_spec import safe_sample_id

NAME = "five_bench"
EDIT_TYPES_BY_FILE = {1: "replace_object", 2: "replace_object", 3: "change_color", 4: "change_appearance",
                      5: "add_object", 6: "remove_object"}
FIVE_TYPE_NAMES = {1: "object replacement (rigid)", 2: "object replacement (non-rigid)", 3: "color alteration",
                   4: "material modification", 5: "object addition", 6: "object removal"}
QUESTION_KEYS = ("source_yes_no_question", "target_yes_no_question", "multiple_choice_question")
# evaluate.py reads a mask as value > 0; the masks are JPEG, whose ringing next to edges makes > 0 mark stray pixels
# (seen on the fixtures), so the edit region here is value > 127 unless mask_threshold says otherwise
MASK_THRESHOLD = 127
_FILE_RE = re.compile(r"^edit(\d+)_FiVE\.json$")


def strip_brackets(prompt: Optional[str]) -> Optional[str]:
    """FiVE marks the edited words of a prompt with [brackets]; the prompt proper has none."""
    return None if prompt is None else re.sub(r"\s+", " ", str(prompt).replace("[", "").replace("]", "")).strip()


def prompt_files(root: Path, edit_types=None) -> list[tuple[int, Path]]:
    """(k, edit_prompt/edit<k>_FiVE.json) in k order, only those in ``edit_types`` (numbers 1..6) when given."""
    folder = root / "edit_prompt"
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset.build.source={root}: no edit_prompt/ folder (expected the FiVE-Bench data "
                                f"folder with edit_prompt/edit1_FiVE.json ... edit6_FiVE.json, images/, bmasks/)")
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _FILE_RE.match(p.name)))
    if edit_types:
        wanted = {int(k) for k in edit_types}
        found = [(k, p) for k, p in found if k in wanted]
    if not found:
        which = f" for edit types {list(edit_types)}" if edit_types else ""
        raise FileNotFoundError(f"{folder}: no edit<k>_FiVE.json files{which}")
    return found


def _entry(root: Path, k: int, path: Path, i: int, item, sid: str, mask_threshold: int = MASK_THRESHOLD) -> dict:
    where = f"{path}:entry {i}"
    if not isinstance(item, dict):
        return bad_entry(sid, where, "expected a JSON object")
    missing = [key for key in ("video_name", "target_prompt") if not item.get(key)]
    if missing:
        return bad_entry(sid, where, f"missing {', '.join(missing)}")
    name = str(item["video_name"])
    video = (root / "images" / name) if (root / "images" / name).is_dir() else find_video(root / "videos", name)
    questions = {key: item[key] for key in QUESTION_KEYS if item.get(key)}
    target = strip_brackets(item["target_prompt"])
    return {
        "id": sid, "_where": where, "video": str(video) if video else str(root / "images" / name),
        "instruction": str(item.get("editing_instruction") or item.get("instruction") or target),
        "source_prompt": strip_brackets(item.get("source_prompt")), "target_prompt": target,
        "edit_type": EDIT_TYPES_BY_FILE.get(k, "unknown"),
        "masks_dir": str(root / "bmasks" / name), "mask_rule": ("gt", int(mask_threshold)),
        "extras": {NAME: {**questions, "source_prompt_marked": item.get("source_prompt"),
                          "target_prompt_marked": item.get("target_prompt"), "edit_file": path.name}},
        "meta": {"dataset": NAME, "five_edit_type": k, "five_edit_type_name": FIVE_TYPE_NAMES.get(k),
                 "editing_type_id": item.get("editing_type_id"), "save_dir": item.get("save_dir"),
                 "video_name": name, "has_judge_questions": len(questions) == len(QUESTION_KEYS)},
    }


def read_entries(root, edit_types=None, mask_threshold: int = MASK_THRESHOLD) -> list[dict]:
    """Entries (``videoshop_bench.datasets.benchmarks``) of every edit<k>_FiVE.json; a malformed file or entry becomes one failing
    entry naming the file and the entry number, the others build."""
    root = Path(root).expanduser()
    entries: list[dict] = []
    for k, path in prompt_files(root, edit_types):
        try:
            items = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            entries.append(bad_entry(f"edit{k}_unreadable", str(path), f"invalid JSON: {e}".splitlines()[0]))
            continue
        if not isinstance(items, list):
            entries.append(bad_entry(f"edit{k}_unreadable", str(path), "expected a JSON list of entries"))
            continue
        names = [str(it.get("video_name")) if isinstance(it, dict) else None for it in items]
        for i, item in enumerate(items):
            base = f"edit{k}_{safe_sample_id(names[i] or f'entry{i}')}"
            sid = base if names.count(names[i]) == 1 else safe_sample_id(
                f"{base}_{item.get('save_dir') if isinstance(item, dict) and item.get('save_dir') else i}")
            entries.append(_entry(root, k, path, i, item, sid, mask_threshold))
    return entries


def build_five_bench(source, out_root, *, edit_types=None, mask_threshold: int = MASK_THRESHOLD, first_frames=None,
                     **kw) -> dict:
    """FiVE-Bench -> the common folder format (``videoshop_bench.datasets.benchmarks.build_benchmark`` options)."""
    return build_benchmark(NAME, read_entries(source, edit_types, mask_threshold), out_root, source=source,
                           first_frames=first_frames, settings={"edit_types": list(edit_types) if edit_types else None,
                                                                "mask_threshold": int(mask_threshold)}, **kw)
