"""The Hydra edge: the real conf/ composed, `task=build` for each buildable dataset, loaders of each dataset config."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from videoshop_bench.experiments.build import run_build
from test_datasets_expert import make_expert_folder
from test_datasets_hdvila import make_hdvila
from test_datasets_magicbrush import StubPipe, write_fake_magicbrush

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def conf_dir(tmp_path_factory) -> str:
    """conf/, or a copy without empty folders: an empty (untracked) conf/task/ would make Hydra treat the
    top-level ``task`` key as a config group and refuse ``task=build``."""
    conf = ROOT / "conf"
    if not any(d.is_dir() and not any(d.iterdir()) for d in conf.iterdir()):
        return str(conf)
    import shutil

    copy = tmp_path_factory.mktemp("conf") / "conf"
    shutil.copytree(conf, copy)
    for d in list(copy.iterdir()):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    return str(copy)


def compose_cfg(overrides, conf_dir):
    with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
        return compose(config_name="config", overrides=["model=tiny", "device=cpu", "logger=none", *overrides])


def test_magicbrush_build_through_config(tmp_path, monkeypatch, conf_dir):
    src = write_fake_magicbrush(tmp_path / "mb")
    stub = StubPipe()
    monkeypatch.setattr("videoshop.models.build_pipeline", lambda model, device: stub)
    cfg = compose_cfg(["task=build", "dataset=magicbrush", f"paths.data={tmp_path / 'data'}",
                       f"dataset.build.source={src}", "dataset.build.num_inference_steps=2", "dataset.limit=2",
                       "seed=5"], conf_dir)
    report = run_build(cfg)
    assert report["counts"] == {"built": 2, "skipped": 0, "failed": 0}
    assert report["root"] == str(tmp_path / "data" / "magicbrush" / "dev")
    assert stub.calls[0]["num_inference_steps"] == 2 and (stub.calls[0]["height"], stub.calls[0]["width"]) == (64, 112)
    ds = instantiate(cfg.dataset.loader)
    assert ds.name == "magicbrush" and ds.sample_ids() == ["242679_t1", "327726_t1"]
    s = ds.load("327726_t1")
    assert s.num_frames == 14 and s.meta["generation"]["model"]["name"] == "tiny"
    assert s.meta["generation"]["base_seed"] == 5


def test_expert_and_hdvila_builds_through_config(tmp_path, conf_dir):
    raw = make_expert_folder(tmp_path / "raw")
    cfg = compose_cfg(["task=build", "dataset=expert", f"paths.data={tmp_path / 'data'}",
                       f"dataset.build.source={raw}", "dataset.ids=[clip_mp4,corrupt]"], conf_dir)
    report = run_build(cfg)
    assert report["counts"] == {"built": 1, "skipped": 0, "failed": 1}
    ds = instantiate(cfg.dataset.loader)
    assert ds.sample_ids() == ["clip_mp4"] and ds.load("clip_mp4").source_video.shape == (14, 64, 112, 3)

    meta, clips = make_hdvila(tmp_path / "hd")
    cfg = compose_cfg(["task=build", "dataset=expert", f"paths.data={tmp_path / 'data'}",
                       "dataset.build.kind=hdvila_sample", f"dataset.build.metadata={meta}",
                       f"dataset.build.clips_dir={clips}", "dataset.build.n=3"], conf_dir)
    report = run_build(cfg)
    assert len(report["selected"]) == 3 and Path(report["manifest"]).parent == tmp_path / "data" / "expert_selection"


def test_unbuildable_dataset_and_missing_source_are_clear(tmp_path, conf_dir):
    from videoshop_bench.datasets.registry import DATASETS

    with pytest.raises(ValueError, match="nothing to build") as err:
        run_build(compose_cfg(["task=build", "dataset=examples"], conf_dir))
    assert err.value.args[0].endswith(", ".join(e.name for e in DATASETS if e.builder))  # read from the registry
    with pytest.raises(ValueError, match="dataset.build.source is not set"):
        run_build(compose_cfg(["task=build", "dataset=expert", f"paths.data={tmp_path}"], conf_dir))


def test_folder_and_examples_loaders(tmp_path, conf_dir):
    ds = instantiate(compose_cfg(["dataset=examples"], conf_dir).dataset.loader)
    assert ds.name == "examples" and len(ds.sample_ids()) == 2
    ds = instantiate(compose_cfg(["dataset=folder", "dataset.loader.root=datasets/examples",
                                  "dataset.loader.height=32", "dataset.loader.width=56"], conf_dir).dataset.loader)
    assert ds.load("ball_add_kite").source_video.shape == (14, 32, 56, 3)


def test_cli_build_expert(tmp_path, conf_dir):
    """`python run.py task=build dataset=expert ...` end to end in a subprocess (no model needed)."""
    raw = make_expert_folder(tmp_path / "raw")
    cmd = [sys.executable, "run.py", "--config-path", conf_dir, "task=build", "dataset=expert", "model=tiny",
           "logger=none",
           f"paths.data={tmp_path / 'data'}", f"dataset.build.source={raw}", "dataset.limit=1",
           f"hydra.run.dir={tmp_path / 'hydra'}"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240,
                       env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "data" / "expert" / "clip_mp4" / "sample.json").is_file()


def test_builder_options_checked_before_any_work(tmp_path, monkeypatch, conf_dir):
    """A builder's own options are its library function's keyword-only parameters: a value that does not fit the
    annotation is one line naming the key, before the model is built; one that fits reaches the builder."""
    def no_model(model, device):
        raise AssertionError("the model was built before the options were checked")

    monkeypatch.setattr("videoshop.models.build_pipeline", no_model)
    src = write_fake_magicbrush(tmp_path / "mb")
    base = ["task=build", "dataset=magicbrush", f"paths.data={tmp_path / 'data'}", f"dataset.build.source={src}"]
    with pytest.raises(ValueError, match=r"^dataset.build.num_inference_steps='many': must be an integer"):
        run_build(compose_cfg([*base, "dataset.build.num_inference_steps=many"], conf_dir))
    with pytest.raises(ValueError, match=r"^dataset.build.replace_first_frame=3: must be true or false"):
        run_build(compose_cfg([*base, "dataset.build.replace_first_frame=3"], conf_dir))
