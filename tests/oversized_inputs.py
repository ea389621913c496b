"""Write oversized inputs for measuring what refusing them costs (docs/reliability.md, "Measured"):

    python tests/oversized_inputs.py DIR

DIR/data/: a folder dataset with one good sample, ``long_1200`` (1200 lossless frames) and ``huge_12000`` (two real
12000x12000 frames, 5.5 MB of PNG, 864 MB of pixels if decoded); DIR/long_1200.mp4 (1200 frames, 512x512) for the
CLI. PNGs are written row by row (zlib streaming), so writing them needs little memory either.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np


def write_big_png(path: Path, h: int, w: int, seed: int = 0) -> None:
    """A valid 8-bit RGB PNG of h x w, written one row at a time (a gradient with a little noise)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rng = np.random.default_rng(seed)
    comp, parts = zlib.compressobj(6), []
    base = (np.arange(w, dtype=np.uint16) * 255 // max(1, w - 1)).astype(np.uint8)
    for y in range(h):
        row = np.stack([base, np.full(w, y * 255 // max(1, h - 1), np.uint8), base[::-1]], axis=1)
        if y % 97 == 0:
            row = row ^ rng.integers(0, 2, row.shape, dtype=np.uint8)
        parts.append(comp.compress(b"\x00" + row.tobytes()))
    parts.append(comp.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def main(out: Path) -> None:
    from videoshop_bench.datasets.folder import write_sample
    from videoshop_bench.datasets.schema import Sample
    from videoshop.video_io import write_video

    data = out / "data"
    rng = np.random.default_rng(0)
    v = np.repeat(rng.integers(0, 255, (1, 64, 112, 3), dtype=np.uint8), 4, axis=0)
    write_sample(data, Sample("good", v, v[0].copy(), edit_type="change_color"))
    long = np.repeat(rng.integers(0, 255, (1, 64, 112, 3), dtype=np.uint8), 1200, axis=0)
    write_sample(data, Sample("long_1200", long, long[0].copy(), edit_type="change_color"))
    huge = write_sample(data, Sample("huge_12000", v[:2], v[0].copy(), edit_type="change_color"))
    for f in (huge / "source").iterdir():
        write_big_png(f, 12000, 12000)
    write_big_png(huge / "edited.png", 12000, 12000)
    frames = np.repeat(rng.integers(0, 255, (1, 512, 512, 3), dtype=np.uint8), 1200, axis=0)
    write_video(out / "long_1200.mp4", frames, fps=24)
    print(f"wrote {data} and {out / 'long_1200.mp4'}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main(Path(sys.argv[1]))
