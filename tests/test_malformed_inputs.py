"""Reliability: a corpus of malformed samples run through `python run.py` in one subprocess (issue 13).

Every good sample completes; every bad one is recorded as failed with ONE line naming the file or key at fault;
the run goes on, writes its tables and exits 0. The same subprocess runs with a socket hook (sitecustomize) and
WANDB_MODE unset: the default W&B logger must not attempt a single connection off the machine.
Config problems are checked by experiments/config_schema.py: one line per problem, non-zero exit, before any work.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from datasets.folder import write_sample
from datasets.schema import Sample

ROOT = Path(__file__).resolve().parents[1]
T, H, W = 4, 32, 64  # small: the tiny model needs multiples of 16

SOCKET_HOOK = '''
import os, socket
_log = os.environ["NET_LOG"]
def _record(what, addr):
    host = addr[0] if isinstance(addr, tuple) and addr else addr
    if isinstance(host, str) and host in ("127.0.0.1", "::1", "localhost"):
        return
    with open(_log, "a") as f:
        f.write(f"{what} {addr!r}\\n")
    raise OSError("network disabled by test")
_connect, _connect_ex, _gai = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
def connect(self, addr):
    if self.family != socket.AF_UNIX:
        _record("connect", addr)
    return _connect(self, addr)
def connect_ex(self, addr):
    if self.family != socket.AF_UNIX:
        _record("connect_ex", addr)
    return _connect_ex(self, addr)
def getaddrinfo(host, *a, **k):
    _record("getaddrinfo", (host,))
    return _gai(host, *a, **k)
socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''


def _video(seed, t=T, h=H, w=W):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (1, h, w, 3), dtype=np.uint8)
    return np.repeat(base, t, axis=0)


def _mask(h=H, w=W):
    m = np.zeros((h, w), bool)
    m[8:20, 10:30] = True
    return m


def _good(sid, **kw):
    v = _video(len(sid))
    return Sample(sample_id=sid, source_video=v, edited_image=v[0].copy(), edit_mask=kw.pop("mask", _mask()),
                  instruction="make it red", edit_type="change_color", **kw)


def _edit_json(folder: Path, **changes):
    p = folder / "sample.json"
    rec = json.loads(p.read_text())
    for k, v in changes.items():
        if v is _DEL:
            rec.pop(k, None)
        else:
            rec[k] = v
    p.write_text(json.dumps(rec))


_DEL = object()


def build_corpus(root: Path) -> dict[str, str]:
    """Good samples -> "" ; bad ones -> a piece of text their one-line error must contain (the file or key)."""
    expect: dict[str, str] = {}
    v = _video(0)
    good = {
        "good_plain": _good("good_plain"),
        "good_gt": _good("good_gt", gt_edited_video=v, gt_masks=np.repeat(_mask()[None], T, 0)),
        "good_no_mask": _good("good_no_mask", mask=None),
        "good_full_mask": _good("good_full_mask", mask=np.ones((H, W), bool)),  # note + region metrics skipped
        "good_square": Sample(sample_id="good_square", source_video=_video(1, h=32, w=32),
                              edited_image=_video(1, h=32, w=32)[0].copy(), edit_type="change_color"),
    }
    for sid, s in good.items():
        write_sample(root, s)
        expect[sid] = ""
    Image.fromarray(_video(2)[0]).convert("L").save(root / "good_plain" / "edited.png")  # grey is lossless: fine

    def bad(sid, needle, sample=None):
        d = write_sample(root, sample or _good(sid))
        expect[sid] = needle
        return d

    _edit_json(bad("fps_nan", "fps"), fps=float("nan"))
    _edit_json(bad("fps_negative", "fps"), fps=-7)
    _edit_json(bad("fps_string", "fps"), fps="fast")
    _edit_json(bad("instruction_number", "instruction"), instruction=42)
    _edit_json(bad("edit_type_unknown", "edit_type"), edit_type="teleport")
    _edit_json(bad("files_other_sample", "files.mask"), files={"source": "source", "edited": "edited.png",
                                                                "mask": "../good_plain/mask.png"})
    _edit_json(bad("files_absolute", "files.source"), files={"source": "/tmp", "edited": "edited.png"})
    _edit_json(bad("files_unknown_key", "masks"), files={"source": "source", "edited": "edited.png", "masks": "m"})
    _edit_json(bad("num_frames_wrong", "sample.json says 9"), num_frames=9)
    _edit_json(bad("sample_id_mismatch", "sample_id"), sample_id="someone_else")
    (bad("json_broken", "json_broken/sample.json") / "sample.json").write_text("{not json")
    (bad("json_list", "json_list/sample.json") / "sample.json").write_text("[1, 2]")
    os.remove(bad("no_sample_json", "no_sample_json/sample.json") / "sample.json")
    d = bad("png16_frame", "0000.png")
    import cv2
    cv2.imwrite(str(d / "source" / "0000.png"), (_video(3)[0].astype(np.uint16) * 257))
    d = bad("grey16_edited", "edited.png")
    Image.fromarray((_video(3)[0, ..., 0].astype(np.uint16) * 257)).save(d / "edited.png")
    d = bad("rgba_transparent", "edited.png")
    rgba = np.dstack([_video(4)[0], np.full((H, W), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(d / "edited.png")
    d = bad("cmyk_frame", "0001.jpg")
    os.remove(d / "source" / "0001.png")  # still T frames, one of them a CMYK JPEG
    Image.fromarray(_video(5)[0]).convert("CMYK").save(d / "source" / "0001.jpg")
    d = bad("mask_0_1", "mask.png")
    Image.fromarray(_mask().astype(np.uint8)).save(d / "mask.png")
    d = bad("mask_0_100", "mask.png")
    Image.fromarray(_mask().astype(np.uint8) * 100).save(d / "mask.png")
    d = bad("mask_empty", "mask.png")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(d / "mask.png")
    d = bad("mask_colour", "mask.png")
    Image.fromarray(np.dstack([_mask().astype(np.uint8) * 255, np.zeros((H, W, 2), np.uint8)])).save(d / "mask.png")
    d = bad("edited_wrong_size", "edited.png")
    Image.fromarray(_video(6, h=16, w=16)[0]).save(d / "edited.png")
    d = bad("frames_mixed_sizes", "source")
    Image.fromarray(_video(6, h=16, w=16)[0]).save(d / "source" / "0002.png")
    d = bad("frame_corrupt", "0001.png")
    (d / "source" / "0001.png").write_bytes(b"not a png")
    d = bad("edited_missing", "edited.png")
    os.remove(d / "edited.png")
    d = bad("single_frame", "1 frame")
    for f in sorted((d / "source").iterdir())[1:]:
        f.unlink()
    _edit_json(d, num_frames=1)
    d = bad("gt_wrong_shape", "gt")
    (d / "gt").mkdir()
    Image.fromarray(_video(7)[0]).save(d / "gt" / "0000.png")
    _edit_json(d, files={"source": "source", "edited": "edited.png", "mask": "mask.png", "gt": "gt"})
    big = _video(8, t=T, h=40, w=256)  # beyond limits.max_side=200 set below
    bad("too_large", "limits.max_side", Sample(sample_id="too_large", source_video=big, edited_image=big[0].copy(),
                                               edit_type="change_color"))
    return expect


def test_malformed_corpus_through_run_py_one_line_each_run_goes_on_and_no_network(tmp_path):
    data, out, hook = tmp_path / "data", tmp_path / "out", tmp_path / "hook"
    expect = build_corpus(data)
    bad = {k: v for k, v in expect.items() if v}
    assert len(bad) >= 20
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SOCKET_HOOK)
    net_log = tmp_path / "net.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}  # WANDB_MODE unset, as a new user
    env.update(PYTHONPATH=os.pathsep.join([str(hook), str(ROOT)]), NET_LOG=str(net_log), HF_HUB_OFFLINE="1",
               WANDB_DIR=str(tmp_path / "wandb"))
    cmd = [sys.executable, "run.py", "dataset=folder", f"dataset.loader.root={data}", "model=tiny",
           f"model.num_frames={T}", f"model.height={H}", f"model.width={W}", "method.num_inference_steps=2",
           "method.strength=1.0", "metrics=paper_tiny", "~metrics.tifa", "~metrics.fvd", "~metrics.flow",
           "~metrics.clip_tc", "limits.max_side=200", "save_mp4=false", f"hydra.run.dir={out}",
           f"paths.cache={tmp_path / 'cache'}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    df = pd.read_csv(out / "results.csv", keep_default_na=False).set_index("sample_id")
    assert set(df.index) == set(expect), set(expect) ^ set(df.index)
    for sid, needle in expect.items():
        row = df.loc[sid]
        if not needle:
            assert row["status"] == "ok", (sid, row["error"])
            continue
        assert row["status"] == "failed", sid
        assert "\n" not in row["error"] and needle in row["error"], (sid, row["error"])
        logged = (proc.stdout + proc.stderr).splitlines()
        assert sum(f"{sid} failed at" in line for line in logged) == 1, sid  # one log line, no traceback
    # notes, not silent: the stretched square video, the full mask; skipped metrics counted, means stay numbers
    assert "stretched" in df.loc["good_square", "notes"] and "whole frame" in df.loc["good_full_mask", "notes"]
    assert "clip_src_plus" in df.loc["good_full_mask", "skipped"]
    assert "clip_tgt_plus" in df.loc["good_no_mask", "skipped"] or "clip_tgt_plus" in df.loc["good_square", "skipped"]
    summary = pd.read_csv(out / "summary.csv")
    assert summary["n_failed"].iloc[0] == len(bad) and summary["n_skipped"].iloc[0] >= 2
    for col in ("clip_tgt", "clip_tgt_plus", "clip_src_plus", "ssim", "psnr_gt"):
        assert np.isfinite(summary[col].iloc[0]), col
    protocol = json.loads((out / "protocol.json").read_text())
    assert "skip_policy" in protocol and "clip_src_plus" in protocol["skipped_samples"]
    assert list(out.glob("wandb/offline-run-*")) or list((tmp_path / "wandb").glob("wandb/offline-run-*"))
    assert not net_log.exists(), net_log.read_text()  # zero connection attempts off the machine


def test_config_problems_one_line_each_nonzero_exit_before_any_work(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "run.py", "method.threshold=-1", "method.strength=2", "dataset.limit=-3", "seed=abc",
           "frames_policy=foo", "method.noise_aug_strength=-1", "model.num_frames=0", "device=cuda:7",
           "logger.mode=loud", f"hydra.run.dir={out}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for key in ("method.threshold=-1", "method.strength=2", "dataset.limit=-3", "seed=abc", "frames_policy=foo",
                "method.noise_aug_strength=-1", "model.num_frames=0", "device=cuda:7", "logger.mode=loud"):
        assert sum(ln.startswith(f"error: {key}:") for ln in lines) == 1, (key, lines)
    assert not (out / "samples").exists()  # nothing started


@pytest.mark.parametrize("override, needle", [
    ("method.strength=0", "method.strength=0: must be in (0, 1]"),
    ("method.num_inference_steps=1", "method.num_inference_steps=1: must be >= 2"),
    ("model.height=0", "model.height=0"),
    ("method.strength=0.01", "no step runs"),
    ("overwrite=1", "overwrite=1: must be true or false"),
    ("aspect_policy=squash", "aspect_policy=squash"),
    ("dataset=folder", "dataset.loader.root: missing value"),
])
def test_config_schema_names_the_key(override, needle):
    from hydra import compose, initialize_config_dir

    from experiments.config_schema import validate_config

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["paths.output=/tmp/unused", override])
    assert any(needle in p for p in validate_config(cfg)), validate_config(cfg)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        assert validate_config(compose("config", overrides=["paths.output=/tmp/unused"])) == []
