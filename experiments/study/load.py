"""Load figure: N simulated raters (default 50) play a study concurrently over loopback against a real uvicorn
server process; prints the response-time percentiles and checks that no vote was lost or counted twice.

    python -m videoshop_bench.experiments.study.load --runs multirun/edit/paper_table2_smoke [--raters 50] [--trials 10]

The study is built from ``--runs`` into a temporary folder, with enough rater slots for every simulated rater; each
rater resends every second vote once (a double click), which must not be stored again. Votes are SIMULATED.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the study server exited at start")
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("the study server did not start")


def run_load(runs: list[str], n_raters: int = 50, trials: int = 10, port: int = 8799, seed: int = 0) -> dict:
    """Build, serve, play ``n_raters`` concurrently; returns latency percentiles (ms) and the vote checks."""
    from . import db
    from .design import build_study, collect_outputs, pick_methods
    from .simulate import run_population

    outputs, _ = collect_outputs(runs)
    ref, base = pick_methods(outputs, "videoshop", None)
    n_ref = len({o.sample_id for o in outputs if o.label == ref})
    n_pairs = 2 * n_ref * len(base)
    per_rater = min(trials - 2, n_pairs)
    k = math.ceil(n_raters * per_rater / n_pairs)
    with tempfile.TemporaryDirectory() as tmp:
        st = Path(tmp) / "study"
        m = build_study(runs, st, trials_per_rater=trials, raters_per_pair=k, attention_rate=0.2, seed=seed,
                        lab_raters=0)
        url, dburl = f"http://127.0.0.1:{port}", f"sqlite:///{Path(tmp) / 'votes.db'}"
        proc = subprocess.Popen([sys.executable, "-m", "videoshop_bench.experiments.study.server", "--dir", str(st), "--db", dburl,
                                 "--port", str(port)])
        try:
            _wait_up(url, proc)
            t0 = time.perf_counter()
            results = run_population(url, m, [{"PROLIFIC_PID": f"load{i:03d}"} for i in range(n_raters)],
                                     seed=seed, replay_every=2)
            wall = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        votes = db.all_votes(db.open_db(dburl))
    pairs = [x for r in results for x in r["latencies"]]
    lat = 1000 * np.array([s for _, s in pairs])
    by = {ep: np.percentile([1000 * s for e, s in pairs if e == ep], [50, 95]) for ep in dict.fromkeys(e for e, _ in pairs)}
    expected = sum(r["total"] for r in results)
    doubled = sum(c > 1 for c in Counter((v["rater_id"], v["trial_id"]) for v in votes).values())
    return {"by_endpoint": {ep: {"p50_ms": float(a), "p95_ms": float(b)} for ep, (a, b) in by.items()},"raters": n_raters, "requests": int(lat.size), "wall_s": wall, "votes_stored": len(votes),
            "votes_expected": expected, "replays_refused": sum(r["replays"] for r in results), "doubled": doubled,
            "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
            "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max())}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True)
    p.add_argument("--raters", type=int, default=50)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--port", type=int, default=8799)
    a = p.parse_args(argv)
    r = run_load(a.runs, a.raters, a.trials, a.port)
    print(f"{r['raters']} concurrent simulated raters, {r['requests']} requests in {r['wall_s']:.1f} s: response "
          f"time p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms; "
          f"votes stored {r['votes_stored']} of {r['votes_expected']}, {r['replays_refused']} replayed votes not "
          f"stored again, {r['doubled']} doubled")
    for ep, v in r["by_endpoint"].items():
        print(f"  {ep}: p50 {v['p50_ms']:.1f} ms, p95 {v['p95_ms']:.1f} ms")
    if r["votes_stored"] != r["votes_expected"] or r["doubled"]:
        raise SystemExit("error: votes lost or doubled")


if __name__ == "__main__":
    main()
