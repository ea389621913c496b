"""Backbone loaders for the metrics: CLIP (open_clip), RAFT (torchvision), I3D (TorchScript).

Each loader takes ``backbone``:
  ``real``   pretrained weights (hub/URL, or a local ``checkpoint``); missing weights raise ``MissingWeightsError``
             with one line naming the config key to set; there is NEVER a silent fallback to a smaller model;
  ``random`` the real-size architecture with seeded random weights (timing only);
  ``tiny``   a seeded random stand-in of the same architecture family, for offline tests and CI.
The choice is recorded in every metric's ``protocol()``. Loaded models are shared between metric objects in the
same process (``shared``, one instance per configuration AND device), so CLIP_tgt, CLIP_src and CLIP_TC load CLIP
once. A metric holds its backbone through a ``SharedBackbone`` handle: ``metric.to(dev)`` rebinds the handle to the
instance for ``dev`` (loaded on first use) instead of moving the shared instance in place.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
import urllib.request
from typing import Any, Callable, Optional

from videoshop import _compat  # noqa: F401  (torchvision shim before open_clip / torchvision)

import torch
import torch.nn as nn
import torch.nn.functional as F

from videoshop.files import atomic_path, file_sha256  # noqa: F401  (file_sha256 re-exported)
from videoshop.loading import MissingWeightsError, resolve_device  # noqa: F401  (re-exported)
from videoshop.method import seeded as _seeded  # noqa: F401  (the metrics' tiny stand-ins use it)

from .base import OnDevice, canonical_device

BACKBONES = ("real", "random", "tiny")
_SHARED: dict[Any, Any] = {}




def shared(key: Any, builder: Callable[[], Any]) -> Any:
    """One instance per key in this process (backbones are read-only at evaluation time)."""
    if key not in _SHARED:
        _SHARED[key] = builder()
    return _SHARED[key]


class SharedBackbone(OnDevice):
    """One metric's handle on a shared backbone, bound to one device.

    ``load(device)`` returns the backbone (a module, or a tuple / dict holding modules and their preprocessors) for
    ``device``; the loaders key ``shared`` on the device, so each device has its own instance. ``to(device)`` binds
    the handle to the instance for the new device (built on first use, e.g. a fresh load on ``meta``) and NEVER moves
    an instance in place: metrics sharing the old one keep it, and metrics built later get their own device's one.
    """

    def __init__(self, load: Callable[[torch.device], Any], device: str | torch.device = "auto") -> None:
        self.load = load
        self.device = canonical_device(resolve_device(device))
        self.value = load(self.device)

    def to(self, device: str | torch.device) -> "SharedBackbone":
        dev = canonical_device(resolve_device(device))
        if dev != self.device:
            self.value = self.load(dev)  # load first: a failed load leaves the handle where it was
            self.device = dev
        return self

    def __deepcopy__(self, memo: dict) -> "SharedBackbone":
        """A copy (e.g. ``Metric.clone()``) is another handle on the same shared instance, not a copy of the weights."""
        new = copy.copy(self)
        memo[id(self)] = new
        for k, v in vars(self).items():
            if k != "value":
                setattr(new, k, copy.deepcopy(v, memo))
        return new

    def modules(self) -> list[nn.Module]:
        out, todo = [], [self.value]
        while todo:
            v = todo.pop(0)
            if isinstance(v, nn.Module):
                out.append(v)
            elif isinstance(v, (tuple, list)):
                todo.extend(v)
            elif isinstance(v, dict):
                todo.extend(v.values())
        return out


def _check_backbone(backbone: str, key: str) -> None:
    if backbone not in BACKBONES:
        raise ValueError(f"{key}.backbone must be one of {BACKBONES}, got {backbone!r}")


# ----------------------------------------------------------------------------------------------------- CLIP
TINY_CLIP_NAME = "videoshop-tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 1},
}


def _register_tiny_clip() -> None:
    import open_clip

    if TINY_CLIP_NAME in open_clip.list_models():
        return
    d = tempfile.mkdtemp(prefix="tiny_clip_cfg_")
    with open(os.path.join(d, f"{TINY_CLIP_NAME}.json"), "w") as f:
        json.dump(TINY_CLIP_CONFIG, f)
    open_clip.add_model_config(d)


def load_clip(model: str = "ViT-B-32", pretrained: str = "openai", checkpoint: Optional[str] = None,
              backbone: str = "real", device: str | torch.device = "cpu", seed: int = 0,
              config_key: str = "metrics.clip"):
    """(open_clip model in eval mode on ``device``, its validation preprocess: PIL image -> (3, S, S) tensor)."""
    import open_clip

    _check_backbone(backbone, config_key)
    dev = resolve_device(device)

    def build():
        if backbone == "tiny":
            _register_tiny_clip()
            m, _, pre = _seeded(seed, lambda: open_clip.create_model_and_transforms(TINY_CLIP_NAME, pretrained=None))
        elif backbone == "random":
            m, _, pre = _seeded(seed, lambda: open_clip.create_model_and_transforms(model, pretrained=None))
        else:
            if checkpoint and not os.path.exists(checkpoint):
                raise MissingWeightsError(f"{config_key}.checkpoint: {checkpoint} does not exist; set "
                                          f"{config_key}.checkpoint=PATH to an open_clip checkpoint for {model}")
            try:
                m, _, pre = open_clip.create_model_and_transforms(model, pretrained=checkpoint or pretrained)
            except MissingWeightsError:
                raise
            except Exception as e:  # offline hub, unknown tag, ...
                raise MissingWeightsError(
                    f"{config_key}.pretrained: weights for {model}/{pretrained} not found offline; set "
                    f"{config_key}.checkpoint=PATH ({type(e).__name__})") from None
        return m.eval().to(dev), pre

    return shared(("clip", model, pretrained, checkpoint, backbone, str(dev), seed), build)


# ----------------------------------------------------------------------------------------------------- RAFT
def tiny_raft():
    """A small RAFT of torchvision's architecture (same classes as raft_small/raft_large, narrow layers)."""
    from torchvision.models.optical_flow.raft import BottleneckBlock, _raft

    return _raft(weights=None, progress=False,
                 feature_encoder_layers=(8, 8, 16, 16, 32), feature_encoder_block=BottleneckBlock,
                 feature_encoder_norm_layer=nn.InstanceNorm2d,
                 context_encoder_layers=(8, 8, 16, 16, 40), context_encoder_block=BottleneckBlock,
                 context_encoder_norm_layer=None, corr_block_num_levels=2, corr_block_radius=2,
                 motion_encoder_corr_layers=(16,), motion_encoder_flow_layers=(16, 8), motion_encoder_out_channels=22,
                 recurrent_block_hidden_state_size=16, recurrent_block_kernel_size=(3,),
                 recurrent_block_padding=(1,), flow_head_hidden_size=16, use_mask_predictor=False)


