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
"""

from __future__ import annotations

import difflib
import os
import string
import tempfile
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from videoshop_bench.datasets.schema import MAX_TEXT_CHARS, text_problem

from .backbones import MissingWeightsError, SharedBackbone, _seeded, shared
from .base import EditMetric, check_same_shape
from .cache import fingerprint, load_json_cache, save_json_cache

TIFA_INTRO = ("Given an image description, generate one or two multiple-choice questions that verifies if the image "
              "description is correct.\nClassify each concept into a type (object, human, animal, food, activity, "
              "attribute, counting, color, material, spatial, location, shape, other), and then generate a question "
              "for each type.\n")


def tifa_qg_prompt(description: str) -> str:
    """The prompt of TIFA's LLaMA-2 question generator (tifascore question_gen_llama2)."""
    return f"<s>[INST] <<SYS>>\n{TIFA_INTRO}\n<</SYS>>\n\nDescription: {description} [/INST] Entities:"


# The text models read at most this many tokens (a guard behind MAX_TEXT_CHARS: a description is a caption plus a
# bounded instruction, a few hundred tokens; TIFA's LLaMA-2 prompt fits 4096).
MAX_INPUT_TOKENS = 2048


TIFA_CATEGORIES = ("object", "human", "animal", "food", "activity", "attribute", "counting", "color", "material",
                   "spatial", "location", "shape", "other")


def first_block(generated: str) -> str:
    """TIFA keeps the QG's output up to its first blank line (``output.split('\\n\\n')[0]``)."""
    return generated.split("\n\n")[0]


def parse_tifa_questions(text: str) -> list[dict[str, Any]]:
    """Parse TIFA's QG output ("About X (type):", "Q: ...", "Choices: a, b", "A: ...") into QA dicts.

    As tifascore.question_gen_llama2: a pair needs an entity, a question and choices; pairs whose type is not one of
    TIFA's categories are dropped; ``animal`` and ``human`` become ``animal/human``.
    """
    out, entity, qtype, question, choices = [], None, None, None, None
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("About ") and "(" in line:
            body = line[len("About "):].rstrip(":")
            entity, qtype = body.split(" (")[0], body.split(" (")[1].split(")")[0]
        elif line.startswith("Q: "):
            question = line[3:].strip()
        elif line.startswith("Choices: "):
            choices = [c.strip() for c in line[len("Choices: "):].split(", ") if c.strip()]
        elif line.startswith("A: "):
            answer = line[3:].strip()
            if entity and question and choices and answer and qtype in TIFA_CATEGORIES:
                out.append({"entity": entity, "type": "animal/human" if qtype in ("animal", "human") else qtype,
                            "question": question, "choices": choices, "answer": answer})
            question, choices = None, None
    return out


def unifiedqa_mc_prompt(question: str, context: str, choices: list[str]) -> str:
    """UnifiedQA multiple-choice input as tifascore.unifiedqa.mcqa: ``q \\n context \\n (A) c1 (B) c2 `` (<= 4 choices)."""
    heads = ("(A)", "(B)", "(C)", "(D)")
    return f"{question} \n {context} \n " + "".join(f"{h} {c} " for h, c in zip(heads, choices))


def unifiedqa_free_prompt(question: str, context: str) -> str:
    """UnifiedQA free-form input as tifascore.unifiedqa.qa."""
    return f"{question} \n {context}"


_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


def normalize_free_answer(answer: str) -> str:
    """tifascore.unifiedqa.qa's normalisation: keep letters, digits and spaces, strip, lower-case."""
    return "".join(c for c in answer if c.isalnum() or c.isspace()).strip().lower()


def token_f1(gold: list[str], pred: list[str]) -> float:
    """tifascore.question_filter.compute_prf's F1 over whitespace tokens (empty gold: 1 iff pred is empty)."""
    if not gold:
        return 1.0 if not pred else 0.0
    tp = sum(g in pred for g in gold)
    fp = sum(p not in gold for p in pred)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / len(gold)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def free_form_agrees(gold: str, free_form: str, threshold: float = 0.6) -> bool:
    """TIFA's second filter test for non yes/no answers: token F1 of UnifiedQA's free answer vs the QG's > 0.6.

    A numeric gold answer compares against the free answer with number words mapped to digits (TIFA uses the
    word2number package; here the words zero..twenty, which covers counting questions about a single image).
    """
    if gold.isnumeric():
        free_form = " ".join(_NUMBER_WORDS.get(w, w) for w in free_form.split())
    return token_f1(gold.split(), free_form.split()) > threshold


