"""Reliability: a corpus of malformed samples run through `python run.py` in one subprocess (issue 13).

Every good sample completes; every bad one is recorded as failed with ONE line naming the file or key at fault;
the run goes on, writes its tables and exits 0. The same subprocess runs with a socket hook (sitecustomize) and
WANDB_MODE unset: the default W&B logger must not attempt a single connection off the machine.
Config problems are checked by experiments/config_schema.py: one line per problem, non-zero exit, before any work.
"""

import fractions
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from videoshop_bench.datasets.folder import write_sample
from videoshop_bench.datasets.schema import Sample

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
    # issue 34: bounded text, sample.json size / nesting / encoding / unknown keys, symlinks out, header limits
    _edit_json(bad("instruction_too_long", "instruction is 5000 characters"), instruction="x" * 5000)
    _edit_json(bad("sample_json_10mb", "sample_json_10mb/sample.json"), instruction="x" * 10_000_000)
    _edit_json(bad("json_unknown_key", "'instrucion'"), instrucion="make it red")
    d = bad("json_deep", "nested too deeply")
    (d / "sample.json").write_text('{"meta": ' + "[" * 200_000 + "]" * 200_000 + "}")
    d = bad("json_not_utf8", "not UTF-8")
    (d / "sample.json").write_bytes((d / "sample.json").read_bytes().replace(b"make it red", b"make it r\xe9d"))
    outside = root.parent / "outside.png"
    Image.fromarray(_video(9)[0]).save(outside)
    d = bad("symlink_frame", "outside the sample folder")
    (d / "source" / "0001.png").unlink()
    (d / "source" / "0001.png").symlink_to(outside)
    long = _video(10, t=60)  # beyond limits.max_frames=50 set below: refused from the listing, nothing decoded
    bad("too_many_frames", "limits.max_frames", Sample(sample_id="too_many_frames", source_video=long,
                                                       edited_image=long[0].copy(), edit_type="change_color"))
    d = write_sample(root, _good("undecodable"))  # a folder name that is not UTF-8: one line, tables still written
    os.rename(d, os.path.join(os.fsencode(root), b"bad_name_\xff"))
    expect["bad_name_\\xff"] = "not valid UTF-8"
    for sid in ("=1+2", "@SUM(1+1)"):  # formula-like ids: fine samples, escaped in results.csv
        d = write_sample(root, _good("formula"))
        _edit_json(d, sample_id=sid)
        os.rename(d, root / sid)
        expect[sid] = ""
    _edit_json(write_sample(root, _good("good_fps_half")), fps=0.5)  # fps < 1 is valid (a rational, not rounded)
    expect["good_fps_half"] = ""
    big = _video(8, t=T, h=40, w=256)  # beyond limits.max_side=200 set below
    bad("too_large", "limits.max_side", Sample(sample_id="too_large", source_video=big, edited_image=big[0].copy(),
                                               edit_type="change_color"))
    return expect


