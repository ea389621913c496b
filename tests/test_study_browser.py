"""The rater page in a real headless browser (Debian's chromium over the DevTools protocol): a lab rater and a crowd
rater play a study through with keys and buttons, the lab rater reloads mid-way and resumes; every vote lands
exactly once; instructions and prompts holding HTML or script are shown as text; the videos play."""

from collections import Counter
from pathlib import Path

import pytest

from _study_data import ServerProcess, make_results
from videoshop_bench.experiments.study import db
from videoshop_bench.experiments.study.browser import CHROMIUM, Browser, videos_playing
from videoshop_bench.experiments.study.design import build_study, read_admin_token, read_tokens

EVIL_INSTRUCTIONS = "Compare <b>carefully</b><script>window.pwned = 1</script>"
EVIL_PROMPT = "add a ball <img src=x onerror=\"window.pwned = 2\">"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"SKIPPED LOUDLY: {CHROMIUM} missing, the study page is NOT browser-tested here "
                    "(apt-get install -y chromium)")
    root = tmp_path_factory.mktemp("bstudy")
    make_results(root / "res", methods=("videoshop", "bdia"), n_samples=2, failed=None, instruction=EVIL_PROMPT)
    build_study([root / "res"], root / "st", trials_per_rater=4, raters_per_pair=2, attention_rate=0.25,
                instructions=EVIL_INSTRUCTIONS)
    url = f"sqlite:///{root / 'votes.db'}"
    server = ServerProcess(root / "st", url, extra=("--completion-url", "https://example.org/done?cc=OK")).start()
    yield server, root / "st", url
    server.stop()


@pytest.fixture
def browser(served):
    b = Browser()
    yield b
    b.close()


def _progress(b):
    return b.eval("document.getElementById('progressText').textContent")


def _answer(b, how):
    before = _progress(b)
    if how == "key":
        b.key("ArrowLeft", "ArrowLeft", 37)
    else:
        b.eval(f"document.getElementById('{how}').click()")
    b.wait(f"document.getElementById('progressText').textContent !== {before!r}")


def test_two_raters_play_through_in_chromium_one_reloads_and_resumes(served, browser):
    server, study_dir, url = served
    b = browser
    token = read_tokens(study_dir)[0]["token"]
    b.goto(f"{server.url}/rate?token={token}")
    b.wait("!document.getElementById('intro').hidden")
    assert b.eval("document.getElementById('instructions').textContent") == EVIL_INSTRUCTIONS  # text, not markup
    b.eval("document.getElementById('start').click()")
    b.wait("!document.getElementById('trial').hidden")
    assert videos_playing(b)
    assert b.eval("document.getElementById('iFirst').complete && document.getElementById('iFirst').naturalWidth > 0")
    total = int(_progress(b).split("/")[1])
    _answer(b, "key")
    _answer(b, "bRight")
    assert _progress(b) == f"2 / {total}"
    b.call("Page.reload")  # mid-way: resumes at the third trial
    b.wait("!document.getElementById('trial').hidden")
    assert _progress(b) == f"2 / {total}"
    shown = b.eval("document.getElementById('sampleInstruction').textContent")
    while b.eval("document.getElementById('done').hidden"):
        _answer(b, "bTie")
    assert b.eval("window.pwned") is None and b.eval("document.querySelectorAll('#trial img').length") == 1
    assert EVIL_PROMPT in shown
    # a crowd participant: the id in the address, a token put there for reloads, the completion link at the end
    b.goto(f"{server.url}/rate?PROLIFIC_PID=crowd-7")
    b.wait("!document.getElementById('intro').hidden")
    assert "token=" in b.eval("window.location.search")
    b.eval("document.getElementById('start').click()")
    b.wait("!document.getElementById('trial').hidden")
    while b.eval("document.getElementById('done').hidden"):
        _answer(b, "bLeft")
    assert b.eval("document.getElementById('completion').href") == "https://example.org/done?cc=OK"
    assert b.errors == []
    votes = db.all_votes(db.open_db(url))
    by_rater = Counter(v["rater_id"] for v in votes)
    assert by_rater == {"lab-001": total, "PROLIFIC_PID:crowd-7": by_rater["PROLIFIC_PID:crowd-7"]}
    assert max(Counter((v["rater_id"], v["trial_id"]) for v in votes).values()) == 1
    lab = [v for v in votes if v["rater_id"] == "lab-001"]
    assert [v["choice"] for v in lab] == ["left", "right"] + ["tie"] * (total - 2)
    assert all(v["preferred"] == (v["left"] if v["choice"] == "left" else "tie" if v["choice"] == "tie" else
                                  ({"reference", "baseline"} - {v["left"]}).pop()) for v in lab)


def test_admin_page_shows_progress_and_refuses_a_wrong_token(served, browser):
    server, study_dir, _ = served
    browser.goto(f"{server.url}/admin?token=wrong")
    browser.wait("document.getElementById('totals').textContent.includes('401')")
    browser.goto(f"{server.url}/admin?token={read_admin_token(study_dir)}")
    browser.wait("document.querySelectorAll('#pairs tbody tr').length > 0")
    assert "votes from" in browser.eval("document.getElementById('totals').textContent")
    assert browser.errors and all("401 (Unauthorized)" in e and "token=wrong" in e for e in browser.errors)
