"""The rater and admin web server (FastAPI on uvicorn; every asset is local, in ``static/``).

A rater opens ``/rate?token=T`` (a lab rater's personal token from ``tokens.csv``) or ``/rate?PROLIFIC_PID=X`` (a
crowd platform's participant id; the parameter name is configurable): the id gets the first free slot and a token,
and the same id later resumes the same slot on any device. The page asks ``/api/next`` for the next unanswered
trial and posts each answer to ``/api/vote``; the server stores it (one transaction, counted once per rater and
trial) and maps the clicked side back to reference/baseline, which the page never sees. ``/admin?token=A`` shows
progress per rater and pair and the attention-check failures; ``/api/admin/votes.csv`` exports every vote.
Media are served only from the study's ``media/`` folder.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from . import db
from .design import MEDIA, load_manifest, read_tokens, verify_media

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
CHOICES = ("left", "right", "tie")


class Study:
    """A loaded study: trials by id, rater slots, trials dropped for bad media (with notes)."""

    def __init__(self, study_dir: str | Path):
        self.dir = Path(study_dir).resolve()
        self.manifest = load_manifest(self.dir)
        self.trials = {t["id"]: t for t in self.manifest["trials"]}
        self.slots = self.manifest["slots"]
        self.dropped, self.notes = verify_media(self.dir, self.manifest)
        for n in self.notes:
            log.warning("study: %s", n)

    def slot_trials(self, slot: int) -> list[dict]:
        """The slot's trials in order, without dropped ones."""
        return [a for a in self.slots[slot] if a["trial"] not in self.dropped]

    def preferred(self, choice: str, left: str) -> str:
        """The clicked side as reference/baseline/tie, given which one was shown on the left."""
        if choice == "tie":
            return "tie"
        other = "baseline" if left == "reference" else "reference"
        return left if choice == "left" else other


class Vote(BaseModel):
    token: str
    trial_id: str
    choice: str
    response_ms: Optional[float] = None


def _trial_view(study: Study, a: dict) -> dict:
    """What the page shows for one assigned trial (the side names are never sent)."""
    t, q = study.trials[a["trial"]], study.manifest["questions"][study.trials[a["trial"]]["question"]]
    right = "baseline" if a["left"] == "reference" else "reference"
    return {"id": t["id"], "question_title": q.get("title", t["question"]), "question": q["text"],
            "instruction": t.get("instruction") or "", "source": f"/media/{t['source']}",
            "first_frame": f"/media/{t['first_frame']}", "left": f"/media/{t['videos'][a['left']]}",
            "right": f"/media/{t['videos'][right]}"}


def _progress(study: Study, engine, rater: dict) -> tuple[list[dict], set[str]]:
    return study.slot_trials(rater["slot"]), db.voted_trials(engine, rater["rater_id"])