def test_malformed_corpus_through_run_py_one_line_each_run_goes_on_and_no_network(tmp_path):
    data, out, hook = tmp_path / "data", tmp_path / "out", tmp_path / "hook"
    expect = build_corpus(data)
    bad = {k: v for k, v in expect.items() if v}
    assert len(bad) >= 30
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SOCKET_HOOK)
    net_log = tmp_path / "net.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}  # WANDB_MODE unset, as a new user
    env.update(PYTHONPATH=os.pathsep.join([str(hook), str(ROOT)]), NET_LOG=str(net_log), HF_HUB_OFFLINE="1",
               WANDB_DIR=str(tmp_path / "wandb"))
    cmd = [sys.executable, "run.py", "dataset=folder", f"dataset.loader.root={data}", "model=tiny",
           f"model.num_frames={T}", f"model.height={H}", f"model.width={W}", "method.num_inference_steps=2",
           "method.strength=1.0", "metrics=paper_tiny", "~metrics.tifa", "~metrics.fvd", "~metrics.flow",
           "~metrics.clip_tc", "limits.max_side=200", "limits.max_frames=50", "save_mp4=false", f"hydra.run.dir={out}",
           f"paths.cache={tmp_path / 'cache'}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    raw_csv = (out / "results.csv").read_text()
    assert ",'=1+2," in raw_csv and ",'@SUM(1+1)," in raw_csv  # formula injection: escaped text cells
    df = pd.read_csv(out / "results.csv", keep_default_na=False)
    df["sample_id"] = df["sample_id"].str.replace(r"^'(?=[=+\-@])", "", regex=True)
    df = df.set_index("sample_id")
    assert set(df.index) == set(expect), set(expect) ^ set(df.index)
    assert (df["edit_type"] != "").all() and (df.loc["json_broken", "edit_type"] == "unknown")  # never nan
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
    ("method.num_inference_steps=1", "method.num_inference_steps=1: must be in [2, 1000]"),
    ("model.height=0", "model.height=0"),
    ("method.strength=0.01", "no step runs"),
    ("overwrite=1", "overwrite=1: must be true or false"),
    ("aspect_policy=squash", "aspect_policy=squash"),
    ("dataset=folder", "dataset.loader.root: missing value"),
    ("method.num_inference_steps=1000000000", "method.num_inference_steps=1000000000: must be in [2, 1000]"),
    ("+method.fixed_point_iterations=1000000", "method.fixed_point_iterations=1000000: must be in [1, 100]"),
    ("model.num_frames=100000", "model.num_frames=100000: must be in [2, 1000]"),
    ("model.height=100000", "model.height=100000: must be in [8, 4096]"),
    ("claim.poll_s=-1", "claim.poll_s=-1: must be in (0, 3600]"),
    ("claim.heartbeat_s=0", "claim.heartbeat_s=0: must be in (0, 3600]"),
    ("+foo=1", "foo: unknown key"),
    ("+limits.max_sid=3", "limits.max_sid: unknown key; limits takes aspect_tolerance, max_frames, max_side"),
    ("+method.treshold=2", "method.treshold: not an option of videoshop.method.VideoshopMethod"),
    ("dataset.loader.seed=-1", "dataset.loader.seed=-1: must be in [0,"),
    ("dataset.loader.num_samples=0", "dataset.loader.num_samples=0: must be in [1, 1e+06]"),
    ("dataset.loader.num_samples=-4", "dataset.loader.num_samples=-4: must be in [1, 1e+06]"),
    ("threads=0", "threads=0: must be in [1, 1024]"),
    ("limits.max_frames=100000000", "limits.max_frames=100000000: must be in [2, 100000]"),
    ("model.revision=..main", "model.revision=..main: must be a hub commit hash, tag or branch"),
])
def test_config_schema_names_the_key(override, needle):
    """Each problem is one line naming the key, before any work; the default config has none."""
    from hydra import compose, initialize_config_dir

    from videoshop_bench.experiments.config_schema import validate_config

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["paths.output=/tmp/unused", override])
    assert any(needle in p for p in validate_config(cfg)), validate_config(cfg)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        assert validate_config(compose("config", overrides=["paths.output=/tmp/unused"])) == []


