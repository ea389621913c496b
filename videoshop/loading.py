"""What to load and where: weights (a local path or the hub cache, under the offline rules), the device and the dtype.

Every model loader of the project (SVD, the flow/VP image-to-video models, AnimateLCM, the text baselines' SD-family
models, metric backbones) resolves through these functions, so that missing weights fail at start-up with one line.
"""

from __future__ import annotations

import os
import socket
from typing import Optional

import torch


class MissingWeightsError(RuntimeError):
    """Raised at start-up when real weights are neither on disk nor downloadable; the message is one line."""


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def downloads_possible(allow_download: bool = True) -> bool:
    """Whether a file missing from the hub cache may be fetched now: downloads allowed by the config, HF_HUB_OFFLINE
    unset, and the hub reachable (checked in seconds, so missing weights fail at start-up, not after retries)."""
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    return bool(allow_download) and not offline and _hub_reachable()


def _repo_relative(path: str) -> str:
    """A relative ``path`` that does not exist from the working directory is taken relative to the repository root
    (so ``model=toy``'s ``videoshop/assets/toy`` loads from anywhere)."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidate = os.path.join(root, path)
    return candidate if os.path.exists(candidate) else path


def resolve_pretrained(hub_id: Optional[str], path: Optional[str], allow_download: bool = True,
                       revision: Optional[str] = None) -> str:
    """Return a local directory or hub id that ``from_pretrained`` can load now, or raise MissingWeightsError.

    Checked in seconds: a local ``path`` must hold model_index.json; a hub id must be in the local cache, or the hub
    reachable with downloads allowed (and HF_HUB_OFFLINE unset). ``revision`` (``model.revision``: a commit hash,
    tag or branch; None = the repository's default branch) pins what is looked up and downloaded.
    """
    if path:
        path = _repo_relative(path)
        if not os.path.isfile(os.path.join(path, "model_index.json")):
            raise MissingWeightsError(f"model.path={path} holds no model_index.json: point model.path at an SVD checkpoint directory")
        return path
    if not hub_id:
        raise MissingWeightsError("no weights configured: set model.path=DIR (local checkpoint) or model.hub_id=ORG/NAME")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(hub_id, revision=revision, local_files_only=True,
                                 allow_patterns=["*.json", "*.txt"]) and hub_id
    except Exception:  # noqa: BLE001  (not cached)
        pass
    if not downloads_possible(allow_download):
        raise MissingWeightsError(
            f"weights for {hub_id}{f' @ {revision}' if revision else ''} are not cached and cannot be downloaded here: "
            f"set model.path=DIR to a local copy "
            f"(e.g. from `huggingface-cli download {hub_id}` on a connected machine)")
    return hub_id


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None) = CUDA when available, else the CPU; anything else as ``torch.device`` reads it."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_problem(device: str) -> Optional[str]:
    """None when ``device`` exists on this machine (CUDA built and visible, index in range), else one line naming
    ``device=`` (the run's config key; the config schema checks it before any work)."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return (f"device={device}: CUDA is not available here (torch {torch.__version__}, "
                    f"{'no CUDA build' if torch.version.cuda is None else 'no visible GPU'}); use device=cpu or auto")
        if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
            return f"device={device}: only {torch.cuda.device_count()} CUDA device(s) visible"
    if device == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return "device=mps: MPS is not available here; use device=cpu or auto"
    return None


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' = fp16 on CUDA (as the authors run SVD), fp32 elsewhere."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
