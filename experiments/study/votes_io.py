"""Votes out and in as CSV.

Export: one row per vote, ``rater_id,sample_id,reference,baseline,question,preferred`` (the import format) followed
by ``trial_id,check,dataset,left,choice,response_ms,source,created_at``. Import: the six first columns are required
(``preferred`` is reference, baseline or tie; ``question`` the question's config name), ``trial_id`` is used when
present (attention checks need it); a malformed row is refused with one line naming it and the rest is imported;
a vote already stored (same rater and trial) is not added again, so importing a file twice adds nothing.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

from . import db

IMPORT_COLUMNS = ("rater_id", "sample_id", "reference", "baseline", "question", "preferred")
EXPORT_COLUMNS = IMPORT_COLUMNS + ("trial_id", "check", "dataset", "left", "choice", "response_ms", "source",
                                   "created_at")


def vote_rows(manifest: dict, votes: list[dict]) -> list[dict]:
    """Votes joined with their trials, in EXPORT_COLUMNS."""
    trials = {t["id"]: t for t in manifest["trials"]}
    rows = []
    for v in votes:
        t = trials.get(v["trial_id"], {})
        rows.append({"rater_id": v["rater_id"], "sample_id": t.get("sample_id", ""),
                     "reference": t.get("reference", ""), "baseline": t.get("baseline") or "",
                     "question": t.get("question", ""), "preferred": v["preferred"], "trial_id": v["trial_id"],
                     "check": t.get("check") or "", "dataset": t.get("dataset", ""), "left": v.get("left") or "",
                     "choice": v.get("choice") or "", "response_ms": v.get("response_ms"),
                     "source": v.get("source", ""), "created_at": v.get("created_at", "")})
    return rows


def votes_csv_text(manifest: dict, votes: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in vote_rows(manifest, votes):
        w.writerow({k: "" if r[k] is None else r[k] for k in EXPORT_COLUMNS})
    return buf.getvalue()


def _resolve_trial(row: dict, manifest: dict, trials: dict, by_key: dict) -> tuple[Optional[str], Optional[str]]:
    """(trial id, None) or (None, why the row is refused)."""
    missing = [c for c in IMPORT_COLUMNS if not (row.get(c) or "").strip() and not (c == "baseline" and row.get("trial_id"))]
    if missing:
        return None, f"empty {', '.join(missing)}"
    if row["preferred"].strip() not in db.PREFERRED:
        return None, f"preferred={row['preferred']!r}: must be reference, baseline or tie"
    if row["question"].strip() not in manifest["questions"]:
        return None, f"question={row['question']!r}: not a question of this study ({', '.join(manifest['questions'])})"
    tid = (row.get("trial_id") or "").strip()
    if tid:
        t = trials.get(tid)
        if t is None:
            return None, f"trial_id={tid!r}: not a trial of this study"
        if (t["sample_id"], t["question"]) != (row["sample_id"].strip(), row["question"].strip()):
            return None, f"trial_id={tid!r}: its sample and question differ from the row's"
        return tid, None
    key = tuple(row[c].strip() for c in ("sample_id", "reference", "baseline", "question"))
    found = by_key.get(key, [])
    if len(found) != 1:
        return None, (f"no pair {'/'.join(key)} in this study" if not found else
                      f"pair {'/'.join(key)} is ambiguous (several datasets): add a trial_id column")
    return found[0], None


def import_votes(engine, manifest: dict, path: str | Path) -> dict:
    """Import the votes of the CSV ``path``; returns counts and one line per refused row."""
    trials = {t["id"]: t for t in manifest["trials"]}
    by_key: dict[tuple, list[str]] = {}
    for t in manifest["trials"]:
        if not t.get("check"):
            by_key.setdefault((t["sample_id"], t["reference"], t["baseline"], t["question"]), []).append(t["id"])
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            lacking = [c for c in IMPORT_COLUMNS if c not in header]
            if lacking:
                raise ValueError(f"{path}: missing column(s) {', '.join(lacking)} (needs {','.join(IMPORT_COLUMNS)})")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"study.votes={path}: unreadable ({e})") from None
    added, duplicates, refused = 0, 0, []
    for i, row in enumerate(rows, start=2):  # line 1 is the header
        if None in row:
            refused.append(f"{path}:{i}: more fields than columns")
            continue
        tid, why = _resolve_trial(row, manifest, trials, by_key)
        if why:
            refused.append(f"{path}:{i}: {why}")
            continue
        if db.record_vote(engine, row["rater_id"].strip(), tid, row["preferred"].strip(), source="import"):
            added += 1
        else:
            duplicates += 1
    return {"rows": len(rows), "added": added, "duplicates": duplicates, "refused": refused}
