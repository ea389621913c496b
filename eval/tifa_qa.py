"""The text side of TIFA (Hu et al. 2023, Yushi-Hu/tifa's tifascore), no models: the question generator's prompt and
its output parser (step 2), the UnifiedQA filter's inputs and agreement test (step 3), the mapping of a free-form VQA
answer to a choice (step 4) and the score (step 5). ``eval/tifa.py`` runs the models around them."""

from __future__ import annotations

import difflib
import string
from typing import Any

import numpy as np

TIFA_INTRO = ("Given an image description, generate one or two multiple-choice questions that verifies if the image "
              "description is correct.\nClassify each concept into a type (object, human, animal, food, activity, "
              "attribute, counting, color, material, spatial, location, shape, other), and then generate a question "
              "for each type.\n")

# The text models read at most this many tokens (a guard behind MAX_TEXT_CHARS: a description is a caption plus a
# bounded instruction, a few hundred tokens; TIFA's LLaMA-2 prompt fits 4096).
MAX_INPUT_TOKENS = 2048

TIFA_CATEGORIES = ("object", "human", "animal", "food", "activity", "attribute", "counting", "color", "material",
                   "spatial", "location", "shape", "other")


# ------------------------------------------------------------------------ step 2: question generation
def tifa_qg_prompt(description: str) -> str:
    """The prompt of TIFA's LLaMA-2 question generator (tifascore question_gen_llama2)."""
    return f"<s>[INST] <<SYS>>\n{TIFA_INTRO}\n<</SYS>>\n\nDescription: {description} [/INST] Entities:"


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


def template_question(description: str) -> dict[str, Any]:
    """The one yes/no question of ``qg_fallback=template`` (not TIFA's; counted in the metric's notes)."""
    return {"entity": None, "type": "template", "question": f"does this image show: {description}?",
            "choices": ["yes", "no"], "answer": "yes"}


# ------------------------------------------------------------------------ step 3: the UnifiedQA filter
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


def unique_questions(generated: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Repeated questions dropped, the first one kept (tifascore.question_filter)."""
    seen: set[str] = set()
    kept = []
    for qa in generated:
        if qa["question"] not in seen:
            seen.add(qa["question"])
            kept.append(qa)
    return kept


# ------------------------------------------------------------------------ steps 4-5: answers and the score
def _norm(s: str) -> str:
    return " ".join(s.lower().strip().strip(string.punctuation).split())


def nearest_choice_string(answer: str, choices: list[str]) -> str:
    """The choice equal to ``answer`` after normalisation, else the most similar by difflib's ratio."""
    a = _norm(answer)
    for c in choices:
        if _norm(c) == a:
            return c
    return max(choices, key=lambda c: difflib.SequenceMatcher(None, a, _norm(c)).ratio())


def tifa_score(correct: np.ndarray) -> float:
    """TIFA (x100) from a (frames, questions) 0/1 array: the share answered correctly per frame, averaged over
    frames (tifascore.tifa_score per image; frames as images)."""
    return 100.0 * float(np.asarray(correct, dtype=float).mean(axis=1).mean())
