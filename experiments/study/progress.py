"""Live progress for the admin page: per rater, per pair, attention-check failures, dropped trials."""

from __future__ import annotations

from collections import Counter, defaultdict


def study_status(study, raters: list[dict], votes: list[dict]) -> dict:
    """Plain JSON: ``raters`` (done/total, checks answered/failed, last vote), ``pairs`` (votes vs target),
    ``check_failures`` (who chose the decoy or a tie on which check), ``notes`` (dropped trials), ``totals``."""
    trials = study.trials
    by_rater: dict[str, list[dict]] = defaultdict(list)
    for v in votes:
        by_rater[v["rater_id"]].append(v)
    rows, failures = [], []
    for r in raters:
        mine = by_rater.get(r["rater_id"], [])
        total = len(study.slot_trials(r["slot"])) if r["slot"] is not None else len(mine)
        checks = [v for v in mine if trials.get(v["trial_id"], {}).get("check")]
        failed = [v for v in checks if v["preferred"] != "reference"]
        failures += [{"rater_id": r["rater_id"], "trial_id": v["trial_id"], "check": trials[v["trial_id"]]["check"],
                      "answer": v["preferred"] if v["preferred"] == "tie" else "decoy"} for v in failed]
        rows.append({"rater_id": r["rater_id"], "source": r["source"], "slot": r["slot"], "done": len(mine),
                     "total": total, "checks": len(checks), "checks_failed": len(failed),
                     "last_vote": max((v["created_at"] for v in mine), default=None)})
    seen = {r["rater_id"] for r in raters}
    for rid, mine in by_rater.items():  # imported votes: raters without a slot
        if rid not in seen:
            rows.append({"rater_id": rid, "source": "import", "slot": None, "done": len(mine), "total": len(mine),
                         "checks": 0, "checks_failed": 0, "last_vote": max(v["created_at"] for v in mine)})
    per_pair = Counter(v["trial_id"] for v in votes)
    k = study.manifest["settings"]["raters_per_pair"]
    pairs = [{"trial_id": t["id"], "question": t["question"], "baseline": t["baseline"], "sample_id": t["sample_id"],
              "votes": per_pair.get(t["id"], 0), "target": k, "dropped": t["id"] in study.dropped}
             for t in study.manifest["trials"] if not t.get("check")]
    return {"name": study.manifest["name"], "reference": study.manifest["reference"], "raters": rows,
            "pairs": pairs, "check_failures": failures, "notes": study.notes,
            "totals": {"votes": len(votes), "raters": len(rows), "raters_started": len(by_rater),
                       "slots": len(study.slots),
                       "pairs": len(pairs), "pairs_complete": sum(p["votes"] >= k for p in pairs),
                       "check_failures": len(failures), "dropped": len(study.dropped)}}