def load_raft(model: str = "raft_large", checkpoint: Optional[str] = None, backbone: str = "real",
              device: str | torch.device = "cpu", seed: int = 0, config_key: str = "metrics.flow"):
    """A torchvision RAFT in eval mode. real: ``Raft_Large_Weights.DEFAULT`` (C_T_SKHT_V2) or a local state dict."""
    from torchvision.models import optical_flow as of

    _check_backbone(backbone, config_key)
    dev = resolve_device(device)
    if model not in ("raft_large", "raft_small"):
        raise ValueError(f"{config_key}.model must be raft_large or raft_small, got {model!r}")

    def build():
        ctor = getattr(of, model)
        if backbone == "tiny":
            m = _seeded(seed, tiny_raft)
        elif backbone == "random":
            m = _seeded(seed, lambda: ctor(weights=None))
        elif checkpoint:
            if not os.path.exists(checkpoint):
                raise MissingWeightsError(f"{config_key}.checkpoint: {checkpoint} does not exist; set "
                                          f"{config_key}.checkpoint=PATH to a torchvision {model} state dict (.pth)")
            m = ctor(weights=None)
            sd = torch.load(checkpoint, map_location="cpu", weights_only=True)
            m.load_state_dict(sd.get("state_dict", sd) if isinstance(sd, dict) else sd)
        else:
            weights = (of.Raft_Large_Weights if model == "raft_large" else of.Raft_Small_Weights).DEFAULT
            try:
                m = ctor(weights=weights, progress=False)
            except Exception as e:
                raise MissingWeightsError(
                    f"{config_key}.pretrained: torchvision {model} weights {weights} not found offline; set "
                    f"{config_key}.checkpoint=PATH (a .pth state dict) ({type(e).__name__})") from None
        return m.eval().to(dev)

    return shared(("raft", model, checkpoint, backbone, str(dev), seed), build)


# ------------------------------------------------------------------------------------------------------ I3D
STYLEGAN_V_I3D_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1"


class TinyI3D(nn.Module):
    """A tiny 3D-conv stand-in with the calling convention of StyleGAN-V's i3d_torchscript.pt.

    forward(x (B, 3, T, H, W) in [0, 255], rescale, resize, return_features) -> (B, 400): rescale maps to [-1, 1]
    and resize resamples frames (to 112x112 here; 224x224 in the real detector), as the real detector does.
    """

    def __init__(self, dim: int = 400) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(3, 8, kernel_size=3, stride=(1, 2, 2), padding=1)
        self.conv2 = nn.Conv3d(8, 16, kernel_size=3, stride=2, padding=1)
        self.fc = nn.Linear(16, dim)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        x = x.float()
        if rescale:
            x = x * (2.0 / 255.0) - 1.0
        if resize:
            x = F.interpolate(x, size=[x.shape[2], 112, 112], mode="trilinear", align_corners=False)
        h = F.relu(self.conv2(F.relu(self.conv1(x))))
        f = self.fc(h.mean(dim=(2, 3, 4)))
        return f if return_features else F.softmax(f, dim=1)


