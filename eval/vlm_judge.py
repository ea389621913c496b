"""VLM judge: FiVE-Acc questions and EditVerse 0-9 rubric scores from a vision-language model.

Protocols and their sources: eval/judge_protocols.py (frames, prompts, questions, parsing, aggregation); backends
(transformers model, tiny stand-in, OpenAI-compatible API): eval/judge_backends.py. Columns (x100 for FiVE, as
FiVE-Bench reports percentages):
  five_yn, five_mc, five_union, five_inter, five_acc    FiVE-Acc and its parts (``protocols`` containing "five")
  ev_prompt, ev_quality, ev_background (0-3), ev_total (0-9)    EditVerse's rubric ("editverse")
``column_prefix`` renames them (e.g. ``api_five_acc``) so several judges can score one run; ``judge_agreement``
(eval/judge_agreement.py) compares them. Every answer is cached (JSON, ``cache_dir/vlm_judge/<key>.json``) by a hash
of the frames, the prompt, the token budget and the judge's identity (model, revision, dtype, decoding), with the
raw answer, the model and revision that gave it and when; a rerun asks nothing again. Each sample's raw answers and
verdicts are in its notes. An answer that cannot be parsed gives None for the values that need it: skipped (counted
in ``n_skipped``), raw answer kept, the run goes on.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import numpy as np

from .base import EditMetric, check_same_shape
from .cache import fingerprint, load_json_cache, save_json_cache
from .judge_backends import DEFAULT_MODEL, ApiJudge, TransformersJudge
from .judge_protocols import (EDITVERSE_TEMPLATE, FIVE_MC_TEMPLATE, FIVE_YES_NO_TEMPLATE, QUESTION_TEMPLATES_VERSION,
                              editing_prompt, editverse_frame_indices, editverse_sample_scores, five_frame_indices,
                              five_questions, five_sample_scores, parse_choice, parse_editverse, parse_yes_no)

FIVE_COLUMNS = ("five_yn", "five_mc", "five_union", "five_inter", "five_acc")
EDITVERSE_COLUMNS = ("ev_prompt", "ev_quality", "ev_background", "ev_total")
PROTOCOLS = ("five", "editverse")


class VLMJudge(EditMetric):
    """FiVE-Acc and EditVerse rubric scores from one judge (higher is better)."""

    names = FIVE_COLUMNS + EDITVERSE_COLUMNS
    higher_is_better = True
    config_key = "metrics.vlm_judge"

    def __init__(self, protocols: tuple[str, ...] | list[str] = PROTOCOLS, judge: str = "transformers",
                 backbone: str = "real", model: str = DEFAULT_MODEL, revision: Optional[str] = None,
                 path: Optional[str] = None, model_class: str = "AutoModelForImageTextToText", dtype: str = "auto",
                 five_num_frames: int = 4, editverse_frames: int = 3, five_max_new_tokens: int = 128,
                 editverse_max_new_tokens: int = 512, video_fps: float = 10.0,
                 api_base_url: Optional[str] = None, api_model: Optional[str] = None,
                 api_key_env: str = "OPENAI_API_KEY", api_timeout: float = 120.0, column_prefix: str = "",
                 config_key: Optional[str] = None, device: str = "auto", seed: int = 0,
                 cache_dir: Optional[str] = None, **kwargs: Any) -> None:
        key = config_key or self.config_key
        protocols = tuple(protocols)
        if not protocols or any(p not in PROTOCOLS for p in protocols):
            raise ValueError(f"{key}.protocols must be a non-empty subset of {PROTOCOLS}, got {list(protocols)}")
        self.protocols, self.prefix = protocols, str(column_prefix or "")
        base = (FIVE_COLUMNS if "five" in protocols else ()) + (EDITVERSE_COLUMNS if "editverse" in protocols else ())
        self.names = tuple(self.prefix + n for n in base)  # before EditMetric.__init__: it adds a state per name
        super().__init__(**kwargs)
        self.config_key = key
        if judge == "transformers":
            self.judge = TransformersJudge(model, revision, path, model_class, backbone, dtype, device, seed,
                                           five_max_new_tokens, video_fps, config_key=key)
        elif judge == "api":
            self.judge = ApiJudge(api_base_url or "", api_model or "", api_key_env, api_timeout,
                                  editverse_max_new_tokens, seed, config_key=key)
        else:
            raise ValueError(f"{key}.judge must be transformers or api, got {judge!r}")
        self.kind = judge
        self.five_num_frames, self.editverse_frames = int(five_num_frames), int(editverse_frames)
        self.five_max_new_tokens = int(five_max_new_tokens)
        self.editverse_max_new_tokens = int(editverse_max_new_tokens)
        self.cache_dir = cache_dir
        self.memory: dict[str, dict] = {}
        self.hits = self.misses = 0
        self.answers: dict[str, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------------------------------ asking
    def ask(self, content: list[dict[str, Any]], max_new_tokens: int) -> dict[str, Any]:
        """The judge's answer to ``content``, from the cache when this judge answered it before."""
        parts = [c.get("text") if c["type"] == "text" else c.get("image", c.get("video")) for c in content]
        key = fingerprint("vlm_judge", *[c["type"] for c in content], *parts, self.judge.identity(), max_new_tokens)
        if key in self.memory:
            self.hits += 1
            return {**self.memory[key], "cached": True}
        got = load_json_cache(self.cache_dir, "vlm_judge", key)
        if got is not None:
            self.hits += 1
            self.memory[key] = got
            return {**got, "cached": True}
        self.misses += 1
        got = dict(self.judge.ask(content, max_new_tokens=max_new_tokens))
        got["prompt"] = next((c["text"] for c in content if c["type"] == "text"), "")
        save_json_cache(self.cache_dir, "vlm_judge", key, got)
        self.memory[key] = got
        return {**got, "cached": False}

    def _note(self, sid: str, protocol: str, what: str, answer: dict[str, Any], verdict: Any) -> None:
        self.answers.setdefault(sid, []).append({"protocol": protocol, "question": what, "raw": answer["raw"],
                                                 "verdict": verdict, "model": answer["model"],
                                                 "revision": answer.get("revision"),
                                                 "answered_at": answer.get("answered_at"),
                                                 "cached": answer.get("cached", False)})

    # ----------------------------------------------------------------------------------------- protocols
    def five(self, sample, edited: np.ndarray) -> dict[str, Optional[float]]:
        """FiVE-Acc on FiVE's frames of ``edited`` (one video): multiple choice, then source and target yes/no."""
        video = edited[five_frame_indices(len(edited), self.five_num_frames)]
        qs = five_questions(sample)
        sid = sample.sample_id

        def asked(template: str, question: str):
            return self.ask([{"type": "video", "video": video},
                             {"type": "text", "text": template.format(question=question)}], self.five_max_new_tokens)

        a = asked(FIVE_MC_TEMPLATE, qs["multiple_choice"])
        choice = parse_choice(a["raw"], qs["multiple_choice"])
        self._note(sid, "five", "multiple_choice", a, choice)
        src_yes = None
        if qs["source_yes_no"]:
            a = asked(FIVE_YES_NO_TEMPLATE, qs["source_yes_no"])
            src_yes = parse_yes_no(a["raw"])
            self._note(sid, "five", "source_yes_no", a, src_yes)
        a = asked(FIVE_YES_NO_TEMPLATE, qs["target_yes_no"])
        tgt_yes = parse_yes_no(a["raw"])
        self._note(sid, "five", "target_yes_no", a, tgt_yes)
        self.answers[sid][-1]["questions"] = qs["source"]
        s = five_sample_scores(src_yes, tgt_yes, choice, bool(qs["source_yes_no"]))
        return dict(zip(FIVE_COLUMNS, (s["yes_no"], s["multi_choice"], s["union"], s["inter"], s["acc"])))

    def editverse(self, sample, edited: np.ndarray) -> dict[str, Optional[float]]:
        """EditVerse's rubric on each sampled frame (source frame, edited frame, editing prompt), averaged."""
        text = EDITVERSE_TEMPLATE.format(prompt=editing_prompt(sample))
        per_frame = []
        for t in editverse_frame_indices(len(edited), self.editverse_frames):
            a = self.ask([{"type": "text", "text": text}, {"type": "image", "image": sample.source_video[t]},
                          {"type": "image", "image": edited[t]}], self.editverse_max_new_tokens)
            parsed = parse_editverse(a["raw"])
            self._note(sample.sample_id, "editverse", f"frame {t}", a, parsed)
            per_frame.append(parsed)
        s = editverse_sample_scores(per_frame)
        return dict(zip(EDITVERSE_COLUMNS, (s["prompt_following"], s["edit_quality"], s["background"], s["total"])))

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        self.answers[sample.sample_id] = []
        out: dict[str, Optional[float]] = {}
        if "five" in self.protocols:
            out.update(self.five(sample, edited))
        if "editverse" in self.protocols:
            out.update(self.editverse(sample, edited))
        return {self.prefix + k: v for k, v in out.items()}

    # ------------------------------------------------------------------------------------------- reports
    def skip_reason(self, name: str, sample) -> str:
        return "unparseable judge answer (raw in notes)"

    def sample_notes(self, sample) -> list[str]:
        """One line per answer: protocol, question, verdict (None = unparseable), model @ revision, date, raw."""
        return [f"vlm_judge{'[' + self.prefix.rstrip('_') + ']' if self.prefix else ''} {a['protocol']} "
                f"{a['question']}: verdict {json.dumps(a['verdict'])} from {a['model']} @ {a['revision']} "
                f"({'cached, ' if a['cached'] else ''}answered {a['answered_at']}); raw {json.dumps(a['raw'])}"
                for a in self.answers.get(sample.sample_id, [])]

    def reset(self) -> None:
        super().reset()
        self.answers.clear()

    def protocol(self) -> dict[str, str]:
        judge = self.judge.describe()
        five = (f"FiVE-Acc (FiVE-Bench evaluation code): {judge}; every stride-th edited frame, stride = "
                f"T // (T // {self.five_num_frames}), from stride/2, as one video; FiVE's instruction lines; dataset "
                f"questions (FiVE-Bench) else {QUESTION_TEMPLATES_VERSION} templates; right answers b) / source no / "
                f"target yes; unparseable answer: skipped; x100")
        ev = (f"EditVerse rubric (automatic_evaluation/editing_vlm_evaluation.py): {judge}; frames range(0, T, "
              f"T // {self.editverse_frames}), source + edited frame + instruction; prompt following, edit quality, "
              f"background consistency 0-3 each, total 0-9; mean over frames; parsed from the rubric lines; "
              f"unparseable: skipped")
        out = {}
        for n in self.names:
            base = n[len(self.prefix):]
            out[n] = five if base in FIVE_COLUMNS else ev
        return out
