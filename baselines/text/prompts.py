"""Source and target prompts for text-driven editors, and how each was obtained.

The Videoshop paper (Sec. 4, Experimental setup): "we caption the first frame of the source video and update the
modified concept to the target one (e.g. 'a dog running' -> 'a cat running')". Resolution order, first hit wins:

1. an override file, ``dataset.prompts=PATH`` (CSV with columns id,source_prompt,target_prompt, or JSON
   ``{id: {"source_prompt": ..., "target_prompt": ...}}``), applied by the runner when a sample is loaded
   (``apply_prompt_overrides``): hand-written prompts, as the paper's authors may have used;
2. prompts the dataset provides (``Sample.source_prompt`` / ``target_prompt``);
3. the source prompt: a BLIP caption of the first source frame (the captioner the TIFA metric loads); the target
   prompt: the caption rewritten by a small instruction-following text model given the edit instruction
   (``rewriter``, a hub id), or, where ``target_fallback=rule`` and the model gives nothing (or ``rewriter`` is
   null), the rule ``"<source prompt>, <instruction>"``. The record names the rule when it is used.

The result (``Prompts``) goes into ``EditResult.info["prompts"]``; derived prompts are cached as JSON keyed by the
first frame, the instruction and the models (``cache_dir``). A sample with no target prompt and no instruction
raises a one-line ``SampleError`` naming the missing field (the runner records it and goes on).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from videoshop_bench.datasets.schema import MAX_TEXT_CHARS, Sample, SampleError, text_problem
from videoshop.options import check_choices
from videoshop_bench.eval.cache import fingerprint, load_json_cache, save_json_cache

REWRITE_TEMPLATE = ("Rewrite the image caption so that it describes the image after the edit.\n"
                    "Caption: {caption}\nEdit: {instruction}\nNew caption:")
RULE = "rule:source+instruction"


@dataclass
class Prompts:
    source_prompt: str
    target_prompt: str
    source_how: str  # override:<file> | dataset | caption:<model> | unused
    target_how: str  # override:<file> | dataset | rewrite:<model> | rule:source+instruction

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


# ------------------------------------------------------------------------------------------- override file
def read_prompt_overrides(path: str) -> dict[str, dict[str, Optional[str]]]:
    """``{sample_id: {"source_prompt": ..., "target_prompt": ...}}`` from a CSV or JSON file (one-line errors)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"dataset.prompts={path}: no such file")
    table: dict[str, dict[str, Optional[str]]] = {}
    if p.suffix.lower() == ".json":
        try:
            raw = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"dataset.prompts={path}: invalid JSON ({e.msg}, line {e.lineno})") from None
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise ValueError(f"dataset.prompts={path}: expected {{id: {{source_prompt, target_prompt}}}}")
        for sid, v in raw.items():
            table[str(sid)] = {k: (v.get(k) or None) for k in ("source_prompt", "target_prompt")}
        return table
    with open(p, newline="") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        if "id" not in cols or not cols & {"source_prompt", "target_prompt"}:
            raise ValueError(f"dataset.prompts={path}: CSV needs columns id,source_prompt,target_prompt; has {sorted(cols)}")
        for row in reader:
            table[str(row["id"])] = {k: (row.get(k) or "").strip() or None for k in ("source_prompt", "target_prompt")}
    return table


def apply_prompt_overrides(sample: Sample, table: dict[str, dict[str, Optional[str]]], path: str) -> Sample:
    """The sample with the file's prompts (where the file gives them) and ``meta["prompts_from"]`` saying so."""
    row = table.get(sample.sample_id)
    if not row:
        return sample
    how = dict(sample.meta.get("prompts_from", {}))
    new = {}
    for k in ("source_prompt", "target_prompt"):
        if row.get(k):
            new[k] = row[k]
            how[k] = f"override:{os.path.basename(str(path))}"
    return replace(sample, meta={**sample.meta, "prompts_from": how}, **new)


# ------------------------------------------------------------------------------------------- derivation
def rule_target_prompt(source_prompt: str, instruction: str) -> str:
    """The fallback rule: the source prompt followed by the instruction (used only with target_fallback=rule)."""
    return f"{source_prompt.strip().rstrip('.')}, {instruction.strip().rstrip('.')}"