def load_tiny_i3d(path: str, seed: int, device: torch.device) -> TinyI3D:
    """The seeded TinyI3D built in Python, its weights cached at ``path`` as safetensors (no pickle, no TorchScript:
    a file planted in the cache can change numbers but cannot run code; a malformed one is rebuilt)."""
    from safetensors.torch import load_file, save_file

    def fresh() -> dict:
        state = _seeded(seed, TinyI3D).state_dict()
        with atomic_path(path) as tmp:
            save_file(state, str(tmp))
        return state

    try:
        state = load_file(path) if os.path.exists(path) else fresh()
        m = TinyI3D()
        m.load_state_dict(state)
    except Exception:  # noqa: BLE001  (a damaged or foreign file: the seeded weights again)
        m = TinyI3D()
        m.load_state_dict(fresh())
    return m.eval().to(device)


def write_tiny_i3d(path: str, seed: int = 0) -> str:
    """Script a seeded TinyI3D and save it as TorchScript at ``path``: a stand-in for the real I3D file in tests of
    the ``detector=PATH`` route (a user's own file, checked against ``detector_sha256``); the metric cache never
    holds one."""
    m = _seeded(seed, TinyI3D).eval()
    with atomic_path(path) as tmp:
        torch.jit.save(torch.jit.script(m), str(tmp))
    return path


def _fetch_url(url: str, dest: str, sha256: str, timeout: float = 20.0) -> None:
    """Download ``url`` to ``dest`` only if its bytes hash to ``sha256`` (else nothing is kept)."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (configured URL, pinned by sha256)
        data = r.read()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256.lower():
        raise MissingWeightsError(f"metrics.fvd.detector_sha256: {url} has SHA-256 {got[:16]}..., not the "
                                  f"configured {sha256[:16]}...; not kept")
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def verify_sha256(path: str, sha256: Optional[str], key: str) -> None:
    """Refuse a file whose SHA-256 differs from the configured ``sha256`` (None: nothing to check)."""
    if sha256 and file_sha256(path) != sha256.lower():
        raise MissingWeightsError(f"{key}: {path} has SHA-256 {file_sha256(path)[:16]}..., not the configured "
                                  f"{sha256[:16]}...; remove it or fix {key}")


def load_i3d(detector: str = STYLEGAN_V_I3D_URL, backbone: str = "real", device: str | torch.device = "cpu",
             seed: int = 0, cache_dir: Optional[str] = None, config_key: str = "metrics.fvd",
             sha256: Optional[str] = None):
    """The I3D TorchScript detector (torch.jit.load) from a local path or URL; tiny: a scripted TinyI3D file.

    Every downloaded file is pinned: a URL ``detector`` is fetched (and a copy fetched earlier is used) only when
    ``sha256`` (``metrics.fvd.detector_sha256``) is set, and only if the file matches it. This project cannot know
    the checksum offline, so it ships none: take it from a copy you trust (``sha256sum i3d_torchscript.pt``). A local
    ``detector`` path is checked when ``sha256`` is given."""
    _check_backbone(backbone, config_key)
    dev = resolve_device(device)
    if backbone == "random":
        raise ValueError(f"{config_key}.backbone=random: no real-size I3D architecture is available without the "
                         f"TorchScript file; use real (with {config_key}.detector=PATH) or tiny")

    def build():
        if backbone == "tiny":  # weights only (safetensors): nothing read from the cache can run code
            root = cache_dir or os.path.join(tempfile.gettempdir(), "videoshop_metrics")
            return load_tiny_i3d(os.path.join(str(root), "backbones", f"tiny_i3d_seed{seed}.safetensors"), seed, dev)
        if os.path.exists(detector):
            path = detector
            verify_sha256(path, sha256, f"{config_key}.detector_sha256")
        elif detector.startswith(("http://", "https://")):
            if not sha256:
                raise MissingWeightsError(
                    f"{config_key}.detector_sha256: not set; a file is downloaded only when pinned by its SHA-256 "
                    f"(set {config_key}.detector_sha256=HEX, or {config_key}.detector=PATH to a local copy)")
            path = os.path.join(torch.hub.get_dir(), "checkpoints", f"i3d_torchscript-{sha256[:12]}.pt")
            if not os.path.exists(path):
                try:
                    _fetch_url(detector, path, sha256)
                except MissingWeightsError:
                    raise
                except Exception as e:
                    raise MissingWeightsError(
                        f"{config_key}.detector: I3D TorchScript i3d_torchscript.pt not found offline at {detector}; "
                        f"set {config_key}.detector=PATH ({type(e).__name__})") from None
            verify_sha256(path, sha256, f"{config_key}.detector_sha256")
        else:
            raise MissingWeightsError(f"{config_key}.detector: {detector} does not exist; set "
                                      f"{config_key}.detector=PATH to StyleGAN-V's i3d_torchscript.pt")
        return torch.jit.load(path, map_location=dev).eval()

    return shared(("i3d", detector, backbone, str(dev), seed), build)
