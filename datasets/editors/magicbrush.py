"""MagicBrush (Zhang et al., NeurIPS 2023 Datasets and Benchmarks): InstructPix2Pix fine-tuned on MagicBrush's 10K
manually annotated edits; the same pipeline and call as ``instruct_pix2pix``, other weights
(``vinesmsuic/magicbrush-jul7``: the diffusers conversion of the authors' ``MagicBrush-epoch-52-step-4999.ckpt``)."""

from __future__ import annotations

from .instruct_pix2pix import InstructPix2PixEditor


class MagicBrushEditor(InstructPix2PixEditor):
    """InstructPix2Pix's class with MagicBrush's weights (the registry entry's hub id)."""
