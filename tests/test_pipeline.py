"""The diffusers-style pipeline on the tiny SVD (real component classes, random weights)."""

import numpy as np
import pytest
import torch

from videoshop import VideoshopConfig

FAST = dict(num_inference_steps=6)  # strength 0.55 -> 3 steps: 2 noise branches, 1 extrapolated... on this schedule


def _video(seed=0, t=6, h=64, w=112):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_output_shape_nfe_and_determinism(tiny_pipeline):
    v = _video()
    edit = _video(1)[0]
    a = tiny_pipeline(video=v, edited_image=edit, generator=torch.Generator().manual_seed(7))
    b = tiny_pipeline(video=v, edited_image=edit, generator=torch.Generator().manual_seed(7))
    c = tiny_pipeline(video=v, edited_image=edit, generator=torch.Generator().manual_seed(8))
    assert a.frames.shape == (6, 64, 112, 3) and a.frames.dtype == np.uint8
    assert a.nfe == 26 and a.finite  # 13 inversion + 13 generation steps (CFG batched in one pass)
    assert a.inversion_branches == ["noise"] * 8 + ["extrapolate"] * 5
    assert np.array_equal(a.frames, b.frames) and not np.array_equal(a.frames, c.frames)


def test_no_threshold_reports_non_finite_latents(tiny_pipeline):
    out = tiny_pipeline(video=_video(), edited_image=_video(1)[0], threshold=None, **FAST)
    assert not out.finite and out.frames.dtype == np.uint8


def test_every_inversion_variant_runs(tiny_pipeline):
    v = _video()
    for opts in (dict(inversion="naive"), dict(normalize="none"), dict(rescale=False), dict(normalize="channel",
                 normalize_center=False, noise="fresh", noise_std="unit", rescale_formula="paper")):
        out = tiny_pipeline(video=v, edited_image=v[0], **FAST, **opts)
        assert out.finite and out.frames.shape == v.shape


def test_unknown_option_is_refused_with_its_name():
    with pytest.raises(KeyError, match="thresold"):
        VideoshopConfig.from_dict({"thresold": 1.0})
    with pytest.raises(ValueError, match="noise"):
        VideoshopConfig.from_dict({"noise": "sometimes"})


def test_edited_image_of_another_size_is_resized(tiny_pipeline):
    v = _video()
    out = tiny_pipeline(video=v, edited_image=_video(2, 1, 50, 70)[0], **FAST)
    assert out.frames.shape == v.shape


def test_generation_matches_diffusers_stable_video_diffusion_pipeline(tiny_components):
    """Our Euler sampler + conditioning (pipe.generate) equals diffusers' StableVideoDiffusionPipeline on the same
    components and initial noise (square 224 px input so both CLIP resizes are the identity; no noise augmentation)."""
    from diffusers import StableVideoDiffusionPipeline

    from videoshop.pipeline import VideoshopPipeline

    ours = VideoshopPipeline(**tiny_components)
    ref = StableVideoDiffusionPipeline(**tiny_components)
    ours.set_progress_bar_config(disable=True)
    ref.set_progress_bar_config(disable=True)
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(1, 3, 4, 28, 28, generator=g) * 700.0
    kw = dict(num_inference_steps=4, min_guidance_scale=1.5, max_guidance_scale=3.0, noise_aug_strength=0.0,
              fps=7, motion_bucket_id=127)
    mine = ours.generate(image, 3, height=224, width=224, latents=x_T, **kw).latents
    from PIL import Image

    ref.scheduler.set_timesteps(4)  # init_noise_sigma depends on the inference schedule (sqrt(sigma_max^2 + 1))
    theirs = ref(Image.fromarray(image), height=224, width=224, num_frames=3, latents=x_T / ref.scheduler.init_noise_sigma,
                 output_type="latent", generator=torch.Generator().manual_seed(1), **kw).frames
    torch.testing.assert_close(mine.float(), theirs.float(), rtol=1e-3, atol=1e-3)


def test_save_and_reload_pretrained_tiny_model(tiny_pipeline, tmp_path):
    """Weights reload bit for bit; outputs agree to one uint8 level (memory-mapped safetensors weights can take a
    different CPU kernel path than freshly allocated ones, which changes float rounding)."""
    from videoshop.pipeline import VideoshopPipeline

    tiny_pipeline.save_pretrained(tmp_path)
    again = VideoshopPipeline.from_pretrained(tmp_path)
    again.set_progress_bar_config(disable=True)
    for name in ("unet", "vae", "image_encoder"):
        ours, theirs = getattr(tiny_pipeline, name).state_dict(), getattr(again, name).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    v = _video()
    a = tiny_pipeline(video=v, edited_image=v[0], **FAST)
    b = again(video=v, edited_image=v[0], **FAST)
    assert np.abs(a.frames.astype(int) - b.frames).max() <= 1


def test_clip_embedding_comes_from_the_original_resolution_frames(tiny_pipeline):
    """At a size other than the model's (80x144 in, 64x112 model size), the CLIP image input of both conditionings
    (source first frame for the inversion, edited image for the generation) is the original frame resized straight to
    224x224, as the authors' data module does (torchvision Resize + Normalize on frame/255), not the model-size frame."""
    from torchvision import transforms

    from videoshop.conditioning import clip_image_embeddings, to_model_pixels

    video, edited = _video(3, 4, 80, 144), _video(4, 1, 80, 144)[0]
    seen = []
    hook = tiny_pipeline.image_encoder.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["pixel_values"].clone()), with_kwargs=True)
    try:
        tiny_pipeline(video=video, edited_image=edited, height=64, width=112, **FAST)
    finally:
        hook.remove()
    authors = transforms.Compose([
        transforms.Resize((224, 224), interpolation=transforms.InterpolationMode.BILINEAR, antialias=True),
        transforms.Normalize([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711])])
    expected = [authors(torch.as_tensor(f).permute(2, 0, 1)[None] / 255.0) for f in (video[0], edited)]
    assert len(seen) == 2
    for got, exp in zip(seen, expected):
        torch.testing.assert_close(got, exp, rtol=0, atol=1e-5)
    with torch.no_grad():  # the old path (CLIP of the model-size frame) differs measurably: the test can fail
        fe, enc = tiny_pipeline.feature_extractor, tiny_pipeline.image_encoder
        old = clip_image_embeddings(enc, fe, to_model_pixels(edited, 64, 112))
        new = enc(pixel_values=expected[1]).image_embeds[:, None]
    assert ((old - new).norm() / new.norm()).item() > 1e-2