def _norm(s: str) -> str:
    return " ".join(s.lower().strip().strip(string.punctuation).split())


def nearest_choice_string(answer: str, choices: list[str]) -> str:
    a = _norm(answer)
    for c in choices:
        if _norm(c) == a:
            return c
    return max(choices, key=lambda c: difflib.SequenceMatcher(None, a, _norm(c)).ratio())


# ------------------------------------------------------------------------------------------ tiny stand-ins
_TINY_WORDS = ("yes no a an the is are of on in with and to this image show does what color red green blue yellow "
               "white black object shape circle square triangle about q choices entities description").split()


def tiny_tokenizer():
    """A BertTokenizer over a small offline vocabulary (special tokens, characters, a few words)."""
    from transformers import BertTokenizer

    d = os.path.join(tempfile.gettempdir(), "videoshop_tiny_tok")
    os.makedirs(d, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"] + list(string.ascii_lowercase + string.digits) + \
        list(string.punctuation) + ["##" + c for c in string.ascii_lowercase + string.digits] + list(_TINY_WORDS)
    seen, uniq = set(), []
    for v in vocab:
        if v not in seen:
            seen.add(v)
            uniq.append(v)
    path = os.path.join(d, "vocab.txt")
    with open(path, "w") as f:
        f.write("\n".join(uniq) + "\n")
    tok = BertTokenizer(path, do_lower_case=True, bos_token="[DEC]")
    return tok


def _tiny_blip(cls_name: str, vocab_size: int):
    import transformers
    from transformers import BlipConfig

    cfg = BlipConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, encoder_hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=512, pad_token_id=0,
                         bos_token_id=5, eos_token_id=3, sep_token_id=3),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=32)
    return getattr(transformers, cls_name)(cfg)


def _tiny_processor(tok):
    from transformers import BlipImageProcessor, BlipProcessor

    return BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)


def _tiny_llama(vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                        max_position_embeddings=2048, pad_token_id=0, bos_token_id=2,
                                        eos_token_id=3))


