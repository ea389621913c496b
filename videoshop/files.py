"""Atomic, concurrency-safe file and folder writes: the one place every layer (datasets, metric caches, the results
store, tables) writes through.

A file or folder is built under a private scratch sibling ``.<name>.<kind>.<host>.<pid>.<nonce>`` and renamed
into place, so a reader sees the old or the new version, never half of one. ``scratch_owner`` parses such a name
and ``scratch_abandoned`` tells whether its writer is gone, so that a cleanup can delete what a crashed writer
left (experiments/store.py's ``ResultStore.cleanup``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

HOST = socket.gethostname()
_HOST_TAG = HOST.replace(".", "_")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this host is running (a zombie counts as dead)."""
    if pid <= 0:  # never signal a process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def scratch_name(name: str, kind: str) -> str:
    """A private sibling name for ``name``: ``.<name>.<kind>.<host>.<pid>.<nonce>`` (parsed by ``scratch_owner``)."""
    return f".{name}.{kind}.{_HOST_TAG}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def scratch_owner(entry: str) -> Optional[tuple[str, str, str, int]]:
    """(name, kind, host tag, pid) of a scratch entry, or None if ``entry`` is not one."""
    if not entry.startswith("."):
        return None
    parts = entry[1:].rsplit(".", 4)
    if len(parts) != 5 or parts[1] not in ("tmp", "old") or not parts[3].isdigit():
        return None
    return parts[0], parts[1], parts[2], int(parts[3])


def scratch_abandoned(path: Path, older_than_s: float) -> bool:
    """A scratch entry whose writer is dead (this host) or that is older than ``older_than_s`` (other hosts)."""
    owner = scratch_owner(path.name)
    if owner is None:
        return False
    if owner[2] == _HOST_TAG and owner[3] != os.getpid():
        return not pid_alive(owner[3])
    try:
        return owner[3] != os.getpid() and time.time() - path.stat().st_mtime > older_than_s
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A scratch path next to ``path`` to write to; on success it is ``os.replace``d onto ``path``, on failure it is
    removed (and ``path`` is untouched)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(scratch_name(path.name, "tmp"))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary sibling, then ``os.replace`` it onto ``path`` (readers never see half a file)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | Path, data: Any, indent: int = 2, default: Optional[Callable] = str) -> Path:
    """``atomic_write_text`` of ``json.dumps(data)``."""
    return atomic_write_text(path, json.dumps(data, indent=indent, default=default))


def swap_in_folder(tmp: Path, final: Path) -> None:
    """Rename the complete folder ``tmp`` onto ``final``; a folder in the way is renamed aside first and deleted after
    (retried under races: concurrent writers of one folder end with one complete folder, the last one)."""
    aside: list[Path] = []
    try:
        for _ in range(1000):
            try:
                os.rename(tmp, final)  # fails while a (non-empty) folder is there
                return
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            old = final.with_name(scratch_name(final.name, "old"))
            try:
                os.rename(final, old)
                aside.append(old)
            except FileNotFoundError:  # another writer moved it first: try again
                continue
        raise RuntimeError(f"{final}: could not swap in a new folder (1000 concurrent replacements)")
    finally:
        for old in aside:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(final: str | Path) -> Iterator[Path]:
    """A fresh scratch folder next to ``final`` to fill; on success it is swapped in (``swap_in_folder``), on
    failure removed (``final`` untouched)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(scratch_name(final.name, "tmp"))
    tmp.mkdir()
    try:
        yield tmp
        swap_in_folder(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks (weight pins, content-addressed study media)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
