"""What the diffusers image editors share: weights by hub id or local path at a pinned revision (one-line
``MissingWeightsError`` naming ``first_frame.*`` when absent), tiny random stand-ins of the same pipeline classes
(``weights=tiny``; tests, offline), a seeded call, the output back at the source frame's size.

A subclass gives ``pipeline_class`` (dotted), ``build_tiny(seed)`` (the pipeline on tiny random modules) and
``call(pipe, image, prompt, generator)`` (the pipeline's call with its options).
"""

from __future__ import annotations

import os
import zlib
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from videoshop import _compat  # noqa: F401  (torchvision shim before diffusers/transformers)
from videoshop.loading import MissingWeightsError, _repo_relative, downloads_possible, resolve_device
from videoshop.registry import load_object

from .base import EditedFrame, EditRequest

WEIGHTS = ("pretrained", "tiny")
KEY = "first_frame"


def resolve_editor_weights(hub_id: Optional[str], path: Optional[str], revision: Optional[str],
                           allow_download: bool = True) -> tuple[str, Optional[str]]:
    """(what ``from_pretrained`` loads, the resolved commit or None), or one-line MissingWeightsError naming
    ``first_frame.path`` / ``first_frame.hub_id``. A hub id must be in the local cache at ``revision`` or be
    downloadable (HF_HUB_OFFLINE unset, hub reachable)."""
    if path:
        path = _repo_relative(str(path))
        if not os.path.isfile(os.path.join(path, "model_index.json")):
            raise MissingWeightsError(f"{KEY}.path={path} holds no model_index.json: point it at a diffusers "
                                      f"checkpoint folder of {hub_id or 'the editor'}")
        return path, None
    if not hub_id:
        raise MissingWeightsError(f"{KEY}.hub_id: no weights configured: set {KEY}.path=DIR or {KEY}.hub_id=ORG/NAME")
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(hub_id, revision=revision, local_files_only=True, allow_patterns=["*.json"])
        return hub_id, os.path.basename(os.path.normpath(local))  # snapshots/<commit>
    except Exception:  # noqa: BLE001  (not cached)
        pass
    if not downloads_possible(allow_download):
        at = f" @ {revision}" if revision else ""
        raise MissingWeightsError(f"{KEY}.hub_id={hub_id}{at} is not cached and cannot be downloaded here: set "
                                  f"{KEY}.path=DIR (e.g. from `huggingface-cli download {hub_id}` on a connected machine)")
    return hub_id, revision


def editor_dtype(dtype: str, device: torch.device, cuda_default: torch.dtype) -> torch.dtype:
    """'auto' = the editor's release precision on CUDA (fp16 / bf16), fp32 elsewhere."""
    if dtype == "auto":
        return cuda_default if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]


def seeded(seed: int, fn):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


class DiffusersEditor:
    pipeline_class = ""  # dotted path of the diffusers pipeline
    cuda_dtype = torch.float16

    def __init__(self, name: str, hub_id: Optional[str] = None, path: Optional[str] = None,
                 revision: Optional[str] = None, weights: str = "pretrained", device: str = "auto",
                 dtype: str = "auto", options: Optional[dict] = None, cpu_offload: bool = False,
                 allow_download: bool = True, **unused: Any):
        if weights not in WEIGHTS:
            raise ValueError(f"{KEY}.weights={weights!r}: expected one of {WEIGHTS}")
        self.name, self.weights, self.options = name, weights, dict(options or {})
        self.device = resolve_device(device)
        self.dtype = editor_dtype(dtype, self.device, self.cuda_dtype)
        if weights == "tiny":  # seeded by the editor's name: two editors of one architecture get different weights
            seed = zlib.crc32(name.encode()) % 2**16
            self.source, self.revision = f"tiny random stand-in (seed {seed})", None
            self.pipe = self.build_tiny(seed=seed)
        else:
            self.source, self.revision = resolve_editor_weights(hub_id, path, revision, allow_download)
            self.pipe = self.load_pretrained()
        for module in self.pipe.components.values():  # modules built in code start in training mode (dropout)
            if isinstance(module, torch.nn.Module):
                module.eval().requires_grad_(False)
        self.pipe.set_progress_bar_config(disable=True)
        if cpu_offload and self.device.type == "cuda":
            self.pipe.enable_model_cpu_offload()
        else:
            self.pipe.to(self.device)

    def load_pretrained(self):
        cls = load_object(self.pipeline_class)
        try:
            return cls.from_pretrained(self.source, revision=self.revision, torch_dtype=self.dtype)
        except (OSError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MissingWeightsError(f"{KEY}: could not load {self.name} weights from {self.source} ({first})") from None

    def build_tiny(self, seed: int = 0):
        raise NotImplementedError

    def call(self, image: Image.Image, prompt: str, generator: torch.Generator) -> Image.Image:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"editor": self.name, "weights": self.weights, "source": self.source, "revision": self.revision,
                "pipeline": self.pipeline_class.rpartition(".")[2], "dtype": str(self.dtype).replace("torch.", ""),
                "options": self.options}

    @torch.no_grad()
    def edit(self, request: EditRequest) -> EditedFrame:
        generator = torch.Generator("cpu").manual_seed(int(request.seed))
        out = self.call(Image.fromarray(request.source), request.prompt, generator)
        return EditedFrame(np.asarray(out.convert("RGB")), None, mask_source="difference",
                           info={"source": self.source, "revision": self.revision})
