"""What FateZero's inflated UNet (``UNetPseudo3DConditionModel.from_2d_model``) changes in an untuned SD UNet, besides
its temporal layers (which start as identities) and its spatial-temporal attention (``fatezero_attention.py``).

Its ResNet blocks and the output norm receive the whole clip as one 5-D tensor (b, c, f, h, w), so their GroupNorms
(``resnets.*.norm1``, ``resnets.*.norm2``, ``conv_norm_out``) take their statistics over all frames of the clip
(``torch.nn.GroupNorm`` on a 5-D input normalises over (c / groups, f, h, w)), while a 2-D UNet over a batch of frames
normalises each frame alone. The transformer blocks' GroupNorm sees (b f) c h w in both, i.e. per frame.
(FateZero video_diffusion/models/resnet.py ``ResnetBlockPseudo3D.forward``, unet_3d_condition.py ``conv_norm_out``;
measured in docs/baselines.md, "Proven against the official code".)

``clip_group_norms(unet, num_frames)`` makes a diffusers ``UNet2DConditionModel`` whose batch is [clip ; clip ...]
(e.g. [uncond frames ; cond frames]) do the same, for a block of code.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class ClipGroupNorm(nn.Module):
    """A GroupNorm over (c / groups, frames, h, w) of each clip of ``num_frames`` consecutive batch entries; the
    wrapped module's parameters are used as they are."""

    def __init__(self, norm: nn.GroupNorm, num_frames: int):
        super().__init__()
        self.norm, self.num_frames = norm, int(num_frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        f = self.num_frames
        if n % f:
            raise ValueError(f"batch of {n} is not a whole number of {f}-frame clips")
        clip = x.reshape(n // f, f, c, *x.shape[2:]).transpose(1, 2)  # (b, c, f, h, w)
        g = self.norm
        out = F.group_norm(clip, g.num_groups, g.weight, g.bias, g.eps)
        return out.transpose(1, 2).reshape_as(x)


def clip_norm_names(unet) -> list[str]:
    """The GroupNorms that see a whole clip in FateZero's inflated UNet: every ResNet block's norm1/norm2 and
    conv_norm_out."""
    names = []
    for name, mod in unet.named_modules():
        if isinstance(mod, nn.GroupNorm) and (".resnets." in name and name.endswith((".norm1", ".norm2"))
                                              or name == "conv_norm_out"):
            names.append(name)
    return names


@contextlib.contextmanager
def clip_group_norms(unet, num_frames: int) -> Iterator[None]:
    """Within the block, ``clip_norm_names(unet)`` normalise over clips of ``num_frames`` frames; restored after."""
    swapped = []
    for name in clip_norm_names(unet):
        parent_name, _, child = name.rpartition(".")
        parent = unet.get_submodule(parent_name) if parent_name else unet
        original = getattr(parent, child)
        setattr(parent, child, ClipGroupNorm(original, num_frames))
        swapped.append((parent, child, original))
    try:
        yield
    finally:
        for parent, child, original in swapped:
            setattr(parent, child, original)
