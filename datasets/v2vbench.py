"""V2VBench (Sun et al., "Diffusion Model-Based Video Editing: A Survey", github.com/wenhao728/awesome-diffusion-v2v):
50 source videos in 5 categories, 3 edit prompts each (4 editing tasks), 8 metrics.

Layout read (doc/README.md "Prepare Data" and v2vbench/base_evaluator.py, commit 1eebcb3; data on the hub as
``Wenhao-Sun/V2VBench``)::

    <root>/config.yaml        data: a list of {video_id, [prompt: the source caption], edit: [{prompt: ...}, ...]}
                              (the evaluator loads it with OmegaConf and reads data[*].video_id / edit[*].prompt)
    <videos>/<video_id>.mp4   the source video, or <videos>/<video_id>/ a folder of frames (01.jpg, 02.jpg, ...)

``videos`` defaults to ``<root>/videos`` when it exists, else ``<root>``. Sample ids are ``<video_id>_<edit_id>``
(edit_id = the prompt's index, as the evaluator names edited videos ``<video_id>/<edit_id>``). The edit prompt is
the target prompt and the instruction; extra keys of an edit (e.g. a task name) are kept in ``meta``. V2VBench
ships no edited first frames: they come from ``first_frames`` (module ``videoshop_bench.datasets.benchmarks``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .benchmarks import bad_entry, build_benchmark, find_video
from .folder_spec import safe_sample_id

NAME = "v2vbench"
INDEX_NAMES = ("config.yaml", "config.yml", "index.yaml")


def index_file(root: Path) -> Path:
    if root.is_file():
        return root
    for n in INDEX_NAMES:
        if (root / n).is_file():
            return root / n
    raise FileNotFoundError(f"dataset.build.source={root}: no V2VBench index ({' / '.join(INDEX_NAMES)}) with a "
                            f"`data:` list of {{video_id, edit: [{{prompt}}]}}")


def read_entries(root, videos: Optional[str] = None) -> list[dict]:
    """One entry per (video, edit prompt); a malformed row becomes one failing entry naming the file and row."""
    import yaml

    root = Path(root).expanduser()
    index = index_file(root)
    base = index.parent
    vdir = Path(videos).expanduser() if videos else (base / "videos" if (base / "videos").is_dir() else base)
    try:
        data = (yaml.safe_load(index.read_text()) or {}).get("data")
    except (OSError, yaml.YAMLError, AttributeError) as e:
        raise ValueError(f"{index}: not a V2VBench index: {type(e).__name__}: {e}".splitlines()[0]) from None
    if not isinstance(data, list):
        raise ValueError(f"{index}: `data` must be a list of {{video_id, edit: [...]}}")
    entries = []
    for i, row in enumerate(data):
        where = f"{index}:data[{i}]"
        if not isinstance(row, dict) or not row.get("video_id") or not isinstance(row.get("edit"), list):
            entries.append(bad_entry(f"row{i}", where, "expected {video_id, edit: [{prompt}, ...]}"))
            continue
        vid = str(row["video_id"])
        video = find_video(vdir, vid)
        for j, edit in enumerate(row["edit"]):
            sid, w = safe_sample_id(f"{vid}_{j}"), f"{where}.edit[{j}]"
            if not isinstance(edit, dict) or not str(edit.get("prompt") or "").strip():
                entries.append(bad_entry(sid, w, "expected {prompt: ...}"))
                continue
            entries.append({
                "id": sid, "_where": w, "video": str(video) if video else str(vdir / f"{vid}.mp4"),
                "instruction": str(edit["prompt"]).strip(), "target_prompt": str(edit["prompt"]).strip(),
                "source_prompt": row.get("prompt") or row.get("source_prompt"), "edit_type": None,
                "meta": {"dataset": NAME, "video_id": vid, "edit_id": j,
                         **{f"v2v_{k}": v for k, v in edit.items() if k != "prompt"}},
            })
    return entries


def build_v2vbench(source, out_root, *, videos=None, first_frames=None, **kw) -> dict:
    """V2VBench -> the common folder format (``videoshop_bench.datasets.benchmarks.build_benchmark`` options)."""
    return build_benchmark(NAME, read_entries(source, videos), out_root, source=source, first_frames=first_frames,
                           settings={"videos": videos}, **kw)
