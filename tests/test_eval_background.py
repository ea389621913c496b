"""Background preservation (PSNR / SSIM / LPIPS / MSE outside the edit region) against independent references:
numpy for PSNR and MSE, torchmetrics' SSIM module called as FiVE-Bench calls it, and the ``lpips`` package with the
same SqueezeNet weights for LPIPS."""

import numpy as np
import pytest
import torch

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.background import BackgroundFidelity, copy_squeezenet_features, squeezenet_slices
from videoshop_bench.eval.backbones import MissingWeightsError


def _videos(t=4, h=40, w=48, seed=0):
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    noise = rng.integers(-30, 31, src.shape)
    edited = np.clip(src.astype(int) + noise, 0, 255).astype(np.uint8)
    masks = np.zeros((t, h, w), dtype=bool)
    for i in range(t):
        masks[i, 8 + i:24 + i, 10:30] = True
    return src, edited, masks


def _sample(src, masks):
    return Sample("s", src, src[0], edit_mask=masks[0], gt_masks=masks, instruction="x")


def _metric(masking):
    return BackgroundFidelity(masking=masking, backbone="tiny", device="cpu")


def test_masked_psnr_mse_against_numpy():
    src, edited, masks = _videos()
    a, b = src / 255.0, edited / 255.0
    keep = ~masks
    got = _metric("exclude").score(_sample(src, masks), edited)
    mse = np.array([((a[t] - b[t]) ** 2).mean(-1)[keep[t]].mean() for t in range(len(a))])
    assert got["bg_mse"] == pytest.approx(1e4 * mse.mean(), rel=1e-9)
    assert got["bg_psnr"] == pytest.approx(np.mean(10 * np.log10(1 / mse)), rel=1e-9)
    got = _metric("five").score(_sample(src, masks), edited)  # FiVE: region blacked out in both, whole frame
    k = keep[..., None]
    mse = np.array([((a[t] * k[t] - b[t] * k[t]) ** 2).mean() for t in range(len(a))])
    assert got["bg_mse"] == pytest.approx(1e4 * mse.mean(), rel=1e-9)
    assert got["bg_psnr"] == pytest.approx(np.mean(10 * np.log10(1 / mse)), rel=1e-9)


def test_ssim_as_five_bench_calls_torchmetrics():
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    src, edited, masks = _videos()
    got = _metric("five").score(_sample(src, masks), edited)
    ref = StructuralSimilarityIndexMeasure(data_range=1.0)
    vals = []
    for t in range(len(src)):  # metrics_calculator.calculate_ssim: float32 [0,1] * mask, one (1, 3, H, W) image
        k = (~masks[t])[..., None].astype(np.float32)
        x = torch.tensor(src[t].astype(np.float32) / 255 * k).permute(2, 0, 1)[None]
        y = torch.tensor(edited[t].astype(np.float32) / 255 * k).permute(2, 0, 1)[None]
        vals.append(float(ref(x, y)))
    assert got["bg_ssim"] == pytest.approx(100 * np.mean(vals), abs=1e-4)


def test_lpips_against_lpips_package_same_weights():
    lpips = pytest.importorskip("lpips")
    src, edited, masks = _videos(t=3, h=64, w=64)
    m = _metric("five")
    ours = m.lpips.value
    ref = lpips.LPIPS(net="squeeze", pretrained=True, pnet_rand=True, verbose=False).eval()
    for theirs, mine in zip(squeezenet_slices(ref.net), squeezenet_slices(ours.net), strict=True):
        theirs.load_state_dict(mine.state_dict())  # the same (random) SqueezeNet backbone in both
    for k in range(7):  # the v0.1 linear layers each package ships are the same weights
        assert torch.allclose(ref.lins[k].model[-1].weight, ours.lins[k].model[-1].weight)
    got = m.score(_sample(src, masks), edited)
    keep = torch.from_numpy(~masks)[:, None].float()
    x = torch.from_numpy(src).permute(0, 3, 1, 2).float() / 255 * keep
    y = torch.from_numpy(edited).permute(0, 3, 1, 2).float() / 255 * keep
    with torch.no_grad():
        want = ref(x * 2 - 1, y * 2 - 1).mean()
    assert got["bg_lpips"] == pytest.approx(1e3 * float(want), rel=1e-4)
    got = _metric("exclude").score(_sample(src, masks), edited)  # spatial map averaged outside the region
    spatial = lpips.LPIPS(net="squeeze", pretrained=True, pnet_rand=True, spatial=True, verbose=False).eval()
    spatial.load_state_dict(ref.state_dict())
    x = torch.from_numpy(src).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(edited).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        smap = spatial(x * 2 - 1, y * 2 - 1)[:, 0]
    k = torch.from_numpy(~masks).float()
    want = ((smap * k).sum((1, 2)) / k.sum((1, 2))).mean()
    assert got["bg_lpips"] == pytest.approx(1e3 * float(want), rel=1e-4)


