"""Who sees what: pairs spread over raters (each pair seen by k distinct raters), attention checks mixed in, sides
randomised per trial and balanced per rater. Pure functions of ids, sizes and a numpy Generator."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def checks_per_rater(trials_per_rater: int, attention_rate: float) -> int:
    """round(rate x trials), at least one when the rate is positive, never all of a rater's trials."""
    if attention_rate <= 0:
        return 0
    return int(min(max(1, round(attention_rate * trials_per_rater)), trials_per_rater - 1))


def spread_pairs(pair_ids: Sequence[str], raters_per_pair: int, per_rater: int, rng: np.random.Generator) -> list[list[str]]:
    """Slots of at most ``per_rater`` pairs such that every pair is in exactly ``raters_per_pair`` distinct slots.

    Greedy: the k copies of each pair, in a random order, each go to the least-filled slot that does not hold that
    pair yet (ties broken at random). The number of slots is ceil(P k / per_rater), with ``per_rater`` capped at P
    so that k distinct slots exist for every pair; loads then differ by at most one.
    """
    n = len(pair_ids)
    if n == 0 or raters_per_pair <= 0:
        return []
    per_rater = max(1, min(per_rater, n))
    n_slots = max(raters_per_pair, math.ceil(n * raters_per_pair / per_rater))
    slots: list[list[str]] = [[] for _ in range(n_slots)]
    members: list[set] = [set() for _ in range(n_slots)]
    for rep in range(raters_per_pair):
        for i in rng.permutation(n):
            pid = pair_ids[i]
            free = [s for s in range(n_slots) if pid not in members[s]]
            load = min(len(slots[s]) for s in free)
            best = [s for s in free if len(slots[s]) == load]
            s = best[int(rng.integers(len(best)))]
            slots[s].append(pid)
            members[s].add(pid)
    return [[slot[i] for i in rng.permutation(len(slot))] for slot in slots]


def balanced_sides(n: int, rng: np.random.Generator) -> list[str]:
    """Which output goes on the left for each of a rater's ``n`` trials: half ``reference``, half ``baseline``
    (one more of a random side when n is odd), in random order."""
    first = "reference" if rng.random() < 0.5 else "baseline"
    other = "baseline" if first == "reference" else "reference"
    sides = [first] * ((n + 1) // 2) + [other] * (n // 2)
    return [sides[i] for i in rng.permutation(n)]


def mix_in_checks(slot: list[str], checks: list[str], rng: np.random.Generator) -> list[str]:
    """The slot's trials with its checks at random positions (never first, so the rater has seen a real trial)."""
    out = list(slot)
    for c in checks:
        out.insert(int(rng.integers(1, len(out) + 1)) if out else 0, c)
    return out


def assign_slots(pair_ids: Sequence[str], check_ids: Sequence[str], raters_per_pair: int, trials_per_rater: int,
                 attention_rate: float, rng: np.random.Generator) -> list[list[dict]]:
    """Every rater slot as a list of ``{"trial": id, "left": "reference"|"baseline"}``.

    Each slot holds ``checks_per_rater`` attention checks (cycled through ``check_ids`` so that all are used about
    equally) and up to ``trials_per_rater`` minus that many pairs.
    """
    n_checks = checks_per_rater(trials_per_rater, attention_rate) if check_ids else 0
    pair_slots = spread_pairs(pair_ids, raters_per_pair, trials_per_rater - n_checks, rng)
    order = [check_ids[i] for i in rng.permutation(len(check_ids))] if check_ids else []
    out, k = [], 0
    for slot in pair_slots:
        mine = []
        for _ in range(n_checks):
            mine.append(order[k % len(order)])
            k += 1
        trials = mix_in_checks(slot, list(dict.fromkeys(mine)), rng)
        out.append([{"trial": t, "left": side} for t, side in zip(trials, balanced_sides(len(trials), rng))])
    return out
