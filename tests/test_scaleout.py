"""Scaling out: claims, concurrent writers of one run folder, shards merged into the run's tables, sweeps whose jobs
run in other processes (submitit) ending in one combined table."""

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from videoshop_bench.datasets.base import shard_ids
from videoshop_bench.experiments.callbacks import CombineTables
from videoshop_bench.experiments.claims import ClaimBook, ClaimLost
from videoshop_bench.experiments.merge import main as merge_main, merge_run
from videoshop_bench.experiments.errors import ConfigError
from videoshop_bench.experiments.runner import Runner
from videoshop_bench.experiments.store import ResultStore
from videoshop.files import atomic_write_text, scratch_name

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
# the tiny model at its smallest useful size and one set metric (FVD on the tiny I3D stand-in) besides SSIM
TINY = ["model=tiny", "model.num_frames=4", "model.height=32", "model.width=64", "method.num_inference_steps=4",
        "logger=none", "metrics=none", "+metrics.ssim._target_=videoshop_bench.eval.fidelity.SourceSSIM",
        "+metrics.fvd._target_=videoshop_bench.eval.fvd.FVD", "+metrics.fvd.backbone=tiny", "save_mp4=false"]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", WANDB_MODE="offline", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
VOLATILE = ("seconds", "peak_mem_mb", "worker")  # what may differ between two runs of one sample
VOLATILE_INFO = ("timings",)  # the method's seconds per stage (info.timings)


def run_py(*overrides, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "run.py", *TINY, *overrides], cwd=ROOT, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def stable(rec: dict) -> dict:
    out = {k: v for k, v in rec.items() if k not in VOLATILE}
    if isinstance(out.get("info"), dict):
        out["info"] = {k: v for k, v in out["info"].items() if k not in VOLATILE_INFO}
    return out


# ---------------------------------------------------------------------------------------------- claims and store
def test_shards_are_disjoint_cover_all_and_reject_bad_indices():
    ids = [f"s{i}" for i in range(7)]
    parts = [shard_ids(ids, 3, i) for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(ids) and parts[0] == ["s0", "s3", "s6"]
    with pytest.raises(ValueError, match="dataset.shard=3"):
        shard_ids(ids, 3, 3)


def test_a_bad_shard_index_fails_in_one_line_naming_the_key(tmp_path):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, f"paths.output={tmp_path}", "dataset.num_shards=2", "dataset.shard=2"])
    with pytest.raises(ConfigError, match=r"^dataset.shard=2: must be in 0..1"):
        Runner(cfg)


def test_claims_are_exclusive_and_a_stale_claim_is_taken_over(tmp_path):
    a, b = ClaimBook(tmp_path, 5, 1), ClaimBook(tmp_path, 5, 1)
    claim = a.acquire("x")
    assert claim is not None and b.acquire("x") is None
    claim.release()
    again = b.acquire("x")
    assert again is not None
    again.release()
    # a claim from another host whose heartbeat stopped longer ago than stale_after_s is taken over
    path = a.path("y")
    path.write_text(json.dumps({"token": "t", "host": "elsewhere", "pid": 1, "time": 0}))
    assert b.acquire("y") is None  # fresh heartbeat: its holder may be alive
    os.utime(path, (time.time() - 60, time.time() - 60))
    taken = b.acquire("y")
    assert taken is not None and json.loads(path.read_text())["token"] == taken.token
    taken.release()
    assert not path.exists()


