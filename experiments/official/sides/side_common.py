"""Helpers shared by the side scripts (run in the side environments; never imports the project)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys


def load_compat(path: str) -> None:
    """videoshop/_compat.py (the CPU-torch operator shim) loaded by file path, before anything imports torchvision."""
    spec = importlib.util.spec_from_file_location("_videoshop_compat", path)
    compat = importlib.util.module_from_spec(spec)
    sys.modules["_videoshop_compat"] = compat
    spec.loader.exec_module(compat)


def record_after(owner, name: str, record) -> None:
    """Replace ``owner.name`` by a wrapper that calls it unchanged, then ``record(out, *args, **kwargs)``."""
    orig = getattr(owner, name)

    def wrapped(*a, **kw):
        out = orig(*a, **kw)
        record(out, *a, **kw)
        return out

    setattr(owner, name, wrapped)


def rng_hash() -> str:
    """A short hash of torch's global CPU RNG state."""
    import torch

    return hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()[:16]
