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
from videoshop.method import seeded  # noqa: F401  (re-exported: the editors' stand-ins use it)
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


# ------------------------------------------------------------------- parts the tiny stand-ins share
TINY_TEXT_ENCODER = dict(vocab_size=514, hidden_size=32, intermediate_size=37, num_attention_heads=4,
                         num_hidden_layers=2, max_position_embeddings=77, bos_token_id=512, eos_token_id=513,
                         pad_token_id=513)  # the offline CLIP tokenizer's 514 ids


def tiny_vae(**release: Any):
    """SD's AutoencoderKL layout (4 levels: 8x downsampling, 4 latent channels) at 32 channels, with SD's latent
    scale; ``release`` overrides it with another release's VAE settings (FLUX's scale and shift, no quant convs)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(**{**dict(block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                                   up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, latent_channels=4,
                                   norm_num_groups=32, scaling_factor=0.18215), **release})


def tiny_clip_text_encoder():
    """A 2-layer CLIP text encoder over the offline character-level CLIP tokenizer's ids."""
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(**TINY_TEXT_ENCODER))


def size_multiple_of(image: Image.Image, multiple: int) -> tuple[int, int]:
    """(width, height) of ``image`` rounded down to multiples of ``multiple`` (at least one multiple each)."""
    w, h = image.size
    return max(multiple, w - w % multiple), max(multiple, h - h % multiple)


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
        """The pipeline class on tiny random modules from ``seed`` (a subclass: ``build_tiny = staticmethod(fn)``)."""
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
