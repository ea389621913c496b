"""Study design: pairs from results, sides balanced per rater, each pair seen by k distinct raters, attention checks
at the configured rate with known answers, determinism from the seed, failed samples left out and counted."""

import json
from collections import Counter

import numpy as np
import pytest

from _study_data import make_results
from videoshop_bench.experiments.study.assignment import assign_slots, checks_per_rater, spread_pairs
from videoshop_bench.experiments.study.design import StudyError, build_study, load_manifest, read_tokens, sha256_of, verify_media


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("res"))


@pytest.mark.parametrize("n_pairs,k,per_rater", [(24, 3, 9), (7, 2, 20), (50, 5, 11), (13, 1, 4)])
def test_every_pair_is_seen_by_k_distinct_raters_and_loads_differ_by_at_most_one(n_pairs, k, per_rater):
    ids = [f"p{i}" for i in range(n_pairs)]
    slots = spread_pairs(ids, k, per_rater, np.random.default_rng(0))
    counts = Counter(p for s in slots for p in s)
    assert set(counts) == set(ids) and set(counts.values()) == {k}
    assert all(len(set(s)) == len(s) for s in slots)  # never the same pair twice for one rater
    loads = [len(s) for s in slots]
    assert max(loads) <= min(per_rater, n_pairs) and max(loads) - min(loads) <= 1


def test_sides_are_balanced_per_rater_and_checks_come_at_the_configured_rate():
    rng = np.random.default_rng(1)
    pairs, checks = [f"p{i}" for i in range(40)], [f"c{i}" for i in range(6)]
    slots = assign_slots(pairs, checks, raters_per_pair=3, trials_per_rater=10, attention_rate=0.2, rng=rng)
    assert checks_per_rater(10, 0.2) == 2 and checks_per_rater(10, 0.01) == 1 and checks_per_rater(10, 0) == 0
    lefts = []
    for s in slots:
        sides = Counter(a["left"] for a in s)
        assert abs(sides["reference"] - sides["baseline"]) <= 1
        assert sum(a["trial"].startswith("c") for a in s) == 2 and not s[0]["trial"].startswith("c")
        lefts += [a["left"] for a in s]
    assert sum(x == "reference" for x in lefts) / len(lefts) == pytest.approx(0.5, abs=0.05)
    assert Counter(a["trial"] for s in slots for a in s if a["trial"].startswith("p")) == {p: 3 for p in pairs}


def test_study_from_results_pairs_checks_media_and_left_out_failures(results, tmp_path):
    m = build_study([results], tmp_path / "st", trials_per_rater=6, raters_per_pair=2, attention_rate=0.2, seed=3)
    pairs = [t for t in m["trials"] if not t["check"]]
    # 4 samples x (bdia) + 3 samples x (rave: s03 failed) = 7 pairs per question
    assert len(pairs) == 14 and {p["question"] for p in pairs} == {"editing_quality", "video_quality"}
    assert m["left_out"]["n_failed"] == 1 and any("rave/s03" in n for n in m["left_out"]["notes"])
    assert not any(p["baseline"] == "rave" and p["sample_id"] == "s03" for p in pairs)
    assert "rest of the source" in m["questions"]["editing_quality"]["text"]  # exact wording recorded
    checks = [t for t in m["trials"] if t["check"]]
    assert {c["check"] for c in checks} == {"unedited_source", "shuffled_frames"} and len(checks) == 8
    for c in checks:
        if c["check"] == "unedited_source":
            assert c["videos"]["baseline"] == c["source"]
        assert c["videos"]["reference"] != c["videos"]["baseline"]
    for name, meta in m["media"].items():  # content-addressed, hashes right
        assert sha256_of(tmp_path / "st" / "media" / name) == meta["sha256"] and name.startswith(meta["sha256"][:24])
    assert verify_media(tmp_path / "st", m) == (set(), [])
    assert len(read_tokens(tmp_path / "st")) == len(m["slots"])
    assert load_manifest(tmp_path / "st") == json.loads(json.dumps(m))


def test_shuffled_frames_decoy_is_a_derangement_of_the_reference_output(results, tmp_path):
    from videoshop.video_io import read_video

    m = build_study([results], tmp_path / "st", trials_per_rater=6, raters_per_pair=1, attention_rate=0.2)
    c = next(t for t in m["trials"] if t["check"] == "shuffled_frames")
    good = read_video(tmp_path / "st" / "media" / c["videos"]["reference"])[0].astype(float)
    bad = read_video(tmp_path / "st" / "media" / c["videos"]["baseline"])[0].astype(float)
    assert good.shape == bad.shape
    same_place = [np.abs(good[i] - bad[i]).mean() < 2 for i in range(len(good))]  # lossy mp4: tolerance 2 levels
    assert not any(same_place)
    matched = [min(range(len(bad)), key=lambda j: np.abs(good[i] - bad[j]).mean()) for i in range(len(good))]
    assert sorted(matched) == list(range(len(good)))  # the same frames, another order


def test_same_config_gives_the_same_study_another_seed_another(results, tmp_path):
    kw = dict(trials_per_rater=5, raters_per_pair=2, attention_rate=0.2)
    a = build_study([results], tmp_path / "a", seed=7, **kw)
    b = build_study([results], tmp_path / "b", seed=7, **kw)
    c = build_study([results], tmp_path / "c", seed=8, **kw)
    strip = lambda m: {k: v for k, v in m.items() if k != "runs"}  # noqa: E731
    assert strip(a) == strip(b) and a["slots"] != c["slots"]
    assert read_tokens(tmp_path / "a") != read_tokens(tmp_path / "b")  # tokens are secrets, not seeded


def test_bad_requests_name_the_key(results, tmp_path):
    with pytest.raises(StudyError, match="study.reference=nosuch"):
        build_study([results], tmp_path / "x", reference="nosuch")
    with pytest.raises(StudyError, match="study.baselines: fatezero"):
        build_study([results], tmp_path / "x", baselines=["fatezero"])
    with pytest.raises(StudyError, match="study.runs: .*nowhere"):
        build_study([tmp_path / "nowhere"], tmp_path / "x")
    build_study([results], tmp_path / "y", baselines=["bdia"])
    with pytest.raises(StudyError, match="already there"):
        build_study([results], tmp_path / "y")