class PromptResolver:
    """Resolves ``Prompts`` for a sample (module docstring). Models load on first use only (a dataset that gives
    prompts never loads them); missing weights then fail that sample with one line naming ``<key>.captioner`` or
    ``<key>.rewriter``.

    backbone: ``real`` (hub ids / local paths) or ``tiny`` (seeded random BLIP and T5 of the real classes).
    """

    def __init__(self, backbone: str = "real", captioner: str = "Salesforce/blip-image-captioning-large",
                 rewriter: Optional[str] = "google/flan-t5-large", rewriter_kind: str = "seq2seq",
                 rewrite_template: str = REWRITE_TEMPLATE, target_fallback: str = "none", max_new_tokens: int = 40,
                 cache_dir: Optional[str] = None, device: str | torch.device = "cpu", seed: int = 0,
                 key: str = "method.prompts") -> None:
        check_choices(key, backbone=(backbone, ("real", "tiny")), target_fallback=(target_fallback, ("none", "rule")),
                      rewriter_kind=(rewriter_kind, ("seq2seq", "causal")))
        self.backbone, self.captioner_id, self.rewriter_id = backbone, captioner, rewriter
        self.rewriter_kind, self.template, self.fallback = rewriter_kind, rewrite_template, target_fallback
        self.max_new_tokens, self.cache_dir, self.seed, self.key = int(max_new_tokens), cache_dir, seed, key
        self.device = torch.device(device)
        self._models: dict[str, Any] = {}

    # -------------------------------------------------------------------------------------- models
    def _model(self, role: str):
        if role in self._models:
            return self._models[role]
        from videoshop_bench.eval.tifa_models import load_text_model, tiny_blip, tiny_processor, tiny_t5, tiny_tokenizer
        from videoshop.method import seeded

        if self.backbone == "tiny":
            tok = tiny_tokenizer()
            if role == "caption":
                m = seeded(self.seed, lambda: (tiny_blip("BlipForConditionalGeneration", len(tok)),
                                               tiny_processor(tok)))
            else:
                m = seeded(self.seed + 1, lambda: (tiny_t5(len(tok)), tok))
            m[0].eval().to(self.device)
        elif role == "caption":
            m = load_text_model("caption", self.captioner_id, f"{self.key}.captioner", torch.float32, self.device)
        else:
            m = load_text_model(self.rewriter_kind, self.rewriter_id, f"{self.key}.rewriter", torch.float32,
                                self.device)
        self._models[role] = m
        return m

    @torch.no_grad()
    def caption(self, image: np.ndarray) -> str:
        from PIL import Image

        model, proc = self._model("caption")
        x = proc(images=Image.fromarray(image), return_tensors="pt").to(self.device)
        out = model.generate(pixel_values=x["pixel_values"], max_new_tokens=30, do_sample=False)
        return proc.decode(out[0], skip_special_tokens=True).strip()

    @torch.no_grad()
    def rewrite(self, caption: str, instruction: str) -> str:
        model, tok = self._model("rewrite")
        from videoshop_bench.eval.tifa_models import generate_text

        text = self.template.format(caption=caption, instruction=instruction)
        too_long = text_problem("rewrite prompt (caption + instruction)", text, 2 * MAX_TEXT_CHARS + len(self.template))
        if too_long:  # refused before the rewriter sees it (Sample.validate bounds each field too)
            raise SampleError(too_long)
        out = generate_text(model, tok, text, self.device, self.rewriter_kind == "causal", self.max_new_tokens)
        return out.strip().splitlines()[0].strip() if out.strip() else ""  # the first line

    # -------------------------------------------------------------------------------------- resolution
    def resolve(self, sample: Sample) -> Prompts:
        how = sample.meta.get("prompts_from", {})
        src, tgt = (sample.source_prompt or "").strip(), (sample.target_prompt or "").strip()
        if sample.edit_type == "reconstruction":  # task=reconstruct: edit towards the source itself
            if not src:
                src = self.caption(sample.source_video[0])
                how = {**how, "source_prompt": f"caption:{self._name(self.captioner_id)}"}
            return Prompts(src, src, how.get("source_prompt", "dataset"), "reconstruction:source_prompt")
        if src and tgt:
            return Prompts(src, tgt, how.get("source_prompt", "dataset"), how.get("target_prompt", "dataset"))
        instruction = (sample.instruction or "").strip()
        if not tgt and not instruction:
            raise SampleError(f"{sample.sample_id}: no target_prompt and no instruction to derive it from (field "
                              f"'instruction'); give prompts in the dataset or with dataset.prompts=FILE")
        key = fingerprint(sample.source_video[0], instruction, src, tgt, dict(how), self.backbone, self.captioner_id,
                          self.rewriter_id, self.rewriter_kind, self.template, self.fallback, self.max_new_tokens)
        cached = load_json_cache(self.cache_dir, "prompts", key)
        if cached is not None:
            return Prompts(**cached)
        src_how = how.get("source_prompt", "dataset")
        if not src:
            src, src_how = self.caption(sample.source_video[0]), f"caption:{self._name(self.captioner_id)}"
        tgt_how = how.get("target_prompt", "dataset")
        if not tgt:
            tgt, tgt_how = (self.rewrite(src, instruction), f"rewrite:{self._name(self.rewriter_id)}") \
                if self.rewriter_id else ("", "")
            if not tgt:
                if self.fallback != "rule":
                    raise SampleError(f"{sample.sample_id}: the rewriter gave an empty target prompt (field "
                                      f"'target_prompt'); set {self.key}.target_fallback=rule or give prompts")
                tgt, tgt_how = rule_target_prompt(src, instruction), RULE
        out = Prompts(src, tgt, src_how, tgt_how)
        save_json_cache(self.cache_dir, "prompts", key, out.to_dict())
        return out

    def _name(self, ident: Optional[str]) -> str:
        return f"tiny-random({ident})" if self.backbone == "tiny" else str(ident)
