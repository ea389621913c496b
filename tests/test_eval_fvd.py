"""FVD: Frechet distance vs a direct scipy sqrtm computation; the I3D TorchScript path; the small-set warning."""

import numpy as np
import pytest
import scipy.linalg

from videoshop_bench.datasets.schema import Sample
from videoshop_bench.eval.backbones import MissingWeightsError
from videoshop_bench.eval.base import MetricInputError
from videoshop_bench.eval.fvd import FVD, feature_stats, frechet_distance


def test_frechet_distance_matches_direct_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 8)), rng.normal(0.5, 2.0, size=(70, 8))
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(scipy.linalg.sqrtm(s1 @ s2)))
    assert frechet_distance(*feature_stats(a), *feature_stats(b)) == pytest.approx(ref, rel=1e-10)
    # closed form for diagonal covariances: |mu1-mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    got = frechet_distance(np.zeros(3), np.diag(v1), np.ones(3), np.diag(v2))
    assert got == pytest.approx(3 + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2), rel=1e-10)


def _sample(i, t=10, h=32, w=48):
    v = np.random.default_rng(i).integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    return Sample(f"s{i}", v, v[0])


def test_fvd_tiny_end_to_end(tmp_path):
    m = FVD(backbone="tiny", device="cpu", cache_dir=str(tmp_path))
    samples = [_sample(i) for i in range(5)]
    edited = [np.clip(s.source_video.astype(int) + 40, 0, 255).astype(np.uint8) for s in samples]
    for s, e in zip(samples, edited):
        m.update(s, e)
    got = float(m.compute()["fvd"])
    ref = frechet_distance(*feature_stats(m.features(edited).numpy()),
                           *feature_stats(m.features([s.source_video for s in samples]).numpy()))
    assert got == pytest.approx(ref, rel=1e-6) and got > 0
    assert "400" in m.notes()["fvd"] and "2048" in m.notes()["fvd"]
    assert list(tmp_path.glob("i3d/*.safetensors"))  # source features cached (no pickles)
    same = FVD(backbone="tiny", device="cpu")
    for s in samples:
        same.update(s, s.source_video)
    assert abs(float(same.compute()["fvd"])) < 1e-3
    with pytest.raises(MetricInputError):
        m.update(samples[0], edited[0][:5])


def test_missing_detector_one_line():
    with pytest.raises(MissingWeightsError) as e:
        FVD(detector="/nonexistent/i3d_torchscript.pt", backbone="real", device="cpu")
    assert "\n" not in str(e.value) and "metrics.fvd.detector=PATH" in str(e.value)


def test_detector_download_is_pinned_by_sha256(tmp_path):
    """A URL detector is never fetched without metrics.fvd.detector_sha256; a local file is checked against it."""
    from videoshop_bench.eval.backbones import MissingWeightsError, file_sha256, load_i3d, write_tiny_i3d

    with pytest.raises(MissingWeightsError, match="metrics.fvd.detector_sha256: not set"):
        load_i3d("https://example.invalid/i3d_torchscript.pt", "real", device="cpu")
    path = write_tiny_i3d(str(tmp_path / "i3d.pt"))
    with pytest.raises(MissingWeightsError, match="detector_sha256"):
        load_i3d(path, "real", device="cpu", sha256="0" * 64)
    assert load_i3d(path, "real", device="cpu", sha256=file_sha256(path)) is not None