def test_lpips_checkpoint_route_and_missing_weights(tmp_path):
    from torchvision.models import squeezenet1_1

    torch.manual_seed(3)
    tv = squeezenet1_1(weights=None)
    path = tmp_path / "squeeze.pth"
    torch.save(tv.state_dict(), path)
    m = BackgroundFidelity(backbone="real", lpips_checkpoint=str(path), device="cpu")
    first = squeezenet_slices(m.lpips.value.net)[0][0].weight
    assert torch.equal(first, tv.features[0].weight)
    with pytest.raises(MissingWeightsError, match=r"^metrics\.background\.lpips_checkpoint: .* does not exist"):
        BackgroundFidelity(backbone="real", lpips_checkpoint=str(tmp_path / "missing.pth"), device="cpu")
    other = squeezenet1_1(weights=None)
    from torchmetrics.functional.image.lpips import _LPIPS

    net = _LPIPS(pretrained=True, net="squeeze", pnet_rand=True)
    copy_squeezenet_features(net.net, other.features)
    assert torch.equal(squeezenet_slices(net.net)[-1][-1].expand3x3.weight, other.features[12].expand3x3.weight)


def test_empty_and_full_regions_are_skipped_with_reason():
    src, edited, masks = _videos()
    m = _metric("five")
    empty = np.zeros_like(masks)
    s = Sample("e", src, src[0], edit_mask=empty[0], gt_masks=empty)
    assert all(v is None for v in m.score(s, edited).values())
    assert "empty" in m.skip_reason("bg_psnr", s)
    full = np.ones_like(masks)
    s = Sample("f", src, src[0], edit_mask=full[0], gt_masks=full)
    assert all(v is None for v in m.score(s, edited).values())
    assert "every frame entirely" in m.skip_reason("bg_psnr", s)
    assert m.skip_reason("bg_psnr", Sample("n", src, src[0])) == "no edit mask"
    partly = masks.copy()
    partly[1] = True  # one frame all region: left out, the others scored
    assert m.score(Sample("p", src, src[0], edit_mask=partly[0], gt_masks=partly), edited)["bg_psnr"] is not None


def test_identical_video_is_perfect_and_protocol_states_choices():
    src, _, masks = _videos()
    got = _metric("exclude").score(_sample(src, masks), src.copy())
    assert got["bg_mse"] == 0 and got["bg_psnr"] == float("inf") and got["bg_lpips"] == pytest.approx(0, abs=1e-6)
    assert got["bg_ssim"] == pytest.approx(100)
    p = _metric("five").protocol()
    assert "FiVE" in p["bg_psnr"] and "RANDOM" in p["bg_lpips"] and "x1e4" in p["bg_mse"]
    assert BackgroundFidelity.directions() == {"bg_psnr": True, "bg_ssim": True, "bg_lpips": False, "bg_mse": False}
    assert _metric("five").column_higher_is_better("bg_lpips") is False


def test_lpips_follows_the_metric_device():
    m = _metric("five")
    m.to("meta")
    assert next(m.lpips.value.parameters()).device.type == "meta"
    assert next(_metric("five").lpips.value.parameters()).device.type == "cpu"
