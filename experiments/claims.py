"""Per-sample claims: at most one worker edits a given sample of a run folder at a time, across processes and hosts.

A claim is a small JSON file ``<folder>/<sample_id>.claim`` ({token, host, pid, time}) created atomically (written
to a private file, then hard-linked into place: ``link`` fails if the claim exists, so exactly one creator wins
and a reader never sees a half-written claim). While a worker holds it, a heartbeat thread refreshes its mtime.

A claim is stale, and may be taken over, when its holder is known dead (same host, process gone) or its heartbeat
is older than ``stale_after_s`` (a killed job on another node). Takeover is serialised by a second exclusive file
(``.takeover``), re-checks that the claim is still the stale one it saw, and swaps in its own claim with
``os.replace``. A holder that was merely slow notices the foreign token at its next heartbeat (``Claim.lost``) and
must not write its result (``ClaimLost``). Only plain file operations are used (no flock), so it works on the
network file systems SLURM clusters share (NFS, Lustre, GPFS) as long as ``link`` and ``rename`` are atomic.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

from videoshop.files import HOST, pid_alive  # noqa: F401  (HOST is re-exported to the runner)

log = logging.getLogger(__name__)



class ClaimLost(RuntimeError):
    """Another worker took over this sample's claim (it judged ours stale): our result must not be written."""


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _create_exclusive(path: Path, content: dict) -> bool:
    """Create ``path`` holding ``content`` iff it does not exist (atomic, complete on appearance)."""
    private = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    private.write_text(json.dumps(content))
    try:
        os.link(private, path)
        return True
    except FileExistsError:
        return False
    finally:
        private.unlink(missing_ok=True)


class Claim:
    """A held claim; refreshes its heartbeat until ``release()`` (also a context manager)."""

    def __init__(self, book: "ClaimBook", sample_id: str, token: str):
        self.book, self.sample_id, self.token = book, sample_id, token
        self.path = book.path(sample_id)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"claim-{sample_id}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.book.heartbeat_s):
            info = _read_json(self.path)
            if info is None or info.get("token") != self.token:
                self.lost = True
                log.warning("%s: claim taken over by another worker (%s)", self.sample_id, info)
                return
            try:
                os.utime(self.path)
            except OSError:
                pass

    def check(self) -> None:
        """Raise ``ClaimLost`` if another worker now holds this sample."""
        if not self.lost:
            info = _read_json(self.path)
            self.lost = info is None or info.get("token") != self.token
        if self.lost:
            raise ClaimLost(f"{self.sample_id}: claim {self.path} was taken over by another worker")

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        self.book.held.pop(self.sample_id, None)
        info = _read_json(self.path)
        if info is not None and info.get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class ClaimBook:
    """The claims of one run folder. ``acquire(sample_id)`` returns a ``Claim`` or None (held by a live worker)."""

    def __init__(self, folder: str | Path, stale_after_s: float = 300.0, heartbeat_s: float = 10.0):
        if heartbeat_s >= stale_after_s:
            raise ValueError(f"claim.heartbeat_s={heartbeat_s} must be below claim.stale_after_s={stale_after_s}")
        self.folder = Path(folder)
        self.stale_after_s, self.heartbeat_s = float(stale_after_s), float(heartbeat_s)
        self.held: dict[str, Claim] = {}

    def path(self, sample_id: str) -> Path:
        return self.folder / f"{sample_id}.claim"

    def _content(self, token: str) -> dict:
        return {"token": token, "host": HOST, "pid": os.getpid(), "time": time.time()}

    def stale(self, path: Path, info: Optional[dict]) -> bool:
        """Dead holder (same host, process gone) or heartbeat older than ``stale_after_s``."""
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True
        if age > self.stale_after_s:
            return True
        return bool(info) and info.get("host") == HOST and not pid_alive(int(info.get("pid", -1)))

    def acquire(self, sample_id: str) -> Optional[Claim]:
        self.folder.mkdir(parents=True, exist_ok=True)
        path, token = self.path(sample_id), uuid.uuid4().hex
        if not _create_exclusive(path, self._content(token)):
            info = _read_json(path)
            if not self.stale(path, info) or not self._take_over(path, info, token):
                return None
        claim = Claim(self, sample_id, token)
        self.held[sample_id] = claim
        return claim

    def _take_over(self, path: Path, seen: Optional[dict], token: str) -> bool:
        """Replace the stale claim ``seen`` by ours; False if someone else is taking over or it changed."""
        guard = path.with_name(path.name + ".takeover")
        if not _create_exclusive(guard, self._content(token)):
            if self.stale(guard, _read_json(guard)):  # a taker died between its two steps
                guard.unlink(missing_ok=True)
            return False
        try:
            now = _read_json(path)
            if now is None or now.get("token") != (seen or {}).get("token") or not self.stale(path, now):
                return False  # released meanwhile (the next attempt creates it) or changed hands
            private = path.with_name(f".{path.name}.{token}")
            private.write_text(json.dumps(self._content(token)))
            os.replace(private, path)
            log.warning("%s: took over the stale claim of %s", path.stem, seen)
            return True
        finally:
            guard.unlink(missing_ok=True)

    def check(self, sample_id: str) -> None:
        """Raise ``ClaimLost`` when this process holds ``sample_id``'s claim and another worker took it over."""
        claim = self.held.get(sample_id)
        if claim is not None:
            claim.check()
