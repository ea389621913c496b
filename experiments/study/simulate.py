"""A scripted rater population, for tests, the load figure and the smoke demonstration. Its votes are SIMULATED,
never human: do not report them as a study's result.

An attentive simulated rater prefers the output whose "utility" is higher: the question's metric (``UTILITY``:
CLIP_tgt for editing quality, CLIP_TC for video quality) difference between the two outputs, plus logistic noise
on the scale of the median absolute difference; ties with a small probability; attention checks answered correctly.
An inattentive one clicks at random. Over HTTP the rater sees only what a browser sees (media URLs) and looks the
sides up in the manifest, as a person would by watching.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

import numpy as np

UTILITY = {"editing_quality": "clip_tgt", "video_quality": "clip_tc"}


@dataclass
class Profile:
    attentive: bool = True
    tie_rate: float = 0.05


def utility_scales(manifest: dict) -> dict[str, float]:
    """Per question: the median absolute metric difference over its pairs (the noise scale)."""
    out = {}
    for q in manifest["questions"]:
        m = UTILITY.get(q, "clip_tgt")
        d = [abs(t["metrics"]["reference"][m] - t["metrics"]["baseline"][m]) for t in manifest["trials"]
             if t["question"] == q and not t.get("check") and m in t["metrics"].get("reference", {})
             and m in t["metrics"].get("baseline", {})]
        out[q] = float(np.median(d)) if d and np.median(d) > 0 else 1.0
    return out


def simulated_preference(trial: dict, profile: Profile, scales: dict, rng: np.random.Generator) -> str:
    """reference | baseline | tie for one trial."""
    if not profile.attentive:
        return ["reference", "baseline", "tie"][int(rng.integers(3))]
    if trial.get("check"):
        return "reference"
    if rng.random() < profile.tie_rate:
        return "tie"
    m = UTILITY.get(trial["question"], "clip_tgt")
    ref, base = trial["metrics"].get("reference", {}), trial["metrics"].get("baseline", {})
    d = (ref.get(m, 0.0) - base.get(m, 0.0)) / scales.get(trial["question"], 1.0)
    return "reference" if d + rng.logistic() > 0 else "baseline"


def choice_for(view: dict, preferred: str, manifest_trial: dict) -> str:
    """The side to click for ``preferred`` given the page's left/right media URLs."""
    if preferred == "tie":
        return "tie"
    want = manifest_trial["videos"][preferred]
    return "left" if view["left"].endswith("/" + want) else "right"


def play_rater(base_url: str, manifest: dict, identity: dict, profile: Profile, seed: int, replay_every: int = 0,
               client=None) -> dict:
    """Play one rater through their slot over HTTP (``identity``: {"token": T} or {"PROLIFIC_PID": X}).
    ``replay_every``: resend every n-th vote once (a double click). Returns latencies (endpoint, s) and counts."""
    import httpx

    rng = np.random.default_rng(seed)
    trials, scales = {t["id"]: t for t in manifest["trials"]}, utility_scales(manifest)
    own = client is None
    client = client or httpx.Client(base_url=base_url, timeout=60)
    lat, stored, replays = [], 0, 0

    def timed(fn, path, **kw):
        t0 = time.perf_counter()
        r = fn(path, **kw)
        lat.append((path, time.perf_counter() - t0))
        r.raise_for_status()
        return r.json()

    try:
        token = timed(client.get, "/api/session", params=identity)["token"]
        while True:
            nxt = timed(client.get, "/api/next", params={"token": token})
            if nxt["done"]:
                break
            view = nxt["trial"]
            pref = simulated_preference(trials[view["id"]], profile, scales, rng)
            body = {"token": token, "trial_id": view["id"], "choice": choice_for(view, pref, trials[view["id"]]),
                    "response_ms": float(rng.uniform(800, 6000))}
            stored += timed(client.post, "/api/vote", json=body)["stored"]
            if replay_every and (stored % replay_every == 0):
                replays += 1
                assert timed(client.post, "/api/vote", json=body)["stored"] is False
    finally:
        if own:
            client.close()
    return {"token": token, "latencies": lat, "stored": stored, "replays": replays,
            "total": nxt["progress"]["total"]}


def run_population(base_url: str, manifest: dict, identities: list[dict], attentive_share: float = 0.9,
                   seed: int = 0, workers: Optional[int] = None, replay_every: int = 0) -> list[dict]:
    """Play every identity concurrently (one thread each, ``workers`` at most); rater i is inattentive with
    probability 1 - ``attentive_share`` (seeded)."""
    rng = np.random.default_rng(seed)
    profiles = [Profile(attentive=bool(rng.random() < attentive_share)) for _ in identities]
    with ThreadPoolExecutor(max_workers=workers or len(identities)) as pool:
        futures = [pool.submit(play_rater, base_url, manifest, ident, prof, seed + 1000 + i, replay_every)
                   for i, (ident, prof) in enumerate(zip(identities, profiles))]
        return [f.result() for f in futures]


def simulated_votes_csv(manifest: dict, rater_ids: list[str], path, seed: int = 0, attentive_share: float = 1.0) -> int:
    """Votes of simulated raters on every pair (no checks) in the import format, as collected elsewhere; returns
    the number of rows written."""
    import csv

    rng = np.random.default_rng(seed)
    scales = utility_scales(manifest)
    n = 0
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rater_id", "sample_id", "reference", "baseline", "question", "preferred"])
        for rid in rater_ids:
            prof = Profile(attentive=bool(rng.random() < attentive_share))
            for t in manifest["trials"]:
                if not t.get("check"):
                    w.writerow([rid, t["sample_id"], t["reference"], t["baseline"], t["question"],
                                simulated_preference(t, prof, scales, rng)])
                    n += 1
    return n
