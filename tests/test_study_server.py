"""The study server through its HTTP API (FastAPI TestClient and a real uvicorn process): raters play through and
resume, every vote lands exactly once, bad tokens / foreign trials / traversal are refused, bad media drop their
trials, SIGKILL loses nothing, 50 concurrent raters neither lose nor double a vote; votes out and in as CSV."""

import shutil
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from _study_data import ServerProcess, make_results
from videoshop_bench.experiments.study import db
from videoshop_bench.experiments.study.design import build_study, load_manifest, read_admin_token, read_tokens
from videoshop_bench.experiments.study.server import Study, create_app
from videoshop_bench.experiments.study.simulate import Profile, play_rater, run_population
from videoshop_bench.experiments.study.votes_io import import_votes, votes_csv_text


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    make_results(root / "res")
    build_study([root / "res"], root / "st", trials_per_rater=6, raters_per_pair=2, attention_rate=0.2, seed=1,
                instructions="Watch <b>closely</b><script>window.pwned=1</script>")
    return root / "st"


def _client(study_dir, tmp_path, **kw):
    engine = db.open_db(f"sqlite:///{tmp_path / 'votes.db'}")
    app = create_app(Study(study_dir), engine, read_admin_token(study_dir), **kw)
    return TestClient(app), engine


def _play(c, token, stop_after=None):
    n = 0
    while True:
        nxt = c.get("/api/next", params={"token": token}).json()
        if nxt["done"] or (stop_after is not None and n == stop_after):
            return nxt
        r = c.post("/api/vote", json={"token": token, "trial_id": nxt["trial"]["id"], "choice": "left"})
        assert r.status_code == 200 and r.json()["stored"] is True
        r = c.post("/api/vote", json={"token": token, "trial_id": nxt["trial"]["id"], "choice": "right"})
        assert r.json()["stored"] is False  # a double click counts once (and the first answer stands)
        n += 1


def test_two_raters_play_through_one_resumes_every_vote_once(study_dir, tmp_path):
    c, engine = _client(study_dir, tmp_path)
    t1, t2 = [t["token"] for t in read_tokens(study_dir)[:2]]
    assert c.get("/api/session", params={"token": t1}).status_code == 200
    mid = _play(c, t1, stop_after=2)
    assert mid["progress"]["done"] == 2
    c.get("/api/session", params={"token": t1})  # reload, or another device
    again = c.get("/api/next", params={"token": t1}).json()
    assert again["trial"]["id"] == mid["trial"]["id"] and again["progress"]["done"] == 2
    assert _play(c, t1)["done"] and _play(c, t2)["done"]
    votes = db.all_votes(engine)
    manifest = load_manifest(study_dir)
    slots = {r["rater_id"]: r["slot"] for r in db.all_raters(engine) if r["slot"] is not None}
    expected = sum(len(manifest["slots"][s]) for s in slots.values())
    assert len(votes) == expected and len(slots) == 2
    assert max(Counter((v["rater_id"], v["trial_id"]) for v in votes).values()) == 1
    left = {v["trial_id"]: v for v in votes if v["rater_id"] == "lab-001"}
    for a in manifest["slots"][slots["lab-001"]]:  # "left" clicked: stored as whichever side was on the left
        assert left[a["trial"]]["preferred"] == a["left"]


def test_unknown_or_missing_token_and_foreign_trials_are_refused_and_nothing_stored(study_dir, tmp_path):
    c, engine = _client(study_dir, tmp_path)
    t1, t2 = [t["token"] for t in read_tokens(study_dir)[:2]]
    assert c.get("/api/next").status_code == 401
    assert c.get("/api/next", params={"token": "nope"}).status_code == 401
    assert c.get("/api/session").status_code == 401
    mine = c.get("/api/next", params={"token": t1}).json()["trial"]["id"]
    assert c.post("/api/vote", json={"token": "nope", "trial_id": mine, "choice": "left"}).status_code == 401
    manifest = load_manifest(study_dir)
    c.get("/api/next", params={"token": t2})
    slot1 = next(r["slot"] for r in db.all_raters(engine) if r["rater_id"] == "lab-001")
    foreign = next(t["id"] for t in manifest["trials"] if t["id"] not in {a["trial"] for a in manifest["slots"][slot1]})
    assert c.post("/api/vote", json={"token": t1, "trial_id": foreign, "choice": "left"}).status_code == 403
    assert c.post("/api/vote", json={"token": t1, "trial_id": mine, "choice": "up"}).status_code == 422
    assert c.get("/api/admin/status").status_code == 401
    assert c.get("/api/admin/status", params={"token": t1}).status_code == 401
    assert db.all_votes(engine) == []


