"""Raters and votes in a real database (SQLAlchemy Core): SQLite by default, any SQLAlchemy URL (PostgreSQL) works.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed vote survives the process being killed) and a busy
timeout; every vote is one transaction; ``UNIQUE(rater_id, trial_id)`` makes a double click or a replayed request
count once. The schema carries a version (table ``meta``); a database of another version is refused.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Optional

from sqlalchemy import (Column, Float, Integer, MetaData, String, Table, UniqueConstraint, create_engine, event,
                        insert, select, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

DB_SCHEMA_VERSION = 1
PREFERRED = ("reference", "baseline", "tie")

metadata = MetaData()
meta = Table("meta", metadata, Column("key", String(64), primary_key=True), Column("value", String(256)))
raters = Table(
    "raters", metadata,
    Column("rater_id", String(128), primary_key=True),
    Column("token", String(64), unique=True, nullable=False),
    Column("slot", Integer, unique=True, nullable=True),  # null until the rater first opens the study
    Column("source", String(16), nullable=False),  # lab | crowd | import
    Column("created_at", String(32), nullable=False),
)
votes = Table(
    "votes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rater_id", String(128), nullable=False, index=True),
    Column("trial_id", String(32), nullable=False),
    Column("preferred", String(16), nullable=False),  # reference | baseline | tie
    Column("left", String(16), nullable=True),  # which side the reference was shown on (web votes)
    Column("choice", String(8), nullable=True),  # left | right | tie, as clicked
    Column("response_ms", Float, nullable=True),
    Column("source", String(16), nullable=False),  # web | import
    Column("created_at", String(32), nullable=False),
    UniqueConstraint("rater_id", "trial_id", name="one_vote_per_rater_and_trial"),
)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def default_url(study_dir: str | Path) -> str:
    return f"sqlite:///{Path(study_dir).resolve() / 'votes.db'}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def open_db(url: str) -> Engine:
    """An engine on ``url`` with the schema created (or checked: a database of another schema version is refused)."""
    sqlite = url.startswith("sqlite")
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30} if sqlite else {},
                           pool_pre_ping=not sqlite)
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    metadata.create_all(engine)
    with engine.begin() as c:
        got = c.execute(select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
        if got is None:
            try:
                c.execute(insert(meta).values(key="schema_version", value=str(DB_SCHEMA_VERSION)))
            except IntegrityError:  # another process created it at the same moment
                pass
        elif int(got) != DB_SCHEMA_VERSION:
            raise ValueError(f"study.db={url}: schema version {got}, this code writes {DB_SCHEMA_VERSION}")
    return engine


# ---------------------------------------------------------------------------------------------- raters
def add_rater(engine: Engine, rater_id: str, token: str, slot: Optional[int], source: str) -> bool:
    """Register a rater (no-op when the id is already there); True when added."""
    try:
        with engine.begin() as c:
            c.execute(insert(raters).values(rater_id=rater_id, token=token, slot=slot, source=source, created_at=now()))
        return True
    except IntegrityError:
        return False


def rater_by_token(engine: Engine, token: str) -> Optional[dict]:
    if not token:
        return None
    with engine.connect() as c:
        row = c.execute(select(raters).where(raters.c.token == token)).mappings().first()
    return dict(row) if row else None


def rater_by_id(engine: Engine, rater_id: str) -> Optional[dict]:
    with engine.connect() as c:
        row = c.execute(select(raters).where(raters.c.rater_id == rater_id)).mappings().first()
    return dict(row) if row else None


def taken_slots(engine: Engine) -> set[int]:
    with engine.connect() as c:
        return {r[0] for r in c.execute(select(raters.c.slot).where(raters.c.slot.is_not(None)))}


def seat(engine: Engine, rater_id: str, slot: int, token: Optional[str] = None, source: str = "crowd") -> bool:
    """Give ``rater_id`` the rater slot ``slot`` in one transaction: a new rater (``token`` given) is inserted with
    it, a registered one without a slot is updated. False when the slot (or the new id) is already taken: the unique
    keys settle races between processes."""
    try:
        with engine.begin() as c:
            if token is not None:
                c.execute(insert(raters).values(rater_id=rater_id, token=token, slot=slot, source=source,
                                                created_at=now()))
                return True
            done = c.execute(update(raters).where(raters.c.rater_id == rater_id, raters.c.slot.is_(None))
                             .values(slot=slot))
            return done.rowcount == 1
    except IntegrityError:
        return False


def all_raters(engine: Engine) -> list[dict]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(select(raters).order_by(raters.c.created_at)).mappings()]


# ---------------------------------------------------------------------------------------------- votes
def record_vote(engine: Engine, rater_id: str, trial_id: str, preferred: str, left: Optional[str] = None,
                choice: Optional[str] = None, response_ms: Optional[float] = None, source: str = "web") -> bool:
    """Store one vote in its own transaction; False (nothing stored) when this rater already voted on this trial."""
    if preferred not in PREFERRED:
        raise ValueError(f"preferred={preferred!r}: must be one of {', '.join(PREFERRED)}")
    try:
        with engine.begin() as c:
            c.execute(insert(votes).values(rater_id=rater_id, trial_id=trial_id, preferred=preferred, left=left,
                                           choice=choice, response_ms=response_ms, source=source, created_at=now()))
        return True
    except IntegrityError:
        return False


def voted_trials(engine: Engine, rater_id: str) -> set[str]:
    with engine.connect() as c:
        return {r[0] for r in c.execute(select(votes.c.trial_id).where(votes.c.rater_id == rater_id))}


def all_votes(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(select(votes).order_by(votes.c.id)).mappings()]
