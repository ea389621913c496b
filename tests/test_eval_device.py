"""Metrics are device-agnostic in the torchmetrics sense: ``metric.to(dev)`` moves the metric's backbones too.

There is no GPU here, so the ``meta`` device (parameters without data) proves propagation: after ``m.to("meta")``
every backbone parameter of ``m`` is on meta and ``m`` reports meta, while a metric sharing the same backbone and a
metric built afterwards still score on CPU with the values they had before; ``m.to("cpu")`` scores as before.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from videoshop_bench.eval.backbones import shared
from videoshop_bench.eval.base import EditMetric
from videoshop_bench.eval.fidelity import SourceSSIM
from videoshop_bench.eval.registry import set_config

CONF = Path(__file__).resolve().parents[1] / "conf"
META = torch.device("meta")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("device")
    c = OmegaConf.create({"device": "cpu", "paths": {"cache": str(root)},
                          "tracking": OmegaConf.load(CONF / "tracking" / "gt_or_flow.yaml"),
                          "metrics": set_config("paper_tiny")})
    return c.metrics


@pytest.fixture(scope="module")
def samples():
    from videoshop_bench.datasets.synthetic import SyntheticDataset

    ds = SyntheticDataset(num_samples=2)
    return [ds.load(i) for i in ds.sample_ids()]


def evaluate(m: EditMetric, samples) -> list:
    """Per-sample scores of the two samples (their gt edit as the method's output); FVD over the pair."""
    if m.per_sample:
        out = [m.score(s, s.gt_edited_video) for s in samples]
        assert any(isinstance(v, float) and np.isfinite(v) for r in out for v in r.values())  # something to compare
        return out
    m.reset()
    for s in samples:
        m.update(s, s.gt_edited_video)
    out = float(m.compute()["fvd"])
    m.reset()
    assert np.isfinite(out)
    return [out]


def models_of(m) -> list[torch.nn.Module]:
    """The backbone modules, reached through each metric's own attributes (not through ``backbone_modules``)."""
    if hasattr(m, "clip"):
        return [m.clip.model]
    if hasattr(m, "raft"):
        return [m.raft.model]
    if hasattr(m, "detector"):
        return [m.detector]
    return [model for model, _ in m.models.values()]


def param_devices(modules) -> set:
    devs = {p.device for mod in modules for p in mod.parameters()}
    assert devs, "a backbone without parameters proves nothing"
    return devs


# (metric moved, metric sharing its backbone, metric built after the move): config keys of the paper_tiny set
TRIOS = {"clip": ("clip_tgt", "clip_src", "clip_tc"), "flow": ("flow", "flow", "flow"), "fvd": ("fvd", "fvd", "fvd"),
         "tifa": ("tifa", "tifa", "tifa")}


@pytest.mark.parametrize("kind", sorted(TRIOS))
def test_to_meta_moves_this_metric_only(kind, cfg, samples):
    moved_key, sib_key, later_key = TRIOS[kind]
    m, sib = instantiate(cfg[moved_key]), instantiate(cfg[sib_key])
    ref_m, ref_sib = evaluate(m, samples), evaluate(sib, samples)
    ref_later = ref_sib if later_key == sib_key else evaluate(instantiate(cfg[later_key]), samples)
    before = models_of(m)
    assert param_devices(before) == {CPU}
    assert [id(x) for x in models_of(sib)] == [id(x) for x in before]  # one shared backbone before the move
    assert {id(x) for x in before} <= {id(x) for x in m.backbone_modules()}

    assert m.to("meta") is m
    assert m.device == META
    assert param_devices(models_of(m)) == {META} and param_devices(m.backbone_modules()) == {META}
    assert all(part.device == META for part in m.device_parts())
    assert all(getattr(m, n).device == META for n in m._defaults if isinstance(getattr(m, n), torch.Tensor))

    # the shared CPU instance was not moved in place: the sibling still has it, on CPU, and scores as before
    assert [id(x) for x in models_of(sib)] == [id(x) for x in before]
    assert param_devices(models_of(sib)) == {CPU} and sib.device == CPU
    assert evaluate(sib, samples) == ref_sib
    # the cache is not poisoned: a metric built now gets the CPU instance
    later = instantiate(cfg[later_key])
    assert param_devices(later.backbone_modules()) == {CPU}
    assert evaluate(later, samples) == ref_later

    # back on CPU: the shared CPU instance again, identical scores
    m.to("cpu")
    assert m.device == CPU and param_devices(m.backbone_modules()) == {CPU}
    assert [id(x) for x in models_of(m)] == [id(x) for x in before]
    assert evaluate(m, samples) == ref_m


@pytest.mark.parametrize("kind", sorted(TRIOS))
def test_cpu_and_dtype_moves_are_no_ops(kind, cfg, samples):
    m = instantiate(cfg[TRIOS[kind][0]])
    ref, before = evaluate(m, samples), [id(x) for x in m.backbone_modules()]
    m.to("cpu")
    m.to(torch.float64)
    m.cpu()
    assert [id(x) for x in m.backbone_modules()] == before  # nothing reloaded, nothing cast
    assert param_devices(m.backbone_modules()) == {CPU}
    assert {p.dtype for x in m.backbone_modules() for p in x.parameters()} == {torch.float32}
    assert evaluate(m, samples) == ref


def test_constructor_device_then_to(cfg, samples):
    """``device=`` still places the backbone (states stay where torchmetrics puts them); ``.to()`` then moves it."""
    ref = evaluate(instantiate(cfg.clip_tc), samples)
    m = instantiate(cfg.clip_tc, device="meta")
    assert m.clip.device == META and param_devices(m.backbone_modules()) == {META}
    assert m.device == CPU  # torchmetrics states: unchanged behaviour
    m.to("cpu")  # a no-op for the states, a move for the backbone
    assert m.clip.device == CPU and param_devices(m.backbone_modules()) == {CPU}
    assert evaluate(m, samples) == ref


class _Recorder:
    def __init__(self):
        self.devices = []

    def __call__(self, module, args):
        self.devices += [a.device for a in args if isinstance(a, torch.Tensor)]


@pytest.mark.parametrize("kind", ["clip", "flow"])
def test_inputs_go_to_the_backbone_device(kind, cfg, samples):
    m = instantiate(cfg.clip_tc if kind == "clip" else cfg.flow).to("meta")
    target = m.clip.model.visual if kind == "clip" else m.raft.model
    rec = _Recorder()
    handle = target.register_forward_pre_hook(rec)
    try:
        with pytest.raises((NotImplementedError, RuntimeError), match="meta"):  # meta results have no data to read
            m.score(samples[0], samples[0].gt_edited_video)
    finally:
        handle.remove()
    assert rec.devices and set(rec.devices) == {META}


def test_fvd_detector_not_a_submodule_and_states_follow(cfg, samples):
    m = instantiate(cfg.fvd)
    assert not list(m.parameters()) and not any("detector" in k for k in m.state_dict())
    m.update(samples[0], samples[0].gt_edited_video)
    m.update(samples[1], samples[1].gt_edited_video)
    ref = float(m.compute()["fvd"])
    m.to("cpu")
    assert float(m.compute()["fvd"]) == ref
    m.to("meta")
    assert {t.device for t in m.edited_features} == {META} and m.device_ == META
    with pytest.raises((NotImplementedError, RuntimeError), match="meta"):  # I3D runs on meta
        m.features([samples[0].gt_edited_video])


def test_metric_states_through_meta_and_back(samples):
    m = SourceSSIM()
    m.update(samples[0], samples[0].gt_edited_video)
    ref = float(m.compute()["ssim"])
    m.to("cpu")
    assert float(m.compute()["ssim"]) == ref and int(m.ssim_count) == 1
    m.to("meta")
    assert m.device == META and m.ssim_sum.device == META
    m.to("cpu")  # meta states hold no data: they come back as their defaults
    assert m.device == CPU and float(m.ssim_sum) == 0.0 and int(m.ssim_count) == 0
    assert m.ssim_sum.dtype == torch.float64 and m.ssim_count.dtype == torch.long
    m.update(samples[0], samples[0].gt_edited_video)
    assert float(m.compute()["ssim"]) == ref


class _FakeCoTracker(torch.nn.Module):
    """Tracks every query point in place (identity motion), all visible; records its input devices."""

    def __init__(self):
        super().__init__()
        self.one = torch.nn.Parameter(torch.ones(()))
        self.devices = []

    def forward(self, video, queries):
        self.devices += [video.device, queries.device]
        t = video.shape[1]
        tracks = queries[:, None, :, 1:].expand(-1, t, -1, -1) * self.one
        return tracks, torch.ones(tracks.shape[:3], device=self.one.device) * self.one


def test_cotracker_follows_its_metric(cfg, samples, monkeypatch):
    from videoshop_bench.eval import tracking as eval_tracking

    calls = []

    def fake_load(repo_dir, checkpoint, model="cotracker3_offline", device="cpu", config_key=""):
        calls.append(torch.device(device))
        return shared(("test-fake-cotracker", str(device)), lambda: _FakeCoTracker().to(device))

    monkeypatch.setattr(eval_tracking, "load_cotracker", fake_load)
    tracking = {"tracker": "cotracker", "cotracker_repo": "unused", "cotracker_checkpoint": "unused", "grid_size": 8,
                "cache_dir": None}  # masks cached in memory only, so clearing it makes the predictor run again
    s = samples[0]
    m = instantiate(cfg.clip_src, tracking=tracking)
    sib = instantiate(cfg.clip_src, tracking=tracking)
    pred = m.tracker._predictor
    assert sib.tracker._predictor is pred and calls == [CPU, CPU]
    ref = m.tracker.track(s, s.gt_edited_video)
    assert ref.any() and set(pred.devices) == {CPU}

    m.to("meta")
    assert m.tracker.device == META and param_devices([m.tracker._predictor]) == {META} and calls[-1] == META
    assert {id(x) for x in m.backbone_modules()} >= {id(m.tracker._predictor), id(m.clip.model)}
    assert param_devices(m.backbone_modules()) == {META}
    moved = m.tracker._predictor
    with pytest.raises((NotImplementedError, RuntimeError), match="meta"):
        m.tracker.track(samples[1], samples[1].gt_edited_video)  # not cached: runs the predictor on meta
    assert moved.devices and set(moved.devices) == {META}

    assert sib.tracker._predictor is pred and param_devices([pred]) == {CPU}
    sib.tracker.cache.memory.clear()
    n = len(pred.devices)
    assert np.array_equal(sib.tracker.track(s, s.gt_edited_video), ref)
    assert len(pred.devices) > n and set(pred.devices) == {CPU}
    m.to("cpu")
    assert m.tracker._predictor is pred and m.tracker.device == CPU


def test_clone_shares_backbone_and_moves_alone(cfg, samples):
    m = instantiate(cfg.flow)
    ref = evaluate(m, samples)
    c = m.clone()
    assert [id(x) for x in c.backbone_modules()] == [id(x) for x in m.backbone_modules()]  # no weight copy
    c.to("meta")
    assert param_devices(c.backbone_modules()) == {META} and param_devices(m.backbone_modules()) == {CPU}
    assert evaluate(m, samples) == ref
    assert evaluate(c.to("cpu"), samples) == ref
