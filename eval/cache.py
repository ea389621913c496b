"""On-disk cache for source-side metric work (source embeddings, source flow, I3D features, tracked masks).

Keys are dataset-independent: a hash of the array bytes (shape and dtype included) plus a protocol string naming
the backbone and every choice that changes the numbers. Ten methods evaluated on one dataset therefore compute each
source-side quantity once. Entries are written atomically (temp file + rename) so concurrent runs never read a
half-written file. ``cache_dir=None`` keeps an in-memory cache only.

No pickles: entries are safetensors files (a tensor or a numpy array, with its kind in the file's metadata) and
JSON; nothing in the cache folder can execute code when read, wherever ``paths.cache`` points.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from typing import Any, Callable, Optional

import numpy as np
import torch

from videoshop.files import atomic_path, atomic_write_json


def fingerprint(*parts: Any) -> str:
    """SHA-1 over arrays (bytes, shape, dtype) and strings/numbers; None is hashed as a marker."""
    h = hashlib.sha1()
    for p in parts:
        if p is None:
            h.update(b"<none>")
        elif isinstance(p, np.ndarray):
            a = np.ascontiguousarray(p)
            h.update(f"{a.shape}{a.dtype}".encode())
            h.update(a.tobytes())
        elif isinstance(p, torch.Tensor):
            a = p.detach().cpu().contiguous().numpy()
            h.update(f"{a.shape}{a.dtype}".encode())
            h.update(a.tobytes())
        elif isinstance(p, dict):
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
        else:
            h.update(str(p).encode())
        h.update(b"|")
    return h.hexdigest()


def save_array(path: str, value: Any) -> None:
    """One tensor or numpy array as safetensors, atomically (temp file + rename)."""
    from safetensors.torch import save_file

    if isinstance(value, np.ndarray):
        tensor, kind = torch.from_numpy(np.ascontiguousarray(value)), "numpy"
    elif isinstance(value, torch.Tensor):
        tensor, kind = value.detach().cpu().contiguous(), "torch"
    else:
        raise TypeError(f"FeatureCache stores tensors or numpy arrays, got {type(value).__name__}")
    with atomic_path(path) as tmp:
        save_file({"value": tensor}, str(tmp), metadata={"kind": kind})


def load_array(path: str) -> Any:
    """The value ``save_array`` wrote (safetensors: no code runs while reading)."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        kind = (f.metadata() or {}).get("kind", "torch")
        t = f.get_tensor("value")
    return t.numpy() if kind == "numpy" else t


class FeatureCache:
    """``get_or_compute(key, fn)``: memory first, then ``cache_dir/namespace/key.safetensors``, else ``fn()``
    (stored). Values are tensors or numpy arrays."""

    def __init__(self, cache_dir: Optional[str], namespace: str, memory_items: int = 64) -> None:
        self.dir = os.path.join(str(cache_dir), namespace) if cache_dir else None
        self.memory: "OrderedDict[str, Any]" = OrderedDict()
        self.memory_items = memory_items
        self.hits = self.misses = 0

    def _remember(self, key: str, value: Any) -> None:
        self.memory[key] = value
        self.memory.move_to_end(key)
        while len(self.memory) > self.memory_items:
            self.memory.popitem(last=False)

    def get_or_compute(self, key: str, fn: Callable[[], Any]) -> Any:
        if key in self.memory:
            self.hits += 1
            self.memory.move_to_end(key)
            return self.memory[key]
        path = os.path.join(self.dir, f"{key}.safetensors") if self.dir else None
        if path and os.path.exists(path):
            try:
                value = load_array(path)
                self.hits += 1
                self._remember(key, value)
                return value
            except Exception:  # noqa: BLE001  (a corrupt entry is recomputed)
                pass
        self.misses += 1
        value = fn()
        if path:
            save_array(path, value)
        self._remember(key, value)
        return value


def load_json_cache(cache_dir: Optional[str], namespace: str, key: str) -> Optional[Any]:
    if not cache_dir:
        return None
    path = os.path.join(str(cache_dir), namespace, f"{key}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


def save_json_cache(cache_dir: Optional[str], namespace: str, key: str, value: Any) -> None:
    if not cache_dir:
        return
    atomic_write_json(os.path.join(str(cache_dir), namespace, f"{key}.json"), value, indent=1, default=None)
