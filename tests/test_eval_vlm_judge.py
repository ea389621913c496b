"""VLM judge: FiVE / EditVerse frame sampling and aggregation, answer parsing on recorded answers (well-formed and
malformed), the tiny Qwen2.5-VL end to end (unparseable path), cache hits, determinism, the API judge against a
local OpenAI-compatible server, judge agreement."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pandas as pd
import pytest

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.judge_agreement import judge_agreement, judge_prefixes, write_judge_agreement
from videoshop_bench.eval.judge_protocols import (editverse_frame_indices, editverse_sample_scores, five_frame_indices,
                                  five_questions, five_sample_scores, parse_choice, parse_editverse, parse_yes_no)
from videoshop_bench.eval.vlm_judge import VLMJudge

# Answers as Qwen2.5-VL-7B-Instruct and GPT-4o write them (well-formed), and malformed ones.
RUBRIC = ("Prompt Following: 3 - The crown is added as asked.\nEdit Quality: 2 - Slight blur at the edges.\n"
          "Background Consistency: 1 - The wall flickers.\nTotal Score: 6")
RUBRIC_MARKDOWN = ("**Prompt Following:** [2] - mostly.\n**Edit Quality:** [3] - clean.\n"
                   "**Background Consistency:** [3] - stable.\n**Total Score:** 8")


def test_five_frame_sampling_follows_five_bench():
    # stride = T // (T // 4), from stride // 2 (FiVE-Bench FiVEAcc_Qwen_VL.run_each_iter)
    assert five_frame_indices(14) == [2, 6, 10]
    assert five_frame_indices(100) == list(range(2, 100, 4))
    assert five_frame_indices(16) == [2, 6, 10, 14]
    assert five_frame_indices(3) == [0, 1, 2]  # fewer frames than num_frames: FiVE divides by zero; all used here


def test_editverse_frame_sampling_follows_editverse():
    assert editverse_frame_indices(14) == [0, 4, 8, 12]  # range(0, T, T // 3)
    assert editverse_frame_indices(9) == [0, 3, 6]
    assert editverse_frame_indices(2) == [0, 1]


@pytest.mark.parametrize("answer,want", [
    ("Yes", True), ("YES", True), ("yes.", True), ("No", False), ("NO.", False), ("'No'", False),
    ("**Yes**, the cyclist wears a helmet.", True), ("Answer: no", False), ("The answer is yes", True),
    ("Maybe", None), ("", None), ("5[&k(Z}%{A0A0", None), ("I cannot tell.", None), ("Nope", None),
    ("Yesterday", None)])
def test_parse_yes_no(answer, want):
    assert parse_yes_no(answer) is want


Q = "Is the cyclist wearing a helmet? \na) Yes \nb) No"


@pytest.mark.parametrize("answer,want", [
    ("b) No", "b"), ("b", "b"), ("B", "b"), ("(b)", "b"), ("B. No", "b"), ("a) Yes", "a"), ("Answer: b", "b"),
    ("No", "b"), ("yes.", "a"), ("c'est la vie", None), ("", None), ("0A0A0A", None), ("both", None)])
def test_parse_choice(answer, want):
    assert parse_choice(answer, Q) == want


def test_parse_editverse_rubric():
    assert parse_editverse(RUBRIC) == {"prompt_following": 3, "edit_quality": 2, "background": 1, "total": 6}
    assert parse_editverse(RUBRIC_MARKDOWN)["total"] == 8
    echoed = ("1. Prompt Following (Score: 0-3): 2 - ok\n2. Edit Quality (Score: 0-3): 1 - blur\n"
              "3. Background Consistency (Score: 0-3): 3 - stable")
    assert parse_editverse(echoed) == {"prompt_following": 2, "edit_quality": 1, "background": 3, "total": 6}
    assert parse_editverse(RUBRIC.replace("Total Score: 6", "Total Score: 9"))["total"] == 6  # sum, not the claim
    assert parse_editverse("Total Score: 7") is None  # criteria missing
    assert parse_editverse(RUBRIC.replace("Edit Quality: 2", "Edit Quality: 5")) is None  # out of 0-3
    assert parse_editverse("5[&k(Z}%{A0A0A0") is None


def test_five_aggregation_matches_five_bench():
    s = five_sample_scores(False, True, "b", True)  # src no, tgt yes, MC b: all right
    assert s == {"yes_no": 100.0, "multi_choice": 100.0, "union": 100.0, "inter": 100.0, "acc": 100.0}
    s = five_sample_scores(True, True, "b", True)  # source also "yes": YN wrong, MC right
    assert (s["yes_no"], s["multi_choice"], s["union"], s["inter"], s["acc"]) == (0.0, 100.0, 100.0, 0.0, 50.0)
    assert five_sample_scores(None, True, "b", False)["yes_no"] == 100.0  # no source question: target yes alone
    s = five_sample_scores(None, True, "b", True)  # source answer unparseable
    assert s["yes_no"] is None and s["acc"] is None and s["multi_choice"] == 100.0
    ev = editverse_sample_scores([parse_editverse(RUBRIC), parse_editverse(RUBRIC_MARKDOWN)])
    assert ev["total"] == 7.0 and ev["prompt_following"] == 2.5
    assert editverse_sample_scores([parse_editverse(RUBRIC), None])["total"] is None


def _sample(sid="s", extras=None, **kw):
    v = np.random.default_rng(0).integers(0, 256, (14, 32, 48, 3), dtype=np.uint8)
    return Sample(sid, v, v[0], instruction="make the car red", extras=extras or {}, **kw)


def test_questions_dataset_first_else_recorded_templates():
    five = {"five_bench": {"source_yes_no_question": "Is the car blue in the image?",
                           "target_yes_no_question": "Is the car red in the image?",
                           "multiple_choice_question": "What colour is the car? \na) blue \nb) red"}}
    q = five_questions(_sample(extras=five))
    assert q["source"] == "five_bench" and q["target_yes_no"] == "Is the car red in the image?"
    q = five_questions(_sample(source_prompt="a blue car", target_prompt="a red car"))
    assert q["source"].endswith(":prompts") and q["multiple_choice"].endswith("b) a red car")
    assert five_questions(_sample(source_prompt="a blue car", target_prompt="a red car")) == q  # reproducible
    q = five_questions(_sample())
    assert q["source_yes_no"] is None and "make the car red" in q["target_yes_no"]


class ScriptedJudge:
    """A backend answering from a script, for the metric's bookkeeping (the tiny Qwen2.5-VL is tested below)."""

    def __init__(self, answers):
        self.answers, self.calls, self.revision = list(answers), 0, "r1"

    def identity(self):
        return {"kind": "scripted", "answers": self.answers}

    def describe(self):
        return "scripted"

    def ask(self, content, max_new_tokens=None):
        self.calls += 1
        text = next(c["text"] for c in content if c["type"] == "text")
        raw = self.answers[0] if "Select" in text else self.answers[1] if "YES" in text else self.answers[2]
        return {"raw": raw, "model": "scripted", "revision": "r1", "answered_at": "2026-01-01T00:00:00+00:00"}