# ------------------------------------------------------------------------------------ issue 34: unit-level cases
def write_png_header_only(path: Path, h: int, w: int) -> Path:
    """A PNG whose header states h x w (8-bit RGB) and whose pixel data is missing: a reader that checks the
    header refuses it without decoding; one that decodes first would allocate h * w * 3 bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def _mp4(path: Path, t: int, h: int = 16, w: int = 16, fps: float = 7.0) -> Path:
    from videoshop.video_io import write_video

    write_video(path, np.zeros((t, h, w, 3), np.uint8), fps=fps)
    return path


def test_text_is_bounded_before_any_model_sees_it():
    from videoshop_bench.datasets.schema import MAX_TEXT_CHARS, SampleError
    from videoshop_bench.eval.tifa import TIFA

    long = _good("long")
    long.instruction = "x" * (MAX_TEXT_CHARS + 1)
    with pytest.raises(SampleError, match=f"instruction is {MAX_TEXT_CHARS + 1} characters"):
        long.validate()
    long.instruction, long.target_prompt = "make it red", "y" * (10 * MAX_TEXT_CHARS)
    with pytest.raises(SampleError, match="target_prompt is"):
        long.validate()
    metric = TIFA(backbone="tiny", device="cpu")  # a library user who skips validation: refused before generating
    long.target_prompt, long.instruction = None, "x" * (3 * MAX_TEXT_CHARS)
    metric.caption = lambda image: "a caption"
    metric._generate_text = lambda *a, **k: pytest.fail("the question generator saw the text")
    with pytest.raises(ValueError, match="TIFA description .* characters"):
        metric.question_set(long)


def test_every_count_a_user_sets_has_an_upper_bound():
    from videoshop_bench.baselines.pix2video import Pix2Video
    from videoshop_bench.baselines.text.spacetime import Spacetime
    from videoshop.config import VideoshopConfig

    with pytest.raises(ValueError, match=r"num_inference_steps=1000000000: must be in \[2, 1000\]"):
        VideoshopConfig(num_inference_steps=10 ** 9)
    with pytest.raises(ValueError, match=r"fixed_point_iterations=100000: must be in \[1, 100\]"):
        VideoshopConfig(fixed_point_iterations=10 ** 5)
    with pytest.raises(ValueError, match=r"method.num_inference_steps=1000000000: must be in \[1, 1000\]"):
        Pix2Video(weights="tiny", num_inference_steps=10 ** 9)  # refused before any model is built
    with pytest.raises(ValueError, match=r"method.optimization_steps=-1"):
        Spacetime(weights="tiny", optimization_steps=-1)


def test_sizes_are_refused_from_headers_before_decoding(tmp_path):
    from videoshop.video_io import InputLimits, VideoReadError, read_image, read_video

    huge = write_png_header_only(tmp_path / "huge.png", 12000, 12000)  # 432 MB of pixels if decoded
    with pytest.raises(VideoReadError, match=r"huge.png: 12000x12000 px, larger than limits.max_side=4096"):
        read_image(huge)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        write_png_header_only(frames / f"{i:04d}.png", 12000, 12000)
    with pytest.raises(VideoReadError, match="limits.max_side"):
        read_video(frames)
    long = _mp4(tmp_path / "long.mp4", 60)
    with pytest.raises(VideoReadError, match=r"long.mp4: 60 frames, more than limits.max_frames=50"):
        read_video(long, InputLimits(max_frames=50))
    with pytest.raises(VideoReadError, match="megapixels"):
        read_video(long, InputLimits(max_video_megapixels=0.01))
    assert read_video(long)[0].shape == (60, 16, 16, 3)  # inside the default limits


def test_fps_is_kept_as_a_rational(tmp_path):
    from videoshop.video_io import fps_fraction, read_video

    assert fps_fraction(0.5) == fractions.Fraction(1, 2) and fps_fraction(30000 / 1001) == fractions.Fraction(30000, 1001)
    for fps in (0.5, 7.0, 30000 / 1001):
        assert read_video(_mp4(tmp_path / f"{fps}.mp4", 4, fps=fps))[1] == pytest.approx(fps, rel=1e-3)


def test_empty_or_streamless_videos_fail_with_one_line_naming_the_file(tmp_path):
    import av

    from videoshop.video_io import VideoReadError, read_video

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    no_frames = tmp_path / "no_frames.mp4"
    c = av.open(str(no_frames), mode="w", format="mp4")
    s = c.add_stream("libx264", rate=7)
    s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
    c.start_encoding()
    c.close()
    for path in (empty, no_frames):
        with pytest.raises(VideoReadError) as e:
            read_video(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value) and "IndexError" not in str(e.value)


def test_expert_manifests_not_utf8_or_nested_too_deeply_name_the_file(tmp_path):
    from videoshop_bench.datasets.expert import read_manifest
    from videoshop_bench.datasets.schema import SampleError

    csv_ = tmp_path / "m.csv"
    csv_.write_bytes(b"video,edited,instruction\na.mp4,a.png,make it r\xe9d\n")
    with pytest.raises(SampleError, match=r"manifest .*m.csv: not UTF-8"):
        read_manifest(csv_)
    deep = tmp_path / "m.jsonl"
    deep.write_text('{"video": "a.mp4", "x": ' + "[" * 200_000 + "]" * 200_000 + "}\n")
    with pytest.raises(SampleError, match=r"m.jsonl:1: JSON nested too deeply"):
        read_manifest(deep)


def test_cli_refuses_to_resample_a_single_frame_into_an_edit(tmp_path, capsys):
    from videoshop.cli import main

    frames = tmp_path / "one"
    frames.mkdir()
    Image.fromarray(_video(0)[0]).save(frames / "0000.png")
    Image.fromarray(_video(0)[0]).save(tmp_path / "edited.png")
    rc = main(["--video", str(frames), "--image", str(tmp_path / "edited.png"), "--output", str(tmp_path / "o.mp4"),
               "--model", "tiny", "--resample"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "1 frame" in err[0] and str(frames) in err[0]
    assert not (tmp_path / "o.mp4").exists()


def test_csv_cells_are_escaped_against_formula_injection():
    from videoshop_bench.experiments.tables import csv_cell, to_safe_csv

    assert [csv_cell(v) for v in ("=1+2", "+1", "-x", "@SUM(1)", "\tx", "ok", 3.5)] == \
        ["'=1+2", "'+1", "'-x", "'@SUM(1)", "'\tx", "ok", 3.5]
    text = to_safe_csv(pd.DataFrame({"sample_id": ["=HYPERLINK(\"x\")", "fine"], "v": [-1.5, 2.0]}))
    back = pd.read_csv(__import__("io").StringIO(text))
    assert back["sample_id"].tolist() == ["'=HYPERLINK(\"x\")", "fine"] and back["v"].tolist() == [-1.5, 2.0]


def test_metric_cache_holds_no_executable_format(tmp_path):
    """The tiny I3D is cached as safetensors and built in Python: a planted TorchScript or pickle never loads, and a
    planted safetensors file can only hold numbers (a damaged one is rebuilt)."""
    import torch

    from videoshop_bench.eval import backbones

    assert not isinstance(backbones.load_i3d(backbone="tiny", device="cpu", seed=0, cache_dir=str(tmp_path)),
                          torch.jit.ScriptModule)  # (shared per process: built here or by an earlier test)
    planted = tmp_path / "backbones" / "tiny_i3d_seed0.pt"
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(b"not loaded")
    m = backbones.load_tiny_i3d(str(tmp_path / "backbones" / "tiny_i3d_seed0.safetensors"), 0, torch.device("cpu"))
    cached = sorted(p.name for p in (tmp_path / "backbones").iterdir())
    assert cached == ["tiny_i3d_seed0.pt", "tiny_i3d_seed0.safetensors"]
    (tmp_path / "backbones" / "tiny_i3d_seed0.safetensors").write_bytes(b"garbage")
    again = backbones.load_tiny_i3d(str(tmp_path / "backbones" / "tiny_i3d_seed0.safetensors"), 0, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), again.state_dict().values()))


def test_flow_works_on_a_bounded_copy_of_a_large_video():
    from videoshop_bench.eval.flow import MAX_CORR_BYTES, RaftFlow, pairs_per_batch, working_size

    assert working_size(1080, 1920, 128, 1024) == (576, 1024)
    assert working_size(576, 1024, 128, 1024) == (576, 1024)  # SVD's size: unchanged
    assert working_size(64, 112, 128, 1024) == (128, 224)
    n = pairs_per_batch(576, 1024, 8)
    assert 1 <= n < 8 and n * (72 * 128) ** 2 * 4 * 4 / 3 <= MAX_CORR_BYTES
    raft = RaftFlow(backbone="tiny", num_flow_updates=1, device="cpu", max_side=256)
    video = np.repeat(_video(0, t=1, h=270, w=480), 2, axis=0)
    f = raft(video)
    assert f.shape == (1, 2, 270, 480) and "long side <= 256" in raft.describe()


def test_missing_dataset_folder_is_one_line_naming_the_key():
    from hydra import compose, initialize_config_dir

    from videoshop_bench.experiments.config_schema import validate_config

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["paths.output=/tmp/unused", "dataset=folder",
                                           "dataset.loader.root=/nonexistent/videos"])
    assert validate_config(cfg) == ["dataset.loader.root=/nonexistent/videos: no such folder (build a dataset first, "
                                    "python run.py task=build dataset=..., or point dataset.loader.root at one)"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):  # relative to the repo: fine
        assert validate_config(compose("config", overrides=["paths.output=/tmp/unused", "dataset=examples"])) == []


def test_unknown_group_options_one_line_each_before_hydra(tmp_path):
    proc = subprocess.run([sys.executable, "run.py", "method=nonexistent", "model=nope", "metrics=paper,nada",
                           f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 3, proc.stderr
    assert lines[0].startswith("error: method=nonexistent: no option nonexistent in config group method (conf/method/); "
                               "choose one of animatelcm")
    assert lines[1].startswith("error: model=nope: no option nope") and "metrics=nada" in lines[2]


def test_threads_follow_the_cpus_given_shared_by_local_jobs_and_others_load(tmp_path):
    from videoshop_bench.experiments.cpus import cgroup_cpu_quota, choose_threads, cpus_given

    sys.path.insert(0, str(ROOT))
    from run import local_sweep_jobs

    given, _ = cpus_given({})
    assert given == len(os.sched_getaffinity(0))
    assert choose_threads(environ={"SLURM_CPUS_PER_TASK": "8"}, load=0) == (
        8, "8 CPU(s) given (SLURM_CPUS_PER_TASK) -> 8 torch thread(s)")
    assert choose_threads(environ={"SLURM_CPUS_PER_TASK": "8", "VIDEOSHOP_LOCAL_JOBS": "2"}, load=5)[0] == 4
    assert choose_threads(environ={"SLURM_CPUS_PER_TASK": "8"}, load=3)[0] == 5  # three CPUs busy elsewhere
    assert choose_threads(environ={"SLURM_CPUS_PER_TASK": "2"}, load=6)[0] == 1  # never below one
    assert choose_threads(environ={"SLURM_CPUS_PER_TASK": "16", "VIDEOSHOP_LOCAL_JOBS": "4"}, load=0,
                          launcher_cpus=3)[0] == 3
    assert choose_threads(3, environ={}, load=9) == (3, "threads=3 (set)")
    # an explicit OMP_NUM_THREADS is honoured as is (load and SLURM aside); threads=N still wins over it
    assert choose_threads(environ={"OMP_NUM_THREADS": "1", "SLURM_CPUS_PER_TASK": "8"}, load=0)[0] == 1
    assert choose_threads(2, environ={"OMP_NUM_THREADS": "1"}, load=0)[0] == 2
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cgroup_cpu_quota(str(tmp_path / "cpu.max")) == 3
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(str(tmp_path / "cpu.max")) is None
    assert local_sweep_jobs(["-m", "hydra/launcher=local", "method=videoshop,edict", "seed=1,2,3", "x=1"]) == 6
    assert local_sweep_jobs(["-m", "method=videoshop,edict"]) == 1  # the basic launcher runs jobs one by one


def test_hub_downloads_are_pinned_by_model_revision():
    """Every model mapping has `revision:`; the cache lookup and its one-line error carry it."""
    from videoshop.families import model_presets
    from videoshop.loading import MissingWeightsError, resolve_pretrained

    for name, mapping in model_presets().items():
        assert "revision" in mapping, name
    with pytest.raises(MissingWeightsError, match=r"weights for org/none @ 0123abc are not cached"):
        resolve_pretrained("org/none", None, allow_download=False, revision="0123abc")
