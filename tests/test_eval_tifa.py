"""TIFA: TIFA's QG output parser, the tiny end-to-end pipeline, QA caching, missing-weights error."""

import json

import numpy as np
import pytest

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.backbones import MissingWeightsError
from videoshop_bench.eval.tifa import (TIFA, first_block, free_form_agrees, nearest_choice_string, normalize_free_answer,
                       parse_tifa_questions, tifa_qg_prompt, token_f1, unifiedqa_free_prompt, unifiedqa_mc_prompt)

RAW = """Entities: dog, hat
Activites:
Colors: red
Counting:
Other attributes:
Questions and answers are below:
About dog (animal):
Q: is there a dog?
Choices: yes, no
A: yes
About hat (object):
Q: what color is the hat?
Choices: red, blue, green
A: red
Q: dangling question without answer?
"""


def test_parse_tifa_questions():
    qs = parse_tifa_questions(RAW)
    assert [q["question"] for q in qs] == ["is there a dog?", "what color is the hat?"]
    assert qs[1]["choices"] == ["red", "blue", "green"] and qs[1]["answer"] == "red" and qs[1]["type"] == "object"
    assert qs[0]["type"] == "animal/human"  # TIFA merges animal and human
    odd = RAW.replace("About hat (object):", "About hat (vibe):")  # not one of TIFA's categories: dropped
    assert [q["question"] for q in parse_tifa_questions(odd)] == ["is there a dog?"]
    assert first_block("Entities: x\nAbout x (object):\n\nQ: after a blank line?") == "Entities: x\nAbout x (object):"


def test_tifa_filter_pieces_follow_tifascore():
    assert unifiedqa_mc_prompt("what color is the hat?", "a dog in a red hat", ["red", "blue"]) == \
        "what color is the hat? \n a dog in a red hat \n (A) red (B) blue "
    assert unifiedqa_mc_prompt("q", "c", list("abcde")).count("(") == 4  # at most four headings, as TIFA
    assert unifiedqa_free_prompt("q?", "ctx") == "q? \n ctx"
    assert normalize_free_answer(" Two Dogs! ") == "two dogs"
    assert token_f1(["red"], ["red"]) == 1.0 and token_f1(["dark", "red"], ["red"]) == pytest.approx(2 / 3)
    assert token_f1([], []) == 1.0 and token_f1([], ["x"]) == 0.0
    assert free_form_agrees("2", "two") and not free_form_agrees("2", "three")
    assert free_form_agrees("dark red", "red")  # F1 2/3 > 0.6
    assert not free_form_agrees("a big red hat", "red")  # F1 0.4
    assert "Description: a dog [/INST] Entities:" in tifa_qg_prompt("a dog")
    assert nearest_choice_string("Red.", ["red", "blue"]) == "red"
    assert nearest_choice_string("blu", ["red", "blue"]) == "blue"


def _sample():
    v = np.random.default_rng(0).integers(0, 256, (4, 32, 48, 3), dtype=np.uint8)
    return Sample("s", v, v[0], instruction="make the dog wear a red hat")


TINY = dict(backbone="tiny", device="cpu", qa_filter=None, answer_matcher="string", qg_fallback="template",
            max_new_tokens=24)


def test_tiny_pipeline_runs_and_caches(tmp_path):
    s = _sample()
    m = TIFA(cache_dir=str(tmp_path), **TINY)
    out = m.score(s, s.source_video)
    assert 0.0 <= out["tifa"] <= 100.0
    files = list(tmp_path.glob("tifa_qa/*.json"))
    assert len(files) == 1
    qa = json.loads(files[0].read_text())
    assert qa["source"] == "template" and qa["questions"] and "make the dog wear a red hat" in qa["description"]
    assert "TINY" in m.protocol()["tifa"] and "template" in m.notes()["tifa"]

    m2 = TIFA(cache_dir=str(tmp_path), **TINY)
    m2.caption = lambda image: (_ for _ in ()).throw(AssertionError("question set must come from the cache"))
    assert m2.score(s, s.source_video) == out
    # with the filter (a tiny T5) and no fallback the sample may have no question: skipped, counted
    m3 = TIFA(**{**TINY, "qa_filter": "tiny", "qg_fallback": "none"})
    r = m3.score(s, s.source_video)
    assert r["tifa"] is None and "skipped" in m3.notes()["tifa"]


def test_real_models_missing_one_line():
    with pytest.raises(MissingWeightsError) as e:
        TIFA(backbone="real", device="cpu", captioner="/nonexistent/blip")
    msg = str(e.value)
    assert "\n" not in msg and "metrics.tifa.captioner=PATH" in msg


def test_unifiedqa_filter_logic(tmp_path):
    """Repeated questions go; an answer UnifiedQA does not reproduce goes; a non yes/no answer also needs the free-form
    answer to agree (token F1 > 0.6). UnifiedQA is replaced by a table of answers keyed by its exact input."""
    m = TIFA(cache_dir=str(tmp_path), **{**TINY, "qa_filter": "tiny-t5"})
    ctx = "a dog in a red hat"
    qas = [{"question": "is there a dog?", "choices": ["yes", "no"], "answer": "yes"},
           {"question": "is there a dog?", "choices": ["yes", "no"], "answer": "yes"},
           {"question": "what color is the hat?", "choices": ["red", "blue"], "answer": "red"},
           {"question": "what animal is it?", "choices": ["dog", "cat"], "answer": "dog"},
           {"question": "is there a cat?", "choices": ["yes", "no"], "answer": "yes"}]
    replies = {unifiedqa_mc_prompt("is there a dog?", ctx, ["yes", "no"]): "yes",
               unifiedqa_mc_prompt("what color is the hat?", ctx, ["red", "blue"]): "red",
               unifiedqa_free_prompt("what color is the hat?", ctx): "Red!",
               unifiedqa_mc_prompt("what animal is it?", ctx, ["dog", "cat"]): "dog",
               unifiedqa_free_prompt("what animal is it?", ctx): "a small brown puppy",
               unifiedqa_mc_prompt("is there a cat?", ctx, ["yes", "no"]): "no"}
    m._generate_text = lambda model, tok, prompt, causal, max_new_tokens, num_beams=1: replies[prompt]
    kept = m.filter_questions(qas, ctx)
    assert [q["question"] for q in kept] == ["is there a dog?", "what color is the hat?"]


def test_reset_clears_the_runs_notes_with_the_states(tmp_path):
    """A reset TIFA starts a new run: its sums, counts and per-run notes (template / no-question samples) are gone,
    and the same sample scores the same again (the question set comes back from the cache)."""
    s = _sample()
    m = TIFA(cache_dir=str(tmp_path), **TINY)
    m.update(s, s.source_video)
    first = float(m.compute()["tifa"])
    assert "template" in m.notes()["tifa"] and int(m.tifa_count) == 1
    m.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):  # torchmetrics: compute() on a reset metric
        empty = float(m.compute()["tifa"])
    assert m.notes() == {} and int(m.tifa_count) == 0 and np.isnan(empty)
    m.update(s, s.source_video)
    assert float(m.compute()["tifa"]) == first and "1 sample(s) used the template" in m.notes()["tifa"]
