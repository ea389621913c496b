"""What a sample folder of the on-disk format holds (``datasets/folder.py``) and what counts as valid: sample ids,
the keys of ``sample.json`` and the checks on their values, the ``files`` entries that must stay inside the folder.

Validated, not coerced (docs/datasets.md "Input rules"): every refusal is one ``SampleError`` line naming the file
and the key at fault.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from .schema import SampleError

FORMAT_VERSION = 1
SAMPLE_FILE = "sample.json"
FILE_KEYS = ("source", "edited", "mask", "gt", "gt_masks")
DEFAULT_FILES = {"source": "source", "edited": "edited.png"}
# every key a sample.json may hold; another key (a misspelled `instrucion`) is refused, naming it
SAMPLE_KEYS = ("format_version", "sample_id", "instruction", "source_prompt", "target_prompt", "edit_type", "fps",
               "num_frames", "height", "width", "files", "meta", "extras")
MAX_SAMPLE_JSON_BYTES = 1_000_000  # a sample.json is a few hundred bytes; larger ones are refused unread
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
    """Whether ``<root>/<sample_id>`` is a complete sample (its sample.json is written last)."""
    return (Path(root) / str(sample_id) / SAMPLE_FILE).is_file()


def printable_name(name: str) -> str:
    """A folder name as text that can be logged and written anywhere: a name that is not valid UTF-8 (Python holds
    its bytes as surrogates) gets those bytes as ``\\xNN`` escapes, and its sample then fails with one line naming
    it instead of breaking the run's logs and tables."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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


def sample_fields(rec: dict, meta_path: Path) -> dict[str, Any]:
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
    for key in ("meta", "extras"):
        v = rec.get(key)
        if v is not None and not isinstance(v, dict):
            raise bad(key, "must be an object")
        out[key] = dict(v or {})
    return out


def sample_files(rec: dict, folder: Path, meta_path: Path) -> dict[str, Path]:
    """``files`` entries as paths that stay inside the sample folder (no absolute paths, no '..' out of it);
    ``source`` and ``edited`` are required."""
    files = rec.get("files")
    if files is None:
        files = dict(DEFAULT_FILES)
    if not isinstance(files, dict):
        raise SampleError(f"{meta_path}: files must be an object mapping {', '.join(FILE_KEYS)} to paths")
    unknown = sorted(set(files) - set(FILE_KEYS))
    if unknown:
        raise SampleError(f"{meta_path}: unknown files key(s) {unknown}; expected {', '.join(FILE_KEYS)}")
    out: dict[str, Path] = {}
    root = folder.resolve()
    for key in FILE_KEYS:
        rel = files.get(key, DEFAULT_FILES.get(key))
        if rel in (None, ""):
            continue
        if not isinstance(rel, str):
            raise SampleError(f"{meta_path}: files.{key}={rel!r}: must be a path relative to the sample folder")
        target = (folder / rel).resolve()
        if Path(rel).is_absolute() or not target.is_relative_to(root):
            raise SampleError(f"{meta_path}: files.{key}={rel!r} leaves the sample folder {folder}")
        out[key] = folder / rel
    if "source" not in out or "edited" not in out:
        raise SampleError(f"{meta_path}: files.source and files.edited are required")
    return out
