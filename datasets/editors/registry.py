"""The editor registry: ``first_frame.editor=<name>`` picks an entry; an editor is one module plus one entry here.

    EDITORS.get("instruct_pix2pix")   # EditorEntry; an unknown name is one line naming the choices
    build_editor("instruct_pix2pix", weights="tiny", device="cpu")

An entry names the class (dotted path, imported on use), the weights it loads by default (hub id and revision: a
commit hash, tag or branch; null = the repository's default branch, whose resolved commit is recorded with every
edit), which text of the sample it follows, and its default call options (``first_frame.options`` overrides them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from videoshop.registry import Registry, load_object


@dataclass(frozen=True)
class EditorEntry:
    name: str
    target: str  # dotted path of the class
    display: str
    hub_id: Optional[str] = None
    revision: Optional[str] = None
    prompt: str = "instruction"  # instruction | target_prompt: the text the editor follows by default
    options: dict = field(default_factory=dict)  # the pipeline call's keyword arguments
    needs_weights: bool = True  # False: none / folder


EDITORS: Registry[EditorEntry] = Registry("first-frame editor")
for _e in (
    EditorEntry("none", "videoshop_bench.datasets.editors.dataset_frame.DatasetFirstFrame", "the dataset's own edited first frame",
                needs_weights=False),
    EditorEntry("folder", "videoshop_bench.datasets.editors.folder.FolderEditor", "your own images: <folder>/<sample_id>.png",
                needs_weights=False),
    EditorEntry("instruct_pix2pix", "videoshop_bench.datasets.editors.instruct_pix2pix.InstructPix2PixEditor",
                "InstructPix2Pix (Brooks et al., CVPR 2023)", hub_id="timbrooks/instruct-pix2pix",
                options=dict(num_inference_steps=20, guidance_scale=7.5, image_guidance_scale=1.5)),
    EditorEntry("magicbrush", "videoshop_bench.datasets.editors.magicbrush.MagicBrushEditor",
                "MagicBrush's fine-tuned InstructPix2Pix (Zhang et al., NeurIPS 2023 D&B)",
                hub_id="vinesmsuic/magicbrush-jul7",
                options=dict(num_inference_steps=20, guidance_scale=7.5, image_guidance_scale=1.5)),
    EditorEntry("flux_kontext", "videoshop_bench.datasets.editors.flux_kontext.FluxKontextEditor", "FLUX.1 Kontext [dev] (BFL, 2025)",
                hub_id="black-forest-labs/FLUX.1-Kontext-dev", options=dict(num_inference_steps=28, guidance_scale=2.5)),
    EditorEntry("qwen_image_edit", "videoshop_bench.datasets.editors.qwen_image_edit.QwenImageEditor", "Qwen-Image-Edit (Qwen, 2025)",
                hub_id="Qwen/Qwen-Image-Edit", options=dict(num_inference_steps=50, true_cfg_scale=4.0)),
):
    EDITORS.register(_e)


def build_editor(name: str, **config: Any):
    """The editor ``name`` built from its entry's defaults and ``config`` (hub_id, path, revision, weights, device,
    options, ...; a None value keeps the entry's default). Missing weights raise one line naming the key."""
    entry = EDITORS.get(name)
    cls = load_object(entry.target)
    given = {k: v for k, v in config.items() if v is not None}
    if entry.needs_weights:
        given = {"hub_id": entry.hub_id, "revision": entry.revision, **given,
                 "options": {**entry.options, **(given.get("options") or {})}}
    return cls(name=name, **given)
