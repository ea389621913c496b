"""TIFA: TIFA's QG output parser, the tiny end-to-end pipeline, QA caching, missing-weights error."""

import json

import numpy as np
import pytest

from datasets.schema import Sample
from eval.backbones import MissingWeightsError
from eval.tifa import TIFA, nearest_choice_string, parse_tifa_questions, tifa_qg_prompt

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