def test_a_killed_holder_is_seen_at_once_and_a_slow_one_loses_its_claim(tmp_path):
    # a real process takes a claim and is killed: same host, dead pid -> stale without waiting for the timeout
    code = (f"import importlib.util, time; s = importlib.util.spec_from_file_location('c', {str(ROOT / 'experiments/claims.py')!r}); "
            f"m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            f"c = m.ClaimBook({str(tmp_path)!r}, 300, 10).acquire('k'); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    book = ClaimBook(tmp_path, 300, 10)
    assert book.acquire("k") is None
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    claim = book.acquire("k")
    assert claim is not None
    # a holder judged dead while still working learns it at its next write and must not write
    slow = ClaimBook(tmp_path, 300, 10)
    mine = slow.acquire("z")
    os.utime(mine.path, (time.time() - 1000, time.time() - 1000))
    store = ResultStore(tmp_path / "run", claims=slow)
    thief = ClaimBook(tmp_path, 300, 10).acquire("z")
    assert thief is not None
    with pytest.raises(ClaimLost):
        store.write("z", {"sample_id": "z"})
    assert store.load_record("z") is None
    for c in (claim, mine, thief):
        c.release()


def test_concurrent_writers_of_one_sample_and_one_table_never_leave_a_broken_file(tmp_path):
    store = ResultStore(tmp_path)
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    errors = []

    def writer(i):
        try:
            for j in range(15):
                store.write("s", {"sample_id": "s", "writer": i, "j": j}, frames, save_mp4=False,
                            features={"fvd/edited": np.full(4, i, float)}, features_meta={"fvd": "videoshop_bench.eval.fvd.FVD"})
                atomic_write_text(tmp_path / "results.csv", f"writer,{i}\n" * 200)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    rec = store.load_record("s")
    arrays, _ = store.load_features("s")
    assert rec["j"] == 14 and arrays["fvd/edited"][0] == rec["writer"]  # one writer's complete folder
    assert store.edited_frames("s").shape == frames.shape
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert len(lines) == 200 and len(set(lines)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "samples"]
    assert [p.name for p in store.samples.iterdir()] == ["s"]


def test_cleanup_restores_an_interrupted_swap_and_removes_a_dead_writers_scratch(tmp_path):
    store = ResultStore(tmp_path)
    store.write("a", {"sample_id": "a", "v": 1})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)

    def as_dead(name: str) -> str:  # the same scratch name, owned by a process that has exited
        parts = name.rsplit(".", 2)
        return f"{parts[0]}.{dead_pid}.{parts[2]}"

    # writer died between renaming the old folder aside and renaming its new one in: the new one is restored
    new = store.samples / as_dead(scratch_name("a", "tmp"))
    new.mkdir()
    (new / "record.json").write_text(json.dumps({"sample_id": "a", "v": 2}))
    os.rename(store.sample_dir("a"), store.samples / as_dead(scratch_name("a", "old")))
    half = store.samples / as_dead(scratch_name("b", "tmp"))  # died while writing b's frames: no record yet
    half.mkdir()
    table_tmp = tmp_path / as_dead(scratch_name("results.csv", "tmp"))
    table_tmp.write_text("half a ta")
    live = store.samples / scratch_name("c", "tmp")  # this process's own scratch is left alone
    live.mkdir()
    done = store.cleanup()
    assert store.load_record("a")["v"] == 2 and len(done) == 4, done
    assert sorted(p.name for p in store.samples.iterdir()) == sorted(["a", live.name])
    assert not table_tmp.exists()


