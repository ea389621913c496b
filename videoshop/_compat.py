"""Make pure-Python torchvision importable next to a CPU-only torch build.

The only torchvision that matches torch 2.13.0 on PyPI is a CUDA build; with a CPU torch its compiled
extension fails to load and ``import torchvision`` dies with ``operator torchvision::nms does not exist``
(which also breaks transformers, diffusers, open_clip and timm, which import it). Before anything imports
torchvision we try to load its extension; if that fails we declare the schemas of the two operators its
Python code registers fake kernels for. Models (RAFT) and transforms then work; compiled ops (nms, image
decoding) stay unavailable, which this project never uses. On a machine with a matching torchvision the
library loads and this module does nothing else.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import torch

_DONE = False
_LIB = None  # keep the fragment alive for the life of the process


def ensure_torchvision_importable() -> None:
    """Idempotently load torchvision's ops or, failing that, define the schemas it needs."""
    global _DONE, _LIB
    if _DONE or "torchvision" in sys.modules:
        _DONE = True
        return
    _DONE = True
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    root = list(spec.submodule_search_locations)[0]
    for name in os.listdir(root):
        if name.startswith("_C") and name.endswith((".so", ".pyd")):
            try:
                torch.ops.load_library(os.path.join(root, name))
                return
            except (OSError, RuntimeError):
                break
    try:
        torch.ops.torchvision.nms  # noqa: B018  (already defined by someone else)
        return
    except (AttributeError, RuntimeError):
        pass
    _LIB = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        _LIB.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


ensure_torchvision_importable()
