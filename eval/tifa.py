"""TIFA: VQA faithfulness of the edited frames to the target (Hu et al. 2023, Yushi-Hu/tifa), with transformers.

Pipeline per sample (shared/paper/metric_protocols.md), every model a configurable hub id or local directory:
  1. caption the target image (edited first frame) with ``captioner`` (default BLIP-large captioning), or use
     ``sample.target_prompt`` when ``caption_source=target_prompt_or_captioner`` and the dataset has one;
  2. description = ``description_template`` filled with the caption and the edit instruction; a question generator
     (default TIFA's released LLaMA-2 QG, ``tifa-benchmark/llama2_tifa_question_generation``, TIFA's prompt) writes
     multiple-choice QA pairs in TIFA's "About X (type): / Q: / Choices: / A:" format, parsed as TIFA does;
  3. optional filter (TIFA's question_filter): repeated questions dropped; keep a QA pair when UnifiedQA
     (``qa_filter``, default allenai/unifiedqa-v2-t5-large-1363200) reading the description gives exactly the
     generated answer and, for a non yes/no answer, a free-form answer with token F1 > 0.6 against it;
  4. a VQA model (``vqa``, default Salesforce/blip-vqa-base: BLIP is one of TIFA's supported VQA models; TIFA
     recommends mPLUG-large, which transformers does not ship) answers every question on every ``frame_stride``-th
     edited frame; free-form answers are mapped to the nearest choice (itself if it is a choice, else SBERT
     ``sentence-transformers/all-mpnet-base-v2`` cosine as TIFA, or difflib with ``answer_matcher=string``);
  5. score = share answered correctly per frame, averaged over frames (x100).
Steps 1-3 run once per sample and are cached as JSON (``cache_dir/tifa_qa/<key>.json``; the key hashes the target
image, instruction and the generation protocol). ``backbone=tiny`` builds seeded random tiny configs of the same
transformers classes (BLIP, LLaMA, T5) with an offline word-piece vocabulary: outputs are gibberish, the
pipeline runs end to end, and ``protocol()`` says so. A sample with no usable question scores None (skipped)
unless ``qg_fallback=template`` (one yes/no question "does this image show: <description>?"), counted in notes().

The text side (prompts, parser, filter test, answer mapping, score) is ``eval/tifa_qa.py``; loading, generation
and the tiny stand-ins ``eval/tifa_models.py``. Their public names are importable from here too.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from videoshop_bench.datasets.schema import MAX_TEXT_CHARS, text_problem
from videoshop.options import check_choices

from .backbones import SharedBackbone, shared
from .base import EditMetric, check_same_shape
from .cache import fingerprint, load_json_cache, save_json_cache
from .tifa_models import (generate_text, load_text_model, tiny_blip, tiny_llama, tiny_processor, tiny_t5,
                          tiny_tifa_models, tiny_tokenizer)
from .tifa_qa import (MAX_INPUT_TOKENS, TIFA_CATEGORIES, TIFA_INTRO, first_block, free_form_agrees,
                      nearest_choice_string, normalize_free_answer, parse_tifa_questions, template_question,
                      tifa_qg_prompt, tifa_score, token_f1, unifiedqa_free_prompt, unifiedqa_mc_prompt,
                      unique_questions)

__all__ = [  # TIFA's public names, wherever they are defined
    "TIFA", "generate_text", "load_text_model", "tiny_blip", "tiny_llama", "tiny_processor", "tiny_t5",
    "tiny_tifa_models", "tiny_tokenizer", "MAX_INPUT_TOKENS", "TIFA_CATEGORIES", "TIFA_INTRO", "first_block",
    "free_form_agrees", "nearest_choice_string", "normalize_free_answer", "parse_tifa_questions",
    "template_question", "tifa_qg_prompt", "tifa_score", "token_f1", "unifiedqa_free_prompt", "unifiedqa_mc_prompt",
    "unique_questions",
]


class TIFA(EditMetric):
    """TIFA (x100): share of target-derived questions the VQA model answers correctly on the edited frames."""

    names = ("tifa",)
    higher_is_better = True
    config_key = "metrics.tifa"

    def __init__(self, backbone: str = "real", captioner: str = "Salesforce/blip-image-captioning-large",
                 question_generator: str = "tifa-benchmark/llama2_tifa_question_generation",
                 qg_kind: str = "causal", qa_filter: Optional[str] = "allenai/unifiedqa-v2-t5-large-1363200",
                 vqa: str = "Salesforce/blip-vqa-base", answer_matcher: str = "sbert",
                 sbert: str = "sentence-transformers/all-mpnet-base-v2",
                 caption_source: str = "captioner", description_template: str = "{caption}. {instruction}",
                 frame_stride: int = 1, max_new_tokens: int = 512, qg_num_beams: int = 5, qg_fallback: str = "none",
                 dtype: str = "auto", device: str = "auto", seed: int = 0, cache_dir: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_choices(self.config_key, backbone=(backbone, ("real", "tiny")), qg_kind=(qg_kind, ("causal", "seq2seq")),
                      answer_matcher=(answer_matcher, ("sbert", "string")),
                      caption_source=(caption_source, ("captioner", "target_prompt_or_captioner")),
                      qg_fallback=(qg_fallback, ("none", "template")))
        self.backbone, self.qg_kind, self.answer_matcher = backbone, qg_kind, answer_matcher
        self.ids = dict(captioner=captioner, question_generator=question_generator, qa_filter=qa_filter, vqa=vqa,
                        sbert=sbert if answer_matcher == "sbert" else None)
        self.caption_source, self.description_template = caption_source, description_template
        self.frame_stride, self.max_new_tokens, self.qg_fallback = frame_stride, max_new_tokens, qg_fallback
        self.qg_num_beams = int(qg_num_beams)
        self.dtype_choice = dtype
        self.cache_dir, self.seed = cache_dir, seed
        self.no_question_samples: set[str] = set()
        self.template_samples: set[str] = set()
        # captioner / QG / filter / VQA / SBERT as one shared set per device (``.to()`` switches sets, see base.py)
        self.tifa_models = SharedBackbone(self._models_for, device)

    # -------------------------------------------------------------------------------------------- models
    @property
    def dev(self) -> torch.device:
        """The device the models compute on: the constructor's ``device=``, then wherever ``.to()`` moved it."""
        return self.tifa_models.device

    @property
    def model_dtype(self) -> torch.dtype:
        return self._dtype_for(self.dev)

    @property
    def models(self) -> dict[str, Any]:
        return self.tifa_models.value

    def _dtype_for(self, dev: torch.device) -> torch.dtype:
        """``dtype=auto``: float16 on CUDA, float32 elsewhere (re-resolved when the metric moves device)."""
        if self.dtype_choice == "auto":
            return torch.float16 if dev.type == "cuda" else torch.float32
        return getattr(torch, self.dtype_choice)

    def _models_for(self, dev: torch.device) -> dict[str, Any]:
        dtype = self._dtype_for(dev)
        return shared(("tifa", self.backbone, tuple(sorted((k, str(v)) for k, v in self.ids.items())), self.qg_kind,
                       str(dev), str(dtype), self.seed), lambda: self._build(dev, dtype))

    def _build(self, dev: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        """{role: (model, processor-or-tokenizer)} for caption, vqa, qg, filter (when set), sbert (when matching by
        SBERT): tiny seeded stand-ins, or the configured weights."""
        if self.backbone == "tiny":
            return tiny_tifa_models(self.seed, bool(self.ids["qa_filter"]), dev)
        key = self.config_key
        m = {"caption": load_text_model("caption", self.ids["captioner"], f"{key}.captioner", dtype, dev),
             "vqa": load_text_model("vqa", self.ids["vqa"], f"{key}.vqa", dtype, dev),
             "qg": load_text_model(self.qg_kind, self.ids["question_generator"], f"{key}.question_generator",
                                   dtype, dev)}
        if self.ids["qa_filter"]:
            m["filter"] = load_text_model("seq2seq", self.ids["qa_filter"], f"{key}.qa_filter", dtype, dev)
        if self.answer_matcher == "sbert":
            m["sbert"] = load_text_model("sbert", self.ids["sbert"], f"{key}.sbert", torch.float32, dev)
        return m

    def _generate_text(self, model, tok, prompt: str, causal: bool, max_new_tokens: int, num_beams: int = 1) -> str:
        return generate_text(model, tok, prompt, self.dev, causal, max_new_tokens, num_beams)

    @torch.no_grad()
    def caption(self, image: np.ndarray) -> str:
        model, proc = self.models["caption"]
        x = proc(images=Image.fromarray(image), return_tensors="pt").to(self.dev)
        x["pixel_values"] = x["pixel_values"].to(self.model_dtype)
        out = model.generate(pixel_values=x["pixel_values"], max_new_tokens=30, do_sample=False)
        return proc.decode(out[0], skip_special_tokens=True).strip()

    @torch.no_grad()
    def answer(self, frames: list[np.ndarray], question: str) -> list[str]:
        model, proc = self.models["vqa"]
        x = proc(images=[Image.fromarray(f) for f in frames], text=[question] * len(frames), return_tensors="pt",
                 padding=True).to(self.dev)
        x["pixel_values"] = x["pixel_values"].to(self.model_dtype)
        x.pop("token_type_ids", None)
        out = model.generate(**x, max_length=50, do_sample=False)  # as tifascore.vqa_models.BLIP
        return [proc.decode(o, skip_special_tokens=True).strip() for o in out]

    @torch.no_grad()
    def _sbert_embed(self, texts: list[str]) -> torch.Tensor:
        model, tok = self.models["sbert"]
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True).to(self.dev)
        h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)

    def match(self, answer: str, choices: list[str]) -> str:
        """The choice a free-form VQA answer stands for: itself when it is one (as TIFA), else the nearest by SBERT
        cosine (TIFA) or, with ``answer_matcher=string``, by normalised string match then difflib."""
        if answer in choices:
            return answer
        if self.answer_matcher == "string":
            return nearest_choice_string(answer, choices)
        e = self._sbert_embed([answer] + list(choices))
        return choices[int((e[1:] @ e[0]).argmax())]

    def _passes_filter(self, qa: dict[str, Any], description: str) -> bool:
        """TIFA's UnifiedQA filter (tifascore.question_filter): UnifiedQA, reading the description, must give the
        generated answer to the multiple-choice question exactly, and, unless the answer is yes/no, its free-form
        answer must agree with it (token F1 > 0.6)."""
        model, tok = self.models["filter"]
        mc = self._generate_text(model, tok, unifiedqa_mc_prompt(qa["question"], description, qa["choices"]),
                                 causal=False, max_new_tokens=30)
        if mc != qa["answer"]:
            return False
        if qa["answer"] in ("yes", "no"):
            return True
        free = self._generate_text(model, tok, unifiedqa_free_prompt(qa["question"], description), causal=False,
                                   max_new_tokens=30)
        return free_form_agrees(qa["answer"], normalize_free_answer(free))

    def filter_questions(self, generated: list[dict[str, Any]], description: str) -> list[dict[str, Any]]:
        """Drop repeated questions (the first one stays), then apply the UnifiedQA filter when one is configured."""
        unique = unique_questions(generated)
        if "filter" not in self.models:
            return unique
        return [qa for qa in unique if self._passes_filter(qa, description)]

    # ------------------------------------------------------------------------------------------ QA sets
    def qg_protocol(self) -> dict[str, Any]:
        return {"backbone": self.backbone, **self.ids, "qg_kind": self.qg_kind, "seed": self.seed,
                "caption_source": self.caption_source, "template": self.description_template,
                "max_new_tokens": self.max_new_tokens, "num_beams": self.qg_num_beams, "fallback": self.qg_fallback,
                "filter": "tifascore.question_filter"}

    def describe(self, sample) -> tuple[str, str]:
        """Step 1: (caption of the target image, description the questions are generated from)."""
        if self.caption_source == "target_prompt_or_captioner" and sample.target_prompt:
            caption = sample.target_prompt
        else:
            caption = self.caption(sample.edited_image)
        description = self.description_template.format(caption=caption, instruction=sample.instruction).strip()
        too_long = text_problem("TIFA description (caption + instruction)", description, 2 * MAX_TEXT_CHARS)
        if too_long:  # refused before the question generator sees it (Sample.validate bounds each field too)
            raise ValueError(f"{sample.sample_id}: {too_long}")
        return caption, description

    def generate_questions(self, description: str) -> tuple[str, list[dict[str, Any]]]:
        """Step 2: the question generator's text (as TIFA keeps it) and the QA pairs parsed from it."""
        model, tok = self.models["qg"]
        causal = self.qg_kind == "causal"
        raw = self._generate_text(model, tok, tifa_qg_prompt(description) if causal else description, causal,
                                  self.max_new_tokens, num_beams=self.qg_num_beams)
        if causal:
            raw = "Entities:" + first_block(raw)
        return raw, parse_tifa_questions(raw)

    def question_set(self, sample) -> dict[str, Any]:
        """Caption, description, raw QG text and the (filtered) QA pairs of this sample (steps 1-3); generated
        once, cached."""
        key = fingerprint(sample.edited_image, sample.instruction, sample.target_prompt, self.qg_protocol())
        cached = load_json_cache(self.cache_dir, "tifa_qa", key)
        if cached is not None:
            return cached
        caption, description = self.describe(sample)
        raw, generated = self.generate_questions(description)
        kept = self.filter_questions(generated, description)
        source = "generated"
        if not kept and self.qg_fallback == "template":
            kept, source = [template_question(description)], "template"
        qa_set = {"caption": caption, "description": description, "raw": raw, "num_generated": len(generated),
                  "questions": kept, "source": source}
        save_json_cache(self.cache_dir, "tifa_qa", key, qa_set)
        return qa_set

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        qa_set = self.question_set(sample)
        if qa_set["source"] == "template":
            self.template_samples.add(sample.sample_id)
        questions = qa_set["questions"]
        if not questions:
            self.no_question_samples.add(sample.sample_id)
            return {"tifa": None}
        frames = list(edited[:: self.frame_stride])
        correct = np.zeros((len(frames), len(questions)))
        for j, qa in enumerate(questions):
            for i, ans in enumerate(self.answer(frames, qa["question"])):
                correct[i, j] = self.match(ans, qa["choices"]) == qa["answer"]  # as tifascore.tifa_score
        return {"tifa": tifa_score(correct)}

    def skip_reason(self, name, sample):
        return "no usable question for this sample's edit"

    def reset(self) -> None:
        """Reset the sums and counts (torchmetrics) and this run's notes: which samples had no usable question or
        used the template question (a reset metric starts a new run; the question sets stay cached)."""
        super().reset()
        self.no_question_samples.clear()
        self.template_samples.clear()

    def sample_notes(self, sample) -> list[str]:
        return ["tifa: template question (qg_fallback=template)"] if sample.sample_id in self.template_samples else []

    def notes(self) -> dict[str, str]:
        """This process's counts (the run's tables count from every record: ``skipped`` and the samples' notes)."""
        parts = []
        if self.no_question_samples:
            parts.append(f"{len(self.no_question_samples)} sample(s) had no usable question and were skipped")
        if self.template_samples:
            parts.append(f"{len(self.template_samples)} sample(s) used the template question (qg_fallback=template)")
        return {"tifa": "; ".join(parts)} if parts else {}

    def protocol(self):
        if self.backbone == "tiny":
            models = "TINY RANDOM BLIP caption/VQA + tiny LLaMA QG" + (" + tiny T5 filter" if self.ids["qa_filter"] else "")
        else:
            models = (f"caption {self.ids['captioner']}, QG {self.ids['question_generator']} ({self.qg_kind}), "
                      f"filter {self.ids['qa_filter']}, VQA {self.ids['vqa']}")
        matcher = f"SBERT {self.ids['sbert']}" if self.answer_matcher == "sbert" else "difflib string"
        return {"tifa": f"{models}; caption source {self.caption_source}; description '{self.description_template}';"
                        f" answers mapped by exact match else {matcher}; every {self.frame_stride} frame(s); "
                        f"fallback {self.qg_fallback}; x100"}
