"""The synthetic dataset: deterministic, ground truth consistent with the source, editable first frames."""

import cv2
import numpy as np
import pytest

from videoshop_bench.datasets.synthetic import (EDIT_TYPES, MIN_FIRST_FRAME_VISIBILITY, SyntheticDataset, first_frame_visibility,
                                make_sample, random_scene, render)


def test_deterministic_and_cycles_edit_types():
    ds = SyntheticDataset(num_samples=10, seed=3)
    a, b = ds.load(ds.sample_ids()[4]), SyntheticDataset(num_samples=10, seed=3).load(ds.sample_ids()[4])
    assert np.array_equal(a.source_video, b.source_video) and np.array_equal(a.gt_masks, b.gt_masks)
    assert [ds.load(i).edit_type for i in ds.sample_ids()[:5]] == list(EDIT_TYPES)
    with pytest.raises(ValueError, match="dataset.loader.edit_types"):
        SyntheticDataset(edit_types=["explode"])


def test_ground_truth_agrees_with_the_source():
    for i in range(10):
        s = make_sample(0, i)
        assert np.array_equal(s.edited_image, s.gt_edited_video[0]) and np.array_equal(s.edit_mask, s.gt_masks[0])
        changed = np.abs(s.gt_edited_video.astype(int) - s.source_video.astype(int)).sum(-1) > 0
        # the edit touches nothing outside its region grown by the 1-px anti-aliased rim (coverage <= 0.5), but for
        # the odd pixel where an occluder's own rim lets the edited object show through
        rim = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)) for m in s.gt_masks]).astype(bool)
        assert changed.any() and changed[~rim].sum() <= 0.001 * changed.sum()


def test_edited_object_is_visible_in_the_first_frame():
    """The edit is made on frame 0, so the edited source object is (mostly) visible there."""
    for i in range(40):
        s = make_sample(1, i)
        if s.edit_type == "add_object":
            continue
        rng = np.random.default_rng([1, i])
        scene = random_scene(rng, 14)
        vis = first_frame_visibility(scene, 64, 112)
        seen = [k for k, m in enumerate(render(scene, 64, 112, 1)[1]) if (m[0] & s.edit_mask).sum() > 0]
        assert max(vis[k] for k in seen) >= MIN_FIRST_FRAME_VISIBILITY


def test_stripes_are_visible_on_every_palette_colour():
    """change_appearance toggles stripes; the second stripe shade differs from the object's colour by >= 40 (of 255)
    in some channel for every colour, black included (its darker shade would be black again)."""
    from videoshop_bench.datasets.synthetic import COLOR_NAMES, PALETTE, SceneObject, object_colour

    for k, name in enumerate(COLOR_NAMES):
        obj = SceneObject("circle", k, 0.2, (0.5, 0.5), (0.0, 0.0), stripes=True)
        field = object_colour(obj, 24, 24)
        assert np.abs(field - PALETTE[k]).max() >= 40, name