@pytest.mark.parametrize("path", ["/media/../study.json", "/media/%2e%2e/study.json", "/media/..%2fstudy.json",
                                  "/media/%2e%2e%2ftokens.csv", "/media//etc/passwd", "/media/%2Fetc%2Fpasswd",
                                  "/media/../../../../etc/passwd", "/media/nosuch.mp4", "/media/"])
def test_media_paths_that_leave_the_media_folder_are_404(study_dir, tmp_path, path):
    c, _ = _client(study_dir, tmp_path)
    r = c.get(path)
    assert r.status_code == 404 and "token" not in r.text


def test_a_corrupt_or_missing_media_file_drops_its_trials_and_the_study_goes_on(study_dir, tmp_path):
    copy = tmp_path / "st"
    shutil.copytree(study_dir, copy)
    m = load_manifest(copy)
    victim = m["trials"][0]["videos"]["baseline"]
    (copy / "media" / victim).write_bytes(b"not a video")
    gone = next(t["videos"]["baseline"] for t in m["trials"] if t["videos"]["baseline"] != victim and not t["check"])
    (copy / "media" / gone).unlink()
    c, engine = _client(copy, tmp_path)
    status = c.get("/api/admin/status", params={"token": read_admin_token(copy)}).json()
    assert any("corrupt media" in n for n in status["notes"]) and any("missing media" in n for n in status["notes"])
    dropped = {p["trial_id"] for p in status["pairs"] if p["dropped"]}
    assert m["trials"][0]["id"] in dropped and status["totals"]["dropped"] >= 2
    for t in read_tokens(copy)[:3]:
        assert _play(c, t["token"])["done"]
    assert not dropped & {v["trial_id"] for v in db.all_votes(engine)}


def test_crowd_participant_gets_a_slot_resumes_and_full_study_refuses(study_dir, tmp_path):
    c, engine = _client(study_dir, tmp_path, completion_url="https://example.org/done?cc=X")
    s = c.get("/api/session", params={"PROLIFIC_PID": "abc123"}).json()
    assert c.get("/api/session", params={"PROLIFIC_PID": "abc123"}).json()["token"] == s["token"]
    end = _play(c, s["token"])
    assert end["done"] and end["completion_url"] == "https://example.org/done?cc=X"
    n = len(load_manifest(study_dir)["slots"])
    for i in range(n - 1):
        assert c.get("/api/session", params={"PROLIFIC_PID": f"p{i}"}).status_code == 200
    assert c.get("/api/session", params={"PROLIFIC_PID": "late"}).status_code == 409
    assert c.get("/api/next", params={"token": read_tokens(study_dir)[0]["token"]}).status_code == 409