def create_app(study: Study, engine, admin_token: str, crowd_param: str = "PROLIFIC_PID",
               completion_url: Optional[str] = None, allow_tie: bool = True) -> FastAPI:
    """The app; lab raters of ``tokens.csv`` are registered in the database at start (seated on first visit)."""
    for r in read_tokens(study.dir):
        db.add_rater(engine, r["rater_id"], r["token"], None, "lab")
    app = FastAPI(title=f"videoshop-bench study: {study.manifest['name']}", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def seated(rater: dict) -> dict:
        rater = db.take_slot(engine, rater["rater_id"], len(study.slots))
        if rater is None:
            raise HTTPException(409, "the study is full: thank you, no more trials are open")
        return rater

    def rater_or_401(token: str) -> dict:
        rater = db.rater_by_token(engine, token)
        if rater is None:
            raise HTTPException(401, "unknown token")
        return rater if rater["slot"] is not None else seated(rater)

    @app.get("/")
    def index():
        return PlainTextResponse("videoshop-bench study: open the personal link you were given (/rate?token=...).")

    @app.get("/rate")
    def rate_page():
        return FileResponse(STATIC / "rate.html", headers={"Cache-Control": "no-store"})

    @app.get("/admin")
    def admin_page():
        return FileResponse(STATIC / "admin.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/session")
    def session(request: Request, token: str = ""):
        """A lab token, or the crowd id in ``crowd_param`` (first visit: a free slot and a new token)."""
        pid = request.query_params.get(crowd_param, "").strip()
        if token:
            rater = rater_or_401(token)
        elif pid:
            if len(pid) > 100 or not pid.isprintable():
                raise HTTPException(400, f"{crowd_param}: not a participant id")
            rid = f"{crowd_param}:{pid}"
            db.add_rater(engine, rid, secrets.token_urlsafe(16), None, "crowd")
            rater = seated(db.rater_by_id(engine, rid))
        else:
            raise HTTPException(401, "missing token")
        return {"token": rater["token"], "instructions": study.manifest.get("instructions", ""),
                "allow_tie": allow_tie, "questions": study.manifest["questions"]}

    @app.get("/api/next")
    def next_trial(token: str = ""):
        rater = rater_or_401(token)
        trials, done = _progress(study, engine, rater)
        todo = [a for a in trials if a["trial"] not in done]
        prog = {"done": len(trials) - len(todo), "total": len(trials)}
        if not todo:
            return {"done": True, "progress": prog, "completion_url": completion_url}
        return {"done": False, "progress": prog, "trial": _trial_view(study, todo[0])}

    @app.post("/api/vote")
    def vote(v: Vote):
        rater = rater_or_401(v.token)
        if v.choice not in CHOICES or (v.choice == "tie" and not allow_tie):
            raise HTTPException(422, f"choice={v.choice!r}: must be left, right{' or tie' if allow_tie else ''}")
        trials = study.slot_trials(rater["slot"])
        a = next((a for a in trials if a["trial"] == v.trial_id), None)
        if a is None:
            raise HTTPException(403, f"trial {v.trial_id!r} is not assigned to this rater")
        ms = v.response_ms if v.response_ms is not None and 0 <= v.response_ms < 1e9 else None
        stored = db.record_vote(engine, rater["rater_id"], v.trial_id, study.preferred(v.choice, a["left"]),
                                left=a["left"], choice=v.choice, response_ms=ms, source="web")
        return {"stored": stored}

    @app.get("/media/{name:path}")
    def media(name: str):
        root = study.dir / MEDIA
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file() or path.name not in study.manifest["media"]:
            raise HTTPException(404, "no such media file")
        return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    def admin_or_401(token: str) -> None:
        if not token or not secrets.compare_digest(token, admin_token):
            raise HTTPException(401, "admin token required")

    @app.get("/api/admin/status")
    def admin_status(token: str = ""):
        admin_or_401(token)
        from .progress import study_status

        return JSONResponse(study_status(study, db.all_raters(engine), db.all_votes(engine)))

    @app.get("/api/admin/votes.csv")
    def admin_votes(token: str = ""):
        admin_or_401(token)
        from .votes_io import votes_csv_text

        return PlainTextResponse(votes_csv_text(study.manifest, db.all_votes(engine)), media_type="text/csv",
                                 headers={"Content-Disposition": 'attachment; filename="votes.csv"'})

    return app


def serve(study_dir: str | Path, db_url: Optional[str] = None, host: str = "127.0.0.1", port: int = 8765,
          admin_token: Optional[str] = None, crowd_param: str = "PROLIFIC_PID", completion_url: Optional[str] = None,
          allow_tie: bool = True, log_level: str = "warning") -> None:
    """Serve the study until interrupted (uvicorn)."""
    import uvicorn

    from .design import read_admin_token

    study = Study(study_dir)
    engine = db.open_db(db_url or db.default_url(study.dir))
    app = create_app(study, engine, admin_token or read_admin_token(study.dir), crowd_param, completion_url, allow_tie)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


def main(argv: Optional[list[str]] = None) -> None:
    """``python -m experiments.study.server --dir STUDY [--db URL] [--port 8765]``: the server without Hydra."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", required=True)
    p.add_argument("--db", default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--crowd-param", default="PROLIFIC_PID")
    p.add_argument("--completion-url", default=None)
    a = p.parse_args(argv)
    serve(a.dir, a.db, a.host, a.port, crowd_param=a.crowd_param, completion_url=a.completion_url)


if __name__ == "__main__":
    main()
