"""MagicBrush-to-video: a fake parquet with the hub's exact schema, built with a stub and with the tiny SVD."""

import io
import json
import time
from types import SimpleNamespace

import numpy as np
import pytest

from videoshop_bench.datasets.folder import FolderDataset
from videoshop_bench.datasets.magicbrush import (MagicBrushParquet, build_magicbrush, decode_mask, resolve_parquet_files,
                                 select_turns)
from videoshop_bench.datasets.schema import SampleError

ROWS = [  # (img_id, turn_index, instruction, mask kind)
    ("327726", 1, "put a red hat on the man", "alpha"),
    ("327726", 2, "remove the dog", "binary"),
    ("242679", 1, "turn the cake into a pizza", "binary"),
    ("100002", 1, "make the sky purple", "alpha"),
    ("100002", 2, "add a bird", "corrupt"),
]


def _png(arr, mode=None) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def _region(size=48):
    m = np.zeros((size, size), bool)
    m[10:30, 12:36] = True
    return m


def fake_images(seed, kind, size=48):
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    tgt = src.copy()
    m = _region(size)
    tgt[m] = (250, 20, 20)
    if kind == "alpha":  # DALL-E 2 convention: the region to repaint is transparent
        rgba = np.concatenate([src, np.full((size, size, 1), 255, np.uint8)], -1)
        rgba[m, 3] = 0
        mask = _png(rgba, "RGBA")
    elif kind == "corrupt":
        mask = b"not a png"
    else:
        mask = _png((m * 255).astype(np.uint8), "L")
    return _png(src), mask, _png(tgt)


