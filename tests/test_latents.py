"""Latent normalisation and rescaling (Eq. 8)."""

import pytest
import torch

from videoshop.latents import channel_stats_of_frame0, normalize_latents, rescale_latents


@pytest.fixture
def latents():
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([0.5, 2.0, 3.0, 1.0]).view(1, 1, 4, 1, 1)
    return torch.randn(1, 5, 4, 6, 7, generator=g, dtype=torch.float64) * scale + 1.5


def test_per_frame_normalisation_centres_and_scales_each_frame(latents):
    x = normalize_latents(latents, "frame", center=True)
    torch.testing.assert_close(x.mean(dim=(2, 3, 4)), torch.zeros(1, 5, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(x.std(dim=(2, 3, 4)), torch.ones(1, 5, dtype=torch.float64), atol=1e-5, rtol=0)


def test_paper_normalisation_is_per_channel_unit_std_without_centring(latents):
    x = normalize_latents(latents, "channel", center=False)
    torch.testing.assert_close(x.std(dim=(1, 3, 4)), torch.ones(1, 4, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(x * latents.std(dim=(1, 3, 4), keepdim=True), latents, atol=1e-5, rtol=1e-5)


def test_no_normalisation_is_identity(latents):
    assert normalize_latents(latents, "none") is latents


def test_code_rescaling_maps_frame0_channel_stats_onto_the_image(latents):
    g = torch.Generator().manual_seed(1)
    image = torch.randn(1, 1, 4, 6, 7, generator=g, dtype=torch.float64) * 0.3 - 0.2
    out = rescale_latents(latents, image, "code")
    for a, b in zip(channel_stats_of_frame0(out), channel_stats_of_frame0(image)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_paper_rescaling_formula_as_printed(latents):
    image = torch.full((1, 1, 4, 6, 7), 0.5, dtype=torch.float64) + torch.linspace(0, 1, 7, dtype=torch.float64)
    mu0, s0 = channel_stats_of_frame0(latents)
    mui, si = channel_stats_of_frame0(image)
    torch.testing.assert_close(rescale_latents(latents, image, "paper"), si / s0 * (latents - mu0 + mui))


def test_rescaling_a_flat_channel_stays_finite():
    """Eq. 8 (right) with a constant channel in frame 0: no division by zero, the channel takes the image's mean."""
    import torch

    from videoshop.latents import rescale_latents

    x0 = torch.randn(1, 3, 4, 5, 6, dtype=torch.float64)
    x0[:, 0, 1] = 2.0  # channel 1 of frame 0 is flat
    img = torch.randn(1, 1, 4, 5, 6, dtype=torch.float64)
    for formula in ("code", "paper"):
        out = rescale_latents(x0, img, formula)
        assert torch.isfinite(out).all()
    out = rescale_latents(x0, img, "code")
    assert torch.allclose(out[:, 0, 1], img[:, 0, 1].mean().expand_as(out[:, 0, 1]))
