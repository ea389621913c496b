"""The VLM judge's two protocols as plain functions: frames, prompts, questions, answer parsing, aggregation.

FiVE-Acc (FiVE-Bench, Li et al. ICCV'25; Harvard-AI-and-Robotics-Lab/FiVE-Bench evaluation/metrics_calculator.py
``FiVEAcc_Qwen_VL``, read at commit 98ea719):
  * frames: of the T edited frames, every ``stride``-th from ``stride // 2``, ``stride = T // (T // num_frames)``
    (``num_frames=4`` in config.yaml: about T/4 frames, not 4), given to the VLM as ONE video (processor fps 10);
  * three questions per sample: a multiple-choice question whose right answer is always "b)", a yes/no question
    about the source (right answer "no") and one about the target (right answer "yes"), each wrapped in FiVE's
    instruction line (``FIVE_YES_NO_TEMPLATE`` / ``FIVE_MC_TEMPLATE``, their wording kept, typos included);
  * per sample: YN = source "no" and target "yes" (target "yes" alone when there is no source question),
    MC = answer "b", union = YN or MC, intersection = YN and MC, FiVE-Acc = mean of those four (evaluate.py).
EditVerse (EditVerseBench, Ju et al. 2025; adobe-research/EditVerse automatic_evaluation/
editing_vlm_evaluation.py, read at commit eeca9ce):
  * frames: t = 0, T//3, 2*(T//3), ... (``range(0, T, T // 3)``: 4 frames when T = 14), each asked with the source
    frame ("before") and the edited frame ("after") as two images and the editing prompt;
  * the rubric ``EDITVERSE_TEMPLATE``: prompt following, edit quality, background consistency, 0-3 each, total 0-9;
  * per sample: mean over the asked frames.
Where we differ, on purpose (docs/metrics.md): an answer that cannot be parsed is None (skipped, counted, its raw
text kept) instead of "wrong" (FiVE) or asked again until it parses (EditVerse); EditVerse's second "extract the
number" request is replaced by parsing the rubric's lines; frames go to the VLM in RGB (EditVerse JPEG-encodes
decord's RGB frames with OpenCV, which reads them as BGR: its judge sees red and blue swapped).
"""

from __future__ import annotations

import re
from typing import Any, Optional

import numpy as np

# ------------------------------------------------------------------------------------------ frame sampling


def five_frame_indices(num_frames_total: int, num_frames: int = 4) -> list[int]:
    """FiVE's frames: ``stride = T // (T // num_frames)``, frames ``stride // 2, stride // 2 + stride, ...``.

    With T < num_frames FiVE divides by zero (its sample becomes "nan"); here every frame is used instead.
    """
    t = int(num_frames_total)
    if t < num_frames:
        return list(range(t))
    stride = t // (t // num_frames)
    return list(range(int(0.5 * stride), t, stride))