# ------------------------------------------------------------------------ runs: shards, merge, concurrent workers
def test_two_shards_in_two_processes_merge_to_the_unsharded_run(tmp_path):
    sharded, whole = tmp_path / "sharded", tmp_path / "whole"
    common = ["dataset.loader.num_samples=3", f"paths.cache={tmp_path}/cache"]
    procs = [run_py(*common, "dataset.num_shards=2", f"dataset.shard={i}", f"hydra.run.dir={sharded}") for i in (0, 1)]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, *common, f"paths.output={whole}"])
    torch_threads = __import__("torch").get_num_threads()
    __import__("torch").set_num_threads(1)  # as the shard processes (OMP_NUM_THREADS=1): same float reductions
    try:
        Runner(cfg).run()
    finally:
        __import__("torch").set_num_threads(torch_threads)
    for p in procs:
        finish(p)
    assert sorted(p.name for p in (sharded / "shards").iterdir()) == ["0-of-2", "1-of-2"]
    assert not (sharded / "results.csv").exists()  # a shard writes only its own tables
    merged = merge_run(sharded)
    merged_md = (sharded / "summary.md").read_text()
    ref, got = ResultStore(whole), ResultStore(sharded)
    ids = sorted(r["sample_id"] for r in ref.records())
    assert ids == sorted(r["sample_id"] for r in got.records()) and len(ids) == 3
    for sid in ids:
        job = {"label": None, "overrides": None}  # name the job (command line vs in-process), not the sample
        assert stable(got.load_record(sid)) | job == stable(ref.load_record(sid)) | job
        assert np.array_equal(got.edited_frames(sid), ref.edited_frames(sid))  # bit for bit
        a, b = got.load_features(sid)[0], ref.load_features(sid)[0]
        assert a.keys() == b.keys() == {"fvd/source", "fvd/edited"} and all(np.array_equal(a[k], b[k]) for k in a)
    drop = ["seconds", "peak_mem_mb", "label", "overrides"]  # label and overrides name the job, not the sample
    pd.testing.assert_frame_equal(pd.read_csv(sharded / "results.csv").drop(columns=drop),
                                  pd.read_csv(whole / "results.csv").drop(columns=drop))
    fvd_merged, fvd_whole = merged["summary"]["fvd"].iloc[0], pd.read_csv(whole / "summary.csv")["fvd"].iloc[0]
    assert np.isfinite(fvd_whole) and fvd_merged == pytest.approx(fvd_whole, rel=1e-9, abs=1e-9)
    shard_fvds = [pd.read_csv(sharded / "shards" / s / "summary.csv")["fvd"].iloc[0] for s in ("0-of-2", "1-of-2")]
    assert not np.isclose(np.nanmean(shard_fvds), fvd_whole)  # what averaging shards would have given instead
    assert merge_main([str(sharded)]) == 0 and (sharded / "summary.md").read_text() == merged_md  # the CLI
    assert merge_main([str(tmp_path / "nothing")]) == 1