# ------------------------------------------------------------------------------------------------ loading
def _load(kind: str, ident: str, key: str, dtype: torch.dtype, device: torch.device):
    """(model, processor-or-tokenizer) from a hub id or local dir; one-line MissingWeightsError when absent."""
    import transformers

    cls = {"caption": "BlipForConditionalGeneration", "vqa": "BlipForQuestionAnswering",
           "causal": "AutoModelForCausalLM", "seq2seq": "AutoModelForSeq2SeqLM", "sbert": "AutoModel"}[kind]
    proc_cls = "AutoProcessor" if kind in ("caption", "vqa") else "AutoTokenizer"
    try:
        model = getattr(transformers, cls).from_pretrained(ident, torch_dtype=dtype)
        proc = getattr(transformers, proc_cls).from_pretrained(ident)
    except (OSError, ValueError) as e:
        raise MissingWeightsError(f"{key}: {ident} not found offline; set {key}=PATH (a local model directory) "
                                  f"({type(e).__name__})") from None
    return model.eval().to(device), proc


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
        if backbone not in ("real", "tiny"):
            raise ValueError(f"{self.config_key}.backbone must be real or tiny, got {backbone!r}")
        if qg_kind not in ("causal", "seq2seq"):
            raise ValueError(f"{self.config_key}.qg_kind must be causal or seq2seq, got {qg_kind!r}")
        if answer_matcher not in ("sbert", "string"):
            raise ValueError(f"{self.config_key}.answer_matcher must be sbert or string, got {answer_matcher!r}")
        if caption_source not in ("captioner", "target_prompt_or_captioner"):
            raise ValueError(f"{self.config_key}.caption_source must be captioner or target_prompt_or_captioner")
        if qg_fallback not in ("none", "template"):
            raise ValueError(f"{self.config_key}.qg_fallback must be none or template, got {qg_fallback!r}")
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
        key = self.config_key
        if self.backbone == "tiny":
            tok = tiny_tokenizer()
            v = len(tok)
            proc = _tiny_processor(tok)
            m = {"caption": (_seeded(self.seed, lambda: _tiny_blip("BlipForConditionalGeneration", v)), proc),
                 "vqa": (_seeded(self.seed + 1, lambda: _tiny_blip("BlipForQuestionAnswering", v)), proc),
                 "qg": (_seeded(self.seed + 2, lambda: _tiny_llama(v)), tok)}
            if self.ids["qa_filter"]:
                from transformers import T5Config, T5ForConditionalGeneration

                t5 = _seeded(self.seed + 3, lambda: T5ForConditionalGeneration(T5Config(
                    vocab_size=v, d_model=32, d_kv=16, d_ff=64, num_layers=1, num_heads=2, pad_token_id=0,
                    eos_token_id=3, decoder_start_token_id=0)))
                m["filter"] = (t5, tok)
            for name, (model, _) in m.items():
                model.eval().to(dev)
            return m
        m = {"caption": _load("caption", self.ids["captioner"], f"{key}.captioner", dtype, dev),
             "vqa": _load("vqa", self.ids["vqa"], f"{key}.vqa", dtype, dev),
             "qg": _load(self.qg_kind, self.ids["question_generator"], f"{key}.question_generator", dtype, dev)}
        if self.ids["qa_filter"]:
            m["filter"] = _load("seq2seq", self.ids["qa_filter"], f"{key}.qa_filter", dtype, dev)
        if self.answer_matcher == "sbert":
            m["sbert"] = _load("sbert", self.ids["sbert"], f"{key}.sbert", torch.float32, dev)
        return m

    @torch.no_grad()
    def _generate_text(self, model, tok, prompt: str, causal: bool, max_new_tokens: int, num_beams: int = 1) -> str:
        enc = tok(prompt, return_tensors="pt", truncation=True, max_length=MAX_INPUT_TOKENS).to(self.dev)
        enc.pop("token_type_ids", None)
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams,
                             pad_token_id=tok.pad_token_id)
        if causal:
            out = out[:, enc["input_ids"].shape[1]:]
        return tok.decode(out[0], skip_special_tokens=True)

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
        seen: set[str] = set()
        kept = []
        for qa in generated:
            if qa["question"] in seen:
                continue
            seen.add(qa["question"])
            if "filter" not in self.models or self._passes_filter(qa, description):
                kept.append(qa)
        return kept

    # ------------------------------------------------------------------------------------------ QA sets
    def qg_protocol(self) -> dict[str, Any]:
        return {"backbone": self.backbone, **self.ids, "qg_kind": self.qg_kind, "seed": self.seed,
                "caption_source": self.caption_source, "template": self.description_template,
                "max_new_tokens": self.max_new_tokens, "num_beams": self.qg_num_beams, "fallback": self.qg_fallback,
                "filter": "tifascore.question_filter"}

    def question_set(self, sample) -> dict[str, Any]:
        """Caption, description, raw QG text and the (filtered) QA pairs of this sample; generated once, cached."""
        key = fingerprint(sample.edited_image, sample.instruction, sample.target_prompt, self.qg_protocol())
        cached = load_json_cache(self.cache_dir, "tifa_qa", key)
        if cached is not None:
            return cached
        if self.caption_source == "target_prompt_or_captioner" and sample.target_prompt:
            caption = sample.target_prompt
        else:
            caption = self.caption(sample.edited_image)
        description = self.description_template.format(caption=caption, instruction=sample.instruction).strip()
        too_long = text_problem("TIFA description (caption + instruction)", description, 2 * MAX_TEXT_CHARS)
        if too_long:  # refused before the question generator sees it (Sample.validate bounds each field too)
            raise ValueError(f"{sample.sample_id}: {too_long}")
        model, tok = self.models["qg"]
        prompt = tifa_qg_prompt(description) if self.qg_kind == "causal" else description
        raw = self._generate_text(model, tok, prompt, self.qg_kind == "causal", self.max_new_tokens,
                                  num_beams=self.qg_num_beams)
        if self.qg_kind == "causal":
            raw = "Entities:" + first_block(raw)
        generated = parse_tifa_questions(raw)
        kept = self.filter_questions(generated, description)
        source = "generated"
        if not kept and self.qg_fallback == "template":
            kept = [{"entity": None, "type": "template", "question": f"does this image show: {description}?",
                     "choices": ["yes", "no"], "answer": "yes"}]
            source = "template"
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
        return {"tifa": 100.0 * float(correct.mean(axis=1).mean())}

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
