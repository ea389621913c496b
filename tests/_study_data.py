"""Results folders for the study tests, written through the project's own ResultStore and media writers: small
generated videos per method and sample, records with metrics, one failed sample. Also a running study server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from videoshop_bench.experiments.store import ResultStore
from videoshop.video_io import write_image, write_video

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("clip_tgt", "clip_tc", "flow", "ssim")


def _video(rng: np.random.Generator, t: int = 6, h: int = 32, w: int = 56) -> np.ndarray:
    base = rng.integers(0, 256, size=(1, h, w, 3))
    drift = np.arange(t)[:, None, None, None] * 9
    return ((base + drift) % 256).astype(np.uint8)


def make_results(root: Path, methods=("videoshop", "bdia", "rave"), n_samples: int = 4, failed=("rave", 3),
                 seed: int = 0, instruction: str = "add a red ball") -> Path:
    """A multirun-like folder ``root`` with one run per method: ``<root>/synthetic/tiny/<method>/samples/<id>``."""
    rng = np.random.default_rng(seed)
    sources = {i: _video(rng) for i in range(n_samples)}
    for m in methods:
        store = ResultStore(root / "synthetic" / "tiny" / m)
        for i in range(n_samples):
            sid = f"s{i:02d}"
            bad = failed is not None and (m, i) == tuple(failed)
            rec = {"sample_id": sid, "label": m, "method": m, "task": "edit", "dataset": "synthetic", "model": "tiny",
                   "status": "error" if bad else "ok", "error": "SampleError: boom" if bad else None,
                   "finite": True, "edit_type": "add_object", "instruction": instruction,
                   "metrics": {} if bad else {k: float(rng.normal(50, 10)) for k in METRICS}}
            frames = None if bad else _video(rng)
            d = store.write(sid, rec, frames)
            write_video(d / "source.mp4", sources[i], 7.0)
            write_image(d / "edited_first_frame.png", sources[i][0])
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m videoshop_bench.experiments.study.server`` in a subprocess (so that it can be SIGKILLed)."""

    def __init__(self, study_dir: Path, db_url: str, port: int | None = None, extra=()):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "videoshop_bench.experiments.study.server", "--dir", str(study_dir), "--db", db_url,
                     "--port", str(self.port), *extra]
        self.proc = None

    def start(self, timeout: float = 60) -> "ServerProcess":
        import httpx

        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def kill(self, sig: int = 9) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)

    def stop(self) -> None:
        self.kill(15)