def _freeze_a_worker_mid_sample(workers, claims: Path, samples: Path, timeout: float = 180):
    """Wait until both workers hold a claim at once, then SIGSTOP the holder of one whose record is not written yet."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        held = sorted(claims.glob("*.claim")) if claims.is_dir() else []
        if len(held) == 2:
            try:
                pid = json.loads(held[0].read_text())["pid"]
            except (OSError, ValueError):
                continue
            worker = next(w for w in workers if w.pid == pid)
            worker.send_signal(signal.SIGSTOP)
            try:
                still = json.loads(held[0].read_text())["pid"] == pid
            except (OSError, ValueError):
                still = False
            if still and not (samples / held[0].stem / "record.json").exists():
                return worker, held[0].stem
            worker.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    pytest.fail("the two workers never held claims at the same time")


def test_two_workers_share_a_run_and_one_killed_mid_sample_is_taken_over(tmp_path):
    run = tmp_path / "run"
    args = ["dataset.loader.num_samples=4", f"paths.cache={tmp_path}/cache", f"hydra.run.dir={run}", "claim.poll_s=0.2"]
    workers = [run_py(*args) for _ in range(2)]
    claims = run / ".claims"
    victim, victim_sample = _freeze_a_worker_mid_sample(workers, claims, run / "samples")
    victim.send_signal(signal.SIGKILL)  # mid-sample: its claim is held, its record not written
    victim_log, _ = victim.communicate()
    survivor = next(w for w in workers if w is not victim)
    survivor_log = finish(survivor)
    edits = [line.split(": edited by ")[0].split()[-1] for line in (victim_log + survivor_log).splitlines()
             if ": edited by " in line]
    store = ResultStore(run)
    ids = sorted(r["sample_id"] for r in store.records())
    assert len(ids) == 4 and all(r["status"] == "ok" for r in store.records())
    assert sorted(edits) == ids, edits  # every sample edited exactly once by the two workers together
    assert f"{victim_sample}: edited by" in survivor_log and "took over the stale claim" in survivor_log
    assert store.load_record(victim_sample)["worker"].endswith(f":{survivor.pid}")
    assert not list(claims.glob("*.claim*")) and not [p for p in store.samples.iterdir() if p.name.startswith(".")]
    assert len(pd.read_csv(run / "results.csv")) == 4


# ------------------------------------------------------------------------------- sweeps through other processes
def _fake_run(out: Path, label: str, n: int, seed: int) -> None:
    """A finished run folder as the runner writes it (records with features), without editing anything."""
    store = ResultStore(out)
    rng = np.random.default_rng(seed)
    for i in range(n):
        rec = dict(sample_id=f"s{i}", label=label, method=label, status="ok", finite=True, edit_type="add_object",
                   metrics={"ssim": float(i)})
        store.write(f"s{i}", rec, features={"fvd/source": rng.normal(size=8), "fvd/edited": rng.normal(size=8)},
                    features_meta={"fvd": "videoshop_bench.eval.fvd.FVD"})
    (out / "protocol.json").write_text(json.dumps({"fvd": "tiny"}))


def test_combined_table_collects_jobs_that_ran_in_other_processes(tmp_path):
    """submitit runs on_job_end on a pickled copy of the callback in the job's process: the launching process's
    callback must still find every job (through <sweep dir>/.jobs)."""
    sweep = tmp_path / "sweep"
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    parent = CombineTables()
    parent.on_multirun_start(cfg)
    for num, label in enumerate(("videoshop", "svd_no_source")):
        out = sweep / label
        _fake_run(out, label, 3, num)
        if label == "videoshop":  # written by shards: only shards/<i>-of-<N>/ tables so far
            (out / "shards" / "0-of-2").mkdir(parents=True)
        job = pickle.loads(pickle.dumps(parent))  # the job's own copy, as in another process
        hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(out)}, "sweep": {"dir": str(sweep)},
                                                "job": {"num": num}}})
        job.on_job_end(cfg, SimpleNamespace(hydra_cfg=hydra_cfg))
    parent.on_multirun_end(cfg)
    combined = pd.read_csv(sweep / "combined_summary.csv")
    assert sorted(combined["label"]) == ["svd_no_source", "videoshop"] and (combined["n"] == 3).all()
    assert combined["fvd"].notna().all() and combined["fvd"].nunique() == 2
    merged = pd.read_csv(sweep / "videoshop" / "summary.csv")  # the sharded run was merged before combining
    assert merged["n"].iloc[0] == 3 and merged["fvd"].iloc[0] == combined.set_index("label")["fvd"]["videoshop"]
    # the same from the command line, for a sweep whose launching process did not see its jobs finish
    (sweep / "combined_summary.csv").unlink()
    assert merge_main(["--sweep", str(sweep)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(sweep / "combined_summary.csv"), combined)


@pytest.mark.slow
def test_sweep_through_submitit_local_ends_in_one_combined_table(tmp_path):
    """`python run.py -m hydra/launcher=local method=a,b`: each job in its own process (about 90 s on 2 cores)."""
    proc = subprocess.run([sys.executable, "run.py", "-m", "hydra/launcher=local", "method=videoshop,svd_no_source",
                           f"hydra.sweep.dir={tmp_path}", *TINY, "dataset.loader.num_samples=2",
                           f"paths.cache={tmp_path}/cache"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    combined = pd.read_csv(tmp_path / "combined_summary.csv")
    assert sorted(combined["label"]) == ["svd_no_source[num_inference_steps=4]", "videoshop[num_inference_steps=4]"]
    assert (combined["n"] == 2).all() and combined["fvd"].notna().all()
    assert len(list((tmp_path / ".submitit").iterdir())) >= 1  # it really went through submitit