def write_fake_magicbrush(folder, rows=ROWS, split="dev", rows_per_file=3):
    """Parquet files named like the hub's (data/dev-0000i-of-0000n-<hash>.parquet), image columns as structs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    img = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("img_id", pa.string()), ("turn_index", pa.int32()), ("source_img", img),
                        ("mask_img", img), ("instruction", pa.string()), ("target_img", img)])
    data = folder / "data"
    data.mkdir(parents=True)
    chunks = [rows[i:i + rows_per_file] for i in range(0, len(rows), rows_per_file)]
    for ci, chunk in enumerate(chunks):
        cols = {k: [] for k in schema.names}
        for i, (img_id, turn, instr, kind) in enumerate(chunk):
            s, m, t = fake_images(ci * 10 + i, kind)
            cols["img_id"].append(img_id)
            cols["turn_index"].append(turn)
            cols["instruction"].append(instr)
            for k, b in (("source_img", s), ("mask_img", m), ("target_img", t)):
                cols[k].append({"bytes": b, "path": f"{img_id}_{turn}_{k}.png"})
        pq.write_table(pa.table(cols, schema=schema), data / f"{split}-{ci:05d}-of-{len(chunks):05d}-abc123.parquet",
                       row_group_size=2)
    first = data / f"{split}-00000-of-{len(chunks):05d}-abc123.parquet"
    (data / "train-00000-of-00001-x.parquet").write_bytes(first.read_bytes())  # another split, to be ignored
    return folder


class StubPipe:
    """Records calls; returns a video whose frames are the conditioning image shifted in brightness."""

    def __init__(self):
        self.calls = []

    def set_progress_bar_config(self, **kwargs):
        pass

    def generate(self, image, num_frames, *, height, width, generator, **opts):
        self.calls.append({"shape": image.shape, "num_frames": num_frames, "height": height, "width": width,
                           "seed": generator.initial_seed(), **opts})
        frames = np.stack([np.clip(image.astype(int) + 3 * t, 0, 255).astype(np.uint8) for t in range(num_frames)])
        return SimpleNamespace(frames=frames, finite=True)


@pytest.fixture()
def mb_dir(tmp_path):
    return write_fake_magicbrush(tmp_path / "MagicBrush")


def test_reads_split_and_selects_turns(mb_dir):
    files = resolve_parquet_files(mb_dir, "dev")
    assert [f.name[:9] for f in files] == ["dev-00000", "dev-00001"]
    table = MagicBrushParquet(files)
    assert table.sample_ids("all") == ["327726_t1", "327726_t2", "242679_t1", "100002_t1", "100002_t2"]
    assert table.sample_ids("first") == ["327726_t1", "242679_t1", "100002_t1"]
    assert table.sample_ids("last") == ["327726_t2", "242679_t1", "100002_t2"]
    assert table.sample_ids([2]) == ["327726_t2", "100002_t2"]
    row = table.row("100002_t1")  # second file, row group boundary
    assert row["instruction"] == "make the sky purple" and row["source_img"].size == (48, 48)
    assert len(select_turns(table.index, "1,2")) == 5


def test_mask_polarity_rules(mb_dir):
    table = MagicBrushParquet(resolve_parquet_files(mb_dir, "dev"))
    for sid, rule in (("327726_t1", "alpha_transparent"), ("327726_t2", "binary_white")):
        row = table.row(sid)
        mask, used = decode_mask(row["mask_img"], np.asarray(row["source_img"].convert("RGB")))
        assert used == rule and np.array_equal(mask, _region())
    from PIL import Image
    src = np.asarray(table.row("327726_t2")["source_img"].convert("RGB"))
    painted = src.copy()
    painted[_region()] = 255  # a mask drawn over a copy of the source image
    mask, used = decode_mask(Image.fromarray(painted), src)
    assert used == "differs_from_source" and mask[_region()].mean() > 0.9 and mask[~_region()].sum() == 0
    mask, used = decode_mask(Image.fromarray((_region() * 255).astype(np.uint8)), None, "black")
    assert np.array_equal(mask, ~_region())


def test_build_with_stub_resume_shards_and_failures(mb_dir, tmp_path):
    out = tmp_path / "out"
    pipe = StubPipe()
    kw = dict(split="dev", turns="all", num_frames=5, height=36, width=64, num_inference_steps=3, seed=7)
    r = build_magicbrush(mb_dir, out, pipe, **kw)
    assert r["counts"] == {"built": 4, "skipped": 0, "failed": 1}
    assert r["failed"][0]["id"] == "100002_t2" and "mask_img" in r["failed"][0]["error"]
    ds = FolderDataset(out, name="magicbrush")
    s = ds.load("327726_t1")
    assert s.source_video.shape == (5, 36, 64, 3) and s.edited_image.shape == (36, 64, 3)
    assert s.edit_type == "add_object" and s.instruction == "put a red hat on the man"
    assert s.edit_mask.shape == (36, 64) and 0.1 < s.edit_mask.mean() < 0.4
    g = s.meta["generation"]
    assert (g["num_inference_steps"], g["noise_aug_strength"], g["motion_bucket_id"], g["fps"]) == (3, 0.02, 127, 7)
    assert (g["height"], g["width"], g["num_frames"], g["base_seed"]) == (36, 64, 5, 7)
    assert s.meta["mask_rule"] == "alpha_transparent" and s.meta["turn_index"] == 1
    assert {x.load(i).edit_type for x in [ds] for i in ["327726_t2", "242679_t1", "100002_t1"]} == \
        {"remove_object", "replace_object", "change_color"}
    # resume: nothing regenerated, the failure is reported again
    n = len(pipe.calls)
    r2 = build_magicbrush(mb_dir, out, pipe, **kw)
    assert len(pipe.calls) == n and r2["counts"] == {"built": 0, "skipped": 4, "failed": 1}
    assert json.loads((out / "build_report.json").read_text())["failed"][0]["id"] == "100002_t2"


def test_limit_ids_shards_and_seeds_independent_of_order(mb_dir, tmp_path):
    kw = dict(split="dev", turns="all", num_frames=3, height=16, width=28, seed=1)
    p1 = StubPipe()
    build_magicbrush(mb_dir, tmp_path / "a", p1, limit=2, **kw)
    assert sorted(FolderDataset(tmp_path / "a").sample_ids()) == ["327726_t1", "327726_t2"]
    p2 = StubPipe()
    r = build_magicbrush(mb_dir, tmp_path / "b", p2, ids=["242679_t1", "327726_t2"], shard_index=1, num_shards=2,
                         **kw)
    assert r["built"] == ["242679_t1"] and (tmp_path / "b" / "build_report.shard1of2.json").is_file()
    seeds_a = {c["seed"] for c in p1.calls}
    p3 = StubPipe()
    build_magicbrush(mb_dir, tmp_path / "c", p3, ids=["327726_t2"], **kw)
    assert p3.calls[0]["seed"] in seeds_a  # same sample id + base seed -> same seed, whatever the selection


def test_factory_not_called_when_everything_is_built(mb_dir, tmp_path):
    build_magicbrush(mb_dir, tmp_path, StubPipe(), limit=1, num_frames=2, height=16, width=28)

    def boom():
        raise AssertionError("model must not load")

    r = build_magicbrush(mb_dir, tmp_path, boom, limit=1, num_frames=2, height=16, width=28)
    assert r["counts"]["skipped"] == 1


def test_bad_sources_fail_in_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.build.source=.*no parquet files of split 'dev'"):
        resolve_parquet_files(tmp_path, "dev")
    with pytest.raises(FileNotFoundError, match="dataset.build.source"):
        resolve_parquet_files(tmp_path / "missing" / "dir", "dev")
    t = time.time()
    with pytest.raises(RuntimeError) as e:  # HF_HUB_OFFLINE=1 (tests/conftest.py): no network, fails fast
        resolve_parquet_files("osunlp/MagicBrush", "dev", cache_dir=str(tmp_path / "hub"))
    msg = str(e.value)
    assert "dataset.build.source=osunlp/MagicBrush" in msg and "\n" not in msg and time.time() - t < 30
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"img_id": ["1"]}), tmp_path / "dev-00000-of-00001.parquet")
    with pytest.raises(SampleError, match="missing column"):
        MagicBrushParquet(resolve_parquet_files(tmp_path, "dev"))


def test_end_to_end_with_tiny_svd(mb_dir, tmp_path):
    """The real path: tiny SVD (random weights) animates each first turn at 64x112, 14 frames."""
    from videoshop.models import build_pipeline

    def factory():
        pipe = build_pipeline({"kind": "tiny", "seed": 0, "dtype": "float32", "num_frames": 14}, "cpu")
        pipe.set_progress_bar_config(disable=True)
        return pipe

    out = tmp_path / "mb"
    r = build_magicbrush(mb_dir, out, factory, split="dev", turns="first", limit=1, num_frames=14, height=64,
                         width=112, num_inference_steps=2, seed=0, model_info={"kind": "tiny"})
    assert r["counts"] == {"built": 1, "skipped": 0, "failed": 0}
    ds = FolderDataset(out, name="magicbrush")
    assert ds.sample_ids() == ["327726_t1"]
    s = ds.load("327726_t1")
    assert s.source_video.shape == (14, 64, 112, 3) and s.edited_image.shape == (64, 112, 3)
    assert s.edit_mask.shape == (64, 112) and s.edit_mask.any()
    assert s.meta["generation"]["model"] == {"kind": "tiny"} and s.meta["generation"]["num_inference_steps"] == 2