def test_votes_export_then_import_adds_nothing_and_malformed_rows_are_refused_one_line_each(study_dir, tmp_path):
    c, engine = _client(study_dir, tmp_path)
    for t in read_tokens(study_dir)[:2]:
        _play(c, t["token"])
    manifest = load_manifest(study_dir)
    text = c.get("/api/admin/votes.csv", params={"token": read_admin_token(study_dir)}).text
    assert text == votes_csv_text(manifest, db.all_votes(engine))
    (tmp_path / "v.csv").write_text(text)
    n = len(db.all_votes(engine))
    got = import_votes(engine, manifest, tmp_path / "v.csv")
    assert got == {"rows": n, "added": 0, "duplicates": n, "refused": []}
    other = db.open_db(f"sqlite:///{tmp_path / 'other.db'}")  # the same file into an empty database: all of it
    assert import_votes(other, manifest, tmp_path / "v.csv")["added"] == n
    p = next(t for t in manifest["trials"] if not t["check"])
    good = f"x1,{p['sample_id']},{p['reference']},{p['baseline']},{p['question']},tie"
    bad = ["x1,nosuch,videoshop,bdia,editing_quality,reference", f"x1,{p['sample_id']},videoshop,bdia,nope,reference",
           f"x2,{p['sample_id']},videoshop,bdia,editing_quality,maybe", f",{p['sample_id']},videoshop,bdia,editing_quality,tie",
           f"x3,{p['sample_id']},videoshop,bdia,editing_quality,tie,extra,extra,extra,extra,extra,extra,extra,extra,extra"]
    (tmp_path / "in.csv").write_text("rater_id,sample_id,reference,baseline,question,preferred\n"
                                     + "\n".join([good] + bad) + "\n")
    got = import_votes(engine, manifest, tmp_path / "in.csv")
    assert got["added"] == 1 and len(got["refused"]) == len(bad)
    assert [line.split(":")[1] for line in got["refused"]] == ["3", "4", "5", "6", "7"]  # the row's line
    assert import_votes(engine, manifest, tmp_path / "in.csv")["added"] == 0
    (tmp_path / "cols.csv").write_text("rater,sample\n1,2\n")
    with pytest.raises(ValueError, match="missing column"):
        import_votes(engine, manifest, tmp_path / "cols.csv")


def test_sigkill_mid_study_loses_no_vote_and_raters_resume(study_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'votes.db'}"
    manifest = load_manifest(study_dir)
    server = ServerProcess(study_dir, url).start()
    tokens = [t["token"] for t in read_tokens(study_dir)[:2]]
    try:
        import httpx

        with httpx.Client(base_url=server.url, timeout=30) as c:
            acked = []
            for tok in tokens:
                for _ in range(3):
                    t = c.get("/api/next", params={"token": tok}).json()["trial"]
                    assert c.post("/api/vote", json={"token": tok, "trial_id": t["id"], "choice": "right"}).json()["stored"]
                    acked.append(t["id"])
        server.kill(9)  # SIGKILL: no shutdown handler runs
        server.start()
        engine = db.open_db(url)
        assert len(db.all_votes(engine)) == 6  # every acknowledged vote survived
        results = [play_rater(server.url, manifest, {"token": tok}, Profile(), seed=i) for i, tok in enumerate(tokens)]
        assert [r["stored"] for r in results] == [r["total"] - 3 for r in results]  # resumed after the 3 done
        votes = db.all_votes(engine)
        assert len(votes) == sum(r["total"] for r in results)
        assert max(Counter((v["rater_id"], v["trial_id"]) for v in votes).values()) == 1
    finally:
        server.stop()


def test_fifty_concurrent_raters_over_loopback_no_vote_lost_or_doubled(tmp_path):
    make_results(tmp_path / "res", n_samples=5, failed=None)
    m = build_study([tmp_path / "res"], tmp_path / "st", trials_per_rater=5, raters_per_pair=13, attention_rate=0.2,
                    lab_raters=0)
    assert len(m["slots"]) >= 50
    url = f"sqlite:///{tmp_path / 'votes.db'}"
    server = ServerProcess(tmp_path / "st", url).start()
    try:
        ids = [{"PROLIFIC_PID": f"load{i:02d}"} for i in range(50)]
        results = run_population(server.url, m, ids, seed=2, replay_every=2)
    finally:
        server.stop()
    votes = db.all_votes(db.open_db(url))
    assert all(r["stored"] == r["total"] for r in results) and sum(r["replays"] for r in results) > 50
    assert len(votes) == sum(r["total"] for r in results)
    assert max(Counter((v["rater_id"], v["trial_id"]) for v in votes).values()) == 1


def test_pages_forbid_other_origins_and_inline_script(study_dir, tmp_path):
    c, _ = _client(study_dir, tmp_path)
    for path in ("/rate", "/admin", "/static/rate.js"):
        r = c.get(path)
        assert r.status_code == 200 and "script-src" not in r.headers["content-security-policy"]
        assert r.headers["content-security-policy"].startswith("default-src 'self'")  # no CDN, no inline script
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "http" not in c.get("/rate").text and "<script>" not in c.get("/rate").text  # local assets only