def editverse_frame_indices(num_frames_total: int, sample_frames: int = 3) -> list[int]:
    """EditVerse's frames: ``range(0, T, T // sample_frames)`` (T < sample_frames: every frame)."""
    t = int(num_frames_total)
    step = max(1, t // sample_frames)
    return list(range(0, t, step))


# --------------------------------------------------------------------------------------------- prompts
FIVE_YES_NO_TEMPLATE = "Answer the following question using only 'YES' or 'NO:\n{question}"
FIVE_MC_TEMPLATE = "Select the correct answer from the given choices, onlyt output the answer:\n{question}"

EDITVERSE_TEMPLATE = (
    'You are a meticulous video editing quality evaluator. Your task is to provide a detailed assessment of a video '
    'edit by comparing the original image with the edited image based on a given text prompt.\n'
    'Editing Prompt:\n{prompt}\n'
    'Instructions:\n'
    'Analyze the provided image (the edited video frame) and evaluate how well the "Editing Prompt" has been '
    'executed. You will evaluate the edit across three distinct criteria. For each criterion, provide a score from '
    '0 (worst) to 3 (best) and a brief justification. Finally, provide the total score.\n'
    'Your evaluation should focus on three key aspects:\n'
    '1. Prompt Following (Score: 0-3) \n'
    'Question: Does the edit accurately and completely fulfill the instructions in the "Editing Prompt"? \n'
    'Scoring Guide:\n'
    '- 3: The prompt is perfectly and completely followed.\n'
    '- 2: The prompt is mostly followed but with minor inaccuracies or omissions.\n'
    '- 1: The prompt is poorly followed or only partially executed.\n'
    '- 0: The prompt is completely ignored or the opposite was done. \n'
    '2. Edit Quality (Score: 0-3) \n'
    'Question: How is the visual quality of the edited area itself? Is it realistic, seamless, and free of artifacts '
    '(e.g., blurriness, distortion, unnatural textures)?\n'
    'Scoring Guide:\n'
    '- 3: The edit is of high visual quality, seamless, and artifact-free.\n'
    '- 2: The edit is good but has minor, noticeable artifacts.\n'
    '- 1: The edit is of low quality with significant, distracting artifacts.\n'
    '- 0: The edited area is extremely poor, garbled, or has completely failed.\n'
    '3. Background Consistency (Score: 0-3) \n'
    'Question: Have the areas that should not have been edited remained unchanged between the "Before" and "After" '
    'images? \n'
    'Scoring Guide:\n'
    '- 3: The areas that should not have been edited are perfectly preserved and stable. \n'
    '- 2: There are minor, subtle, but noticeable changes or flickers in the areas that should not have been edited.\n'
    '- 1: There are significant and distracting changes in the areas that should not have been edited. \n'
    '- 0: The areas that should not have been edited is completely or catastrophically altered. \n'
    'Please provide your evaluation in the following format: \n'
    'Prompt Following: [Your score, 0-3] - [Brief justification for the score.]\n'
    'Edit Quality: [Your score, 0-3] - [Brief justification for the score.]\n'
    'Background Consistency: [Your score, 0-3] - [Brief justification for the score.]\n'
    'Total Score: [Sum of the three scores]\n')


# ------------------------------------------------------------------------------ questions for a sample
QUESTION_TEMPLATES_VERSION = "videoshop-five-questions-v1"
QUESTION_TEMPLATES = {
    "target_yes_no_prompt": 'Does the image match this description: "{target_prompt}"?',
    "source_yes_no_prompt": 'Does the image match this description: "{source_prompt}"?',
    "multiple_choice_prompt": ('Which description matches the image? \na) {source_prompt} \nb) {target_prompt}'),
    "target_yes_no_instruction": 'Has this edit been applied to the image: "{instruction}"?',
    "multiple_choice_instruction": ('Has the edit "{instruction}" been applied to the image? \na) No \nb) Yes'),
}


def five_questions(sample) -> dict[str, Any]:
    """The three FiVE questions for ``sample`` and where they came from.

    FiVE-Bench samples carry the dataset's own questions (``extras['five_bench']``: source/target yes/no and
    multiple choice). Any other sample gets questions from ``QUESTION_TEMPLATES`` (recorded as
    ``QUESTION_TEMPLATES_VERSION``): with source and target prompts, "does the image match <prompt>" for each and a
    two-way choice with the target as b) (FiVE's right answer is always b); with only an instruction, "has this
    edit been applied" (yes/no, no source question, as FiVE when ``source_yes_no_question`` is absent) and a
    No / Yes choice. Deterministic: the same sample always gets the same questions.
    """
    five = (getattr(sample, "extras", None) or {}).get("five_bench") or {}
    if five.get("target_yes_no_question") and five.get("multiple_choice_question"):
        return {"source": "five_bench", "source_yes_no": five.get("source_yes_no_question") or None,
                "target_yes_no": five["target_yes_no_question"], "multiple_choice": five["multiple_choice_question"]}
    t = QUESTION_TEMPLATES
    src, tgt = getattr(sample, "source_prompt", None), getattr(sample, "target_prompt", None)
    if src and tgt:
        return {"source": QUESTION_TEMPLATES_VERSION + ":prompts",
                "source_yes_no": t["source_yes_no_prompt"].format(source_prompt=src),
                "target_yes_no": t["target_yes_no_prompt"].format(target_prompt=tgt),
                "multiple_choice": t["multiple_choice_prompt"].format(source_prompt=src, target_prompt=tgt)}
    instruction = getattr(sample, "instruction", "") or tgt or ""
    return {"source": QUESTION_TEMPLATES_VERSION + ":instruction", "source_yes_no": None,
            "target_yes_no": t["target_yes_no_instruction"].format(instruction=instruction),
            "multiple_choice": t["multiple_choice_instruction"].format(instruction=instruction)}


def editing_prompt(sample) -> str:
    """The text EditVerse's judge reads: the edit instruction (EditVerse passes the entry's ``<text>``), else the
    target prompt."""
    return (getattr(sample, "instruction", "") or getattr(sample, "target_prompt", None) or "").strip()


# ---------------------------------------------------------------------------------------- answer parsing
_LEAD = re.compile(r"^[\s\"'`*_#>\-:]+")


def _clean(answer: str) -> str:
    a = _LEAD.sub("", str(answer or "")).strip().lower()
    return re.sub(r"^(the\s+)?(final\s+)?answer\s*(is)?\s*[:\-]?\s*", "", a)


def parse_yes_no(answer: str) -> Optional[bool]:
    """True / False for an answer that starts with yes / no (any case, after quotes, markdown or "Answer:"), None
    when it does not (FiVE reads the first 2-3 characters and counts anything else as wrong)."""
    m = re.match(r"^(yes|no)\b", _clean(answer))
    return None if m is None else m.group(1) == "yes"


def parse_choice(answer: str, question: str = "") -> Optional[str]:
    """The letter (a-d) an answer picks: "b", "b)", "(b)", "B. Yes", "Answer: b"; or the one choice of
    ``question`` (lines "a) text") whose text the answer is. None when neither."""
    a = _clean(answer)
    m = re.match(r"^\(?([a-d])(\)|\.|:|,|\s|$)", a)
    if m:
        return m.group(1)
    choices = {k.lower(): v.strip().lower().rstrip(".") for k, v in re.findall(r"(?m)^\s*([a-dA-D])\)\s*(.+?)\s*$",
                                                                                question or "")}
    hits = [k for k, v in choices.items() if v and a.rstrip(".").strip() == v]
    return hits[0] if len(hits) == 1 else None


EDITVERSE_CRITERIA = {"prompt_following": "Prompt Following", "edit_quality": "Edit Quality",
                      "background": "Background Consistency"}


def parse_editverse(answer: str) -> Optional[dict[str, float]]:
    """The three 0-3 criterion scores and their total (0-9) from a rubric answer, or None.

    A criterion line is "<name>: <digit>" (brackets, markdown bold and an echoed "(Score: 0-3)" allowed); all three
    must be present and in 0..3. The total is their sum (a "Total Score" line that disagrees is ignored: EditVerse
    asks a second time for the overall number; the sum is what its rubric defines).
    """
    text = str(answer or "")
    out: dict[str, float] = {}
    for key, label in EDITVERSE_CRITERIA.items():
        m = re.search(rf"{label}\s*(?:\([^)]*\))?\s*\**\s*:\s*\**\s*\[?\s*(\d+)", text, flags=re.IGNORECASE)
        if m is None or not 0 <= int(m.group(1)) <= 3:
            return None
        out[key] = float(m.group(1))
    out["total"] = sum(out.values())
    return out


# ------------------------------------------------------------------------------------------ aggregation


def five_sample_scores(src_yes: Optional[bool], tgt_yes: Optional[bool], choice: Optional[str],
                       has_source_question: bool) -> dict[str, Optional[float]]:
    """FiVE's per-sample values (x100): yes_no, multi_choice, union, inter, acc (mean of the four).

    A component whose answer could not be parsed is None and so are union, inter and acc (FiVE writes "nan" for
    all five when any answer fails)."""
    mc = None if choice is None else float(choice == "b")
    if tgt_yes is None or (has_source_question and src_yes is None):
        yn = None
    else:
        yn = float(tgt_yes and (src_yes is False if has_source_question else True))
    out: dict[str, Optional[float]] = {"yes_no": yn, "multi_choice": mc, "union": None, "inter": None, "acc": None}
    if yn is not None and mc is not None:
        union, inter = float(yn + mc > 0), float(yn + mc >= 2)
        out.update(union=union, inter=inter, acc=float(np.mean([yn, mc, union, inter])))
    return {k: None if v is None else 100.0 * v for k, v in out.items()}


def editverse_sample_scores(per_frame: list[Optional[dict[str, float]]]) -> dict[str, Optional[float]]:
    """Mean over the asked frames of each criterion and of the total; None when any frame's answer failed to parse
    (EditVerse re-asks until it parses; a deterministic judge would answer the same again)."""
    keys = list(EDITVERSE_CRITERIA) + ["total"]
    if not per_frame or any(p is None for p in per_frame):
        return {k: None for k in keys}
    return {k: float(np.mean([p[k] for p in per_frame])) for k in keys}
