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
import threading
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
CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")


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


class Service:
    """What the routes do, on plain arguments: rater sessions, the next trial, votes, media, the admin's views."""

    def __init__(self, study: Study, engine, admin_token: str, crowd_param: str = "PROLIFIC_PID",
                 completion_url: Optional[str] = None, allow_tie: bool = True):
        self.study, self.engine, self.admin_token = study, engine, admin_token
        self.crowd_param, self.completion_url, self.allow_tie = crowd_param, completion_url, allow_tie
        self.seated_raters: dict[str, dict] = {}  # token -> seated rater (a seat never changes)
        self.seating = threading.Lock()  # raters arriving at once are seated one after the other in this process
        self.taken = db.taken_slots(engine)
        for r in read_tokens(study.dir):  # lab raters, seated on their first visit
            db.add_rater(engine, r["rater_id"], r["token"], None, "lab")

    def seat(self, rater_id: str, token: Optional[str] = None) -> dict:
        """Seat a rater in the first free slot (a new crowd rater when ``token`` is given); 409 when the study is full.
        The lock serialises this process's raters; the database's unique keys settle races with other processes."""
        with self.seating:
            for _ in range(len(self.study.slots) + 1):
                known = db.rater_by_id(self.engine, rater_id)
                if known is not None and known["slot"] is not None:
                    return known
                free = next((s for s in range(len(self.study.slots)) if s not in self.taken), None)
                if free is None:
                    raise HTTPException(409, "the study is full: thank you, no more trials are open")
                if db.seat(self.engine, rater_id, free, token if known is None else None):
                    self.taken.add(free)
                    return db.rater_by_id(self.engine, rater_id)
                self.taken = db.taken_slots(self.engine)  # another process took it: look again
        raise HTTPException(503, "could not find a free slot, try again")

    def rater(self, token: str) -> dict:
        if token in self.seated_raters:
            return self.seated_raters[token]
        rater = db.rater_by_token(self.engine, token)
        if rater is None:
            raise HTTPException(401, "unknown token" if token else "missing token")
        rater = rater if rater["slot"] is not None else self.seat(rater["rater_id"])
        self.seated_raters[token] = rater
        return rater

    def session(self, token: str, pid: str) -> dict:
        """A lab token, or a crowd participant id (first visit: a free slot and a new token)."""
        if token:
            rater = self.rater(token)
        elif pid:
            if len(pid) > 100 or not pid.isprintable():
                raise HTTPException(400, f"{self.crowd_param}: not a participant id")
            rater = self.seat(f"{self.crowd_param}:{pid}", token=secrets.token_urlsafe(16))
        else:
            raise HTTPException(401, "missing token")
        m = self.study.manifest
        return {"token": rater["token"], "instructions": m.get("instructions", ""), "allow_tie": self.allow_tie,
                "questions": m["questions"]}

    def next_trial(self, token: str) -> dict:
        rater = self.rater(token)
        trials, done = self.study.slot_trials(rater["slot"]), db.voted_trials(self.engine, rater["rater_id"])
        todo = [a for a in trials if a["trial"] not in done]
        prog = {"done": len(trials) - len(todo), "total": len(trials)}
        if not todo:
            return {"done": True, "progress": prog, "completion_url": self.completion_url}
        return {"done": False, "progress": prog, "trial": _trial_view(self.study, todo[0])}

    def vote(self, v: Vote) -> dict:
        rater = self.rater(v.token)
        if v.choice not in CHOICES or (v.choice == "tie" and not self.allow_tie):
            raise HTTPException(422, f"choice={v.choice!r}: must be left, right{' or tie' if self.allow_tie else ''}")
        a = next((a for a in self.study.slot_trials(rater["slot"]) if a["trial"] == v.trial_id), None)
        if a is None:
            raise HTTPException(403, f"trial {v.trial_id!r} is not assigned to this rater")
        ms = v.response_ms if v.response_ms is not None and 0 <= v.response_ms < 1e9 else None
        stored = db.record_vote(self.engine, rater["rater_id"], v.trial_id, self.study.preferred(v.choice, a["left"]),
                                left=a["left"], choice=v.choice, response_ms=ms, source="web")
        return {"stored": stored}

    def media_path(self, name: str) -> Path:
        """A file of the study's media folder listed in the manifest; anything else (traversal included) is 404."""
        root = self.study.dir / MEDIA
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file() or path.name not in self.study.manifest["media"]:
            raise HTTPException(404, "no such media file")
        return path

    def check_admin(self, token: str) -> None:
        if not token or not secrets.compare_digest(token, self.admin_token):
            raise HTTPException(401, "admin token required")

    def admin_status(self, token: str) -> dict:
        from .progress import study_status

        self.check_admin(token)
        return study_status(self.study, db.all_raters(self.engine), db.all_votes(self.engine))

    def votes_csv(self, token: str) -> str:
        from .votes_io import votes_csv_text

        self.check_admin(token)
        return votes_csv_text(self.study.manifest, db.all_votes(self.engine))


def create_app(study: Study, engine, admin_token: str, crowd_param: str = "PROLIFIC_PID",
               completion_url: Optional[str] = None, allow_tie: bool = True) -> FastAPI:
    """The app: the pages, the raters' API, media, the admin's API (see the module docstring)."""
    svc = Service(study, engine, admin_token, crowd_param, completion_url, allow_tie)
    app = FastAPI(title=f"videoshop-bench study: {study.manifest['name']}", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        """Everything the pages use is served here: no other origin, no inline script, no framing."""
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    page = lambda name: FileResponse(STATIC / name, headers={"Cache-Control": "no-store"})  # noqa: E731

    app.get("/")(lambda: PlainTextResponse("videoshop-bench study: open the personal link you were given."))
    app.get("/rate")(lambda: page("rate.html"))
    app.get("/admin")(lambda: page("admin.html"))

    @app.get("/api/session")
    def session(request: Request, token: str = ""):
        return svc.session(token, request.query_params.get(crowd_param, "").strip())

    app.get("/api/next")(lambda token="": svc.next_trial(token))

    @app.post("/api/vote")
    def vote(v: Vote):
        return svc.vote(v)

    app.get("/media/{name:path}")(lambda name: FileResponse(svc.media_path(name),
                                                            headers={"Cache-Control": "private, max-age=3600"}))
    app.get("/api/admin/status")(lambda token="": JSONResponse(svc.admin_status(token)))
    app.get("/api/admin/votes.csv")(lambda token="": PlainTextResponse(
        svc.votes_csv(token), media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="votes.csv"'}))
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
    """``python -m videoshop_bench.experiments.study.server --dir STUDY [--db URL] [--port 8765]``: the server without Hydra."""
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
