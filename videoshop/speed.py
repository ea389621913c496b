"""Speed and memory options of the pipeline, each a plain setting with a tested equivalence to the plain path.

None of these changes the algorithm; each trades numerics (within a stated tolerance, see tests/test_speed.py) or
memory for time:

- ``attention``: which scaled-dot-product-attention kernel the UNet's attention layers use. ``sdpa`` (default) lets
  PyTorch choose (flash / memory-efficient / cuDNN / math, whatever the inputs allow), as diffusers' default
  ``AttnProcessor2_0`` does; ``flash``, ``efficient``, ``cudnn`` and ``math`` restrict SDPA to that one kernel
  (an error if it cannot run the inputs, never a silent fallback); ``eager`` installs diffusers' classic
  ``AttnProcessor`` (explicit softmax(QK^T)V, no SDPA).
- ``compile``: ``torch.compile`` of the UNet in place (``nn.Module.compile``); its one-off cost is paid on the first
  call and reported separately by research/benchmark_edit.py.
- ``channels_last``: the UNet's weights in channels-last memory format (faster convolutions on tensor cores).
- ``offload``: ``none`` | ``model``: keep each component on the CPU and move it to the accelerator only for its
  stage (CLIP + VAE encode, UNet, VAE decode), for GPUs too small for all of SVD at once.
- VAE upcast: fp16 VAEs whose config says ``force_upcast`` encode in float32, as diffusers'
  StableVideoDiffusionPipeline does (``encode_upcast``).

The per-edit options (CFG as one batch or two passes, VAE chunk sizes) are fields of ``VideoshopConfig``.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

ATTENTION_BACKENDS = ("sdpa", "flash", "efficient", "cudnn", "math", "eager")
OFFLOAD_MODES = ("none", "model")


@dataclass
class RuntimeOptions:
    """How the pipeline runs (not what it computes). Defaults: the plain path."""

    attention: str = "sdpa"
    compile: bool = False
    compile_mode: Optional[str] = None  # torch.compile mode: None (default) | reduce-overhead | max-autotune
    channels_last: bool = False
    offload: str = "none"
    encode_upcast: bool = True  # fp16 VAE with config.force_upcast encodes in float32 (diffusers' SVD pipeline)

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_BACKENDS:
            raise ValueError(f"attention={self.attention!r}: expected one of {ATTENTION_BACKENDS}")
        if self.offload not in OFFLOAD_MODES:
            raise ValueError(f"offload={self.offload!r}: expected one of {OFFLOAD_MODES}")

    @classmethod
    def from_dict(cls, values: Optional[dict[str, Any]]) -> "RuntimeOptions":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values or {}) - known)
        if unknown:
            raise KeyError(f"unknown runtime option(s) {unknown}; known: {sorted(known)}")
        return cls(**(values or {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sdpa_backends(attention: str) -> Optional[list]:
    """The SDPA kernels ``attention`` allows (None = no restriction)."""
    from torch.nn.attention import SDPBackend

    return {"flash": [SDPBackend.FLASH_ATTENTION], "efficient": [SDPBackend.EFFICIENT_ATTENTION],
            "cudnn": [SDPBackend.CUDNN_ATTENTION], "math": [SDPBackend.MATH]}.get(attention)


@contextlib.contextmanager
def attention_kernel(attention: str) -> Iterator[None]:
    """Restrict PyTorch SDPA to the kernel ``attention`` names while the block runs (no-op for sdpa / eager)."""
    backends = sdpa_backends(attention)
    if backends is None:
        yield
        return
    from torch.nn.attention import sdpa_kernel

    with sdpa_kernel(backends):
        yield


def set_attention_processors(unet, attention: str) -> None:
    """``eager``: diffusers' classic AttnProcessor (no SDPA); anything else: the SDPA processor (diffusers' default)."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    unet.set_attn_processor(AttnProcessor() if attention == "eager" else AttnProcessor2_0())


def apply_runtime_options(pipe, options: RuntimeOptions) -> None:
    """Configure ``pipe`` (a VideoshopPipeline) in place for ``options``; ``pipe.runtime`` remembers them."""
    set_attention_processors(pipe.unet, options.attention)
    if options.channels_last:
        to_channels_last(pipe.unet)
    if options.compile:
        pipe.unet.compile(mode=options.compile_mode)
    pipe.runtime = options


def to_channels_last(module: torch.nn.Module) -> None:
    """Put every 2-D convolution's weight in channels-last format (SVD's UNet also holds 5-D parameters, which
    ``module.to(memory_format=torch.channels_last)`` refuses)."""
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)


@contextlib.contextmanager
def on_device(module, device: torch.device, enabled: bool) -> Iterator[None]:
    """With ``enabled`` (model offload), move ``module`` to ``device`` for the block and back to the CPU after."""
    if not enabled or module is None:
        yield
        return
    module.to(device)
    try:
        yield
    finally:
        module.to("cpu")
        if device.type == "cuda":
            torch.cuda.empty_cache()


# Peak memory of one measured stretch (an edit), on the device it ran on -----------------------------------------

_CLEAR_REFS, _STATUS = Path("/proc/self/clear_refs"), Path("/proc/self/status")


def reset_peak_memory(device: str | torch.device = "cpu") -> str:
    """Start a new peak-memory window and return what ``peak_memory_mb`` will then measure (its scope).

    CUDA: ``torch.cuda.reset_peak_memory_stats`` -> ``"cuda_allocated"`` (peak tensor memory of the window). CPU on
    Linux: writing ``5`` to ``/proc/self/clear_refs`` resets the process's resident-set high-water mark (VmHWM,
    proc(5)) -> ``"rss_window"`` (peak resident memory of the whole process during the window: weights resident
    before it count). Elsewhere, or where the kernel refuses the write: nothing can be reset -> ``"rss_process"``
    (the process's high-water mark since it started, which later windows inherit; the scope says so)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        return "cuda_allocated"
    try:
        _CLEAR_REFS.write_text("5")
        return "rss_window"
    except OSError:
        return "rss_process"


def peak_memory_mb(device: str | torch.device = "cpu") -> float:
    """The peak memory (MiB) since the last ``reset_peak_memory`` (see its scopes)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, kB elsewhere