def test_judge_values_notes_and_unparseable(tmp_path):
    m = VLMJudge(backbone="tiny", device="cpu", cache_dir=str(tmp_path))
    m.judge = ScriptedJudge(["b) red", "Yes", RUBRIC])
    s = _sample()
    got = m.score(s, s.source_video)
    assert got["five_acc"] == 100.0 and got["ev_total"] == 6.0 and got["ev_background"] == 1.0
    assert any('raw "Yes"' in n and "verdict true" in n for n in m.sample_notes(s))
    m2 = VLMJudge(backbone="tiny", device="cpu", cache_dir=str(tmp_path / "other"))
    m2.judge = ScriptedJudge(["I am not sure", "Yes", "garbled"])
    got = m2.score(s, s.source_video)
    assert got["five_mc"] is None and got["five_acc"] is None and got["five_yn"] == 100.0
    assert got["ev_total"] is None
    assert any('raw "I am not sure"' in n and "verdict null" in n for n in m2.sample_notes(s))
    assert "unparseable" in m2.skip_reason("five_acc", s)


def test_tiny_qwen_end_to_end_unparseable_cached_deterministic(tmp_path):
    s = _sample()
    kw = dict(backbone="tiny", device="cpu", five_max_new_tokens=8, editverse_max_new_tokens=8)
    m = VLMJudge(cache_dir=str(tmp_path), **kw)
    assert type(m.judge.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    first = m.score(s, s.source_video)
    assert all(v is None for v in first.values())  # random weights: garbage answers, all unparseable, no crash
    notes = m.sample_notes(s)
    assert len(notes) == 2 + 4 and all("raw " in n for n in notes)  # MC + target yes/no, 4 EditVerse frames
    assert m.misses == 6 and m.hits == 0
    raws = [a["raw"] for a in m.answers[s.sample_id]]
    again = VLMJudge(cache_dir=str(tmp_path), **kw)  # a rerun: every answer from the cache, nothing asked
    again.judge.ask = None
    again.score(s, s.source_video)
    assert again.hits == 6 and again.misses == 0 and [a["raw"] for a in again.answers[s.sample_id]] == raws
    fresh = VLMJudge(cache_dir=str(tmp_path / "b"), **kw)  # asked again: greedy decoding, the same answers
    fresh.score(s, s.source_video)
    assert [a["raw"] for a in fresh.answers[s.sample_id]] == raws
    other = s.source_video.copy()
    other[2, 0, 0] ^= 1  # one pixel of a FiVE frame (2, 6, 10) changes the keys of its 2 questions only
    fresh.score(s, other)
    assert fresh.misses == 6 + 2


class _Handler(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.bodies.append((self.path, self.headers.get("Authorization"), body))
        text = body["messages"][0]["content"][0]["text"] if body["messages"][0]["content"][0]["type"] == "text" \
            else body["messages"][0]["content"][-1]["text"]
        answer = "b) red" if "Select" in text else "Yes" if "YES" in text else RUBRIC
        reply = {"model": "gpt-4o-2024-11-20", "created": 1767225600,
                 "choices": [{"message": {"role": "assistant", "content": answer}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def api_server():
    srv = HTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    _Handler.bodies = []
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_api_judge_against_local_server(api_server, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-test")
    m = VLMJudge(judge="api", api_base_url=api_server, api_model="gpt-4o-2024-11-20", api_key_env="JUDGE_TEST_KEY",
                 column_prefix="api_", cache_dir=str(tmp_path), device="cpu")
    s = _sample()
    got = m.score(s, s.source_video)
    assert got == {"api_five_yn": 100.0, "api_five_mc": 100.0, "api_five_union": 100.0, "api_five_inter": 100.0,
                   "api_five_acc": 100.0, "api_ev_prompt": 3.0, "api_ev_quality": 2.0, "api_ev_background": 1.0,
                   "api_ev_total": 6.0}
    path, auth, body = _Handler.bodies[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert body["temperature"] == 0 and body["model"] == "gpt-4o-2024-11-20"
    assert sum(c["type"] == "image_url" for c in body["messages"][0]["content"]) == 3  # FiVE's 3 frames of 14
    ev = _Handler.bodies[-1][2]["messages"][0]["content"]
    assert [c["type"] for c in ev] == ["text", "image_url", "image_url"]  # EditVerse: prompt, before, after
    assert ev[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    notes = m.sample_notes(s)
    assert all("gpt-4o-2024-11-20" in n and "2026-01-01T00:00:00+00:00" in n for n in notes)
    n = len(_Handler.bodies)
    VLMJudge(judge="api", api_base_url=api_server, api_model="gpt-4o-2024-11-20", cache_dir=str(tmp_path),
             device="cpu").score(s, s.source_video)
    assert len(_Handler.bodies) == n  # cached: the endpoint is not asked again


def test_api_judge_never_called_unless_configured():
    with pytest.raises(ValueError, match="base_url and model"):
        VLMJudge(judge="api", device="cpu")
    assert VLMJudge(backbone="tiny", device="cpu").kind == "transformers"  # the default never builds an API judge


def test_judge_agreement_table(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 10, 40).astype(float)
    df = pd.DataFrame({"ev_total": a, "api_ev_total": a + rng.normal(0, 0.5, 40),
                       "five_yn": rng.choice([0.0, 100.0], 40)})
    df["api_five_yn"] = df["five_yn"]
    df.loc[:4, "api_five_yn"] = 100.0 - df.loc[:4, "five_yn"]
    t = judge_agreement(df, ["", "api_"])
    row = t.set_index("column").loc["ev_total"]
    assert row["n"] == 40 and row["spearman"] > 0.9
    yn = t.set_index("column").loc["five_yn"]
    assert yn["agreement"] == pytest.approx(35 / 40) and -1 <= yn["cohen_kappa"] <= 1
    assert judge_prefixes(["clip_tgt", "five_acc", "ev_total", "api_ev_total"]) == ["", "api_"]
    assert write_judge_agreement(tmp_path, df, ["", "api_"]).exists()
    assert write_judge_agreement(tmp_path / "x", df, [""]) is None  # one judge: nothing to compare


def test_missing_weights_one_line_naming_the_key(tmp_path):
    from videoshop_bench.eval.backbones import MissingWeightsError

    with pytest.raises(MissingWeightsError, match=r"^metrics\.vlm_judge\.model: Qwen/Qwen2\.5-VL-7B-Instruct .*"
                                                  r"set metrics\.vlm_judge\.path=DIR") as e:
        VLMJudge(device="cpu")  # the default: real Qwen2.5-VL-7B-Instruct, not in this offline cache
    assert "\n" not in str(e.value)
    with pytest.raises(MissingWeightsError, match=r"^metrics\.vlm_judge\.path: .* does not exist"):
        VLMJudge(path=str(tmp_path / "nowhere"), device="cpu")
    with pytest.raises(ValueError, match="protocols"):
        VLMJudge(backbone="tiny", protocols=["vibes"], device="cpu")


def test_judge_model_follows_the_metric_device():
    m = VLMJudge(backbone="tiny", device="cpu")
    other = VLMJudge(backbone="tiny", device="cpu")  # shares the cpu instance
    m.to("meta")
    assert next(m.judge.model.parameters()).device.type == "meta"
    assert next(other.judge.model.parameters()).device.type == "cpu"  # the shared instance was not moved
    assert m.backbone_modules() and all(p.device.type == "meta" for p in m.backbone_modules()[0].parameters())
