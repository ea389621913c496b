"""A procedurally rendered video-editing world with ground truth (the embedded default and the CI subset).

Each sample is a short video of a textured background seen by a panning camera, with several flat or striped
shapes moving along smooth paths. An edit of one of the paper's types (add, remove or replace an object; change
its colour or appearance) is applied to the *scene*, and the same renderer draws the edited video, so every
sample carries the ground-truth edited video and per-frame edit masks. Everything is a function of (seed, index).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .schema import Sample

EDIT_TYPES = ("add_object", "remove_object", "replace_object", "change_color", "change_appearance")
SHAPES = ("circle", "square", "triangle", "diamond")
PALETTE = np.array([[230, 60, 50], [40, 160, 70], [50, 90, 220], [240, 200, 40], [200, 70, 200], [40, 200, 210],
                    [245, 140, 30], [250, 250, 250], [30, 30, 30]], dtype=np.float64)
MIN_FIRST_FRAME_VISIBILITY = 0.8  # an edited source object shows at least this share of itself in frame 0
COLOR_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan", "orange", "white", "black")


@dataclass
class SceneObject:
    shape: str
    color: int  # index into PALETTE
    radius: float  # in units of frame height
    start: tuple[float, float]  # (y, x) in units of frame height / width at t = 0
    velocity: tuple[float, float]  # per frame, same units
    wobble: float = 0.0  # amplitude of a sinusoidal y-oscillation
    phase: float = 0.0
    stripes: bool = False

    def position(self, t: int) -> tuple[float, float]:
        y = self.start[0] + self.velocity[0] * t + self.wobble * np.sin(self.phase + 0.5 * t)
        return y, self.start[1] + self.velocity[1] * t

    def describe(self) -> str:
        return f"{COLOR_NAMES[self.color]} {'striped ' if self.stripes else ''}{self.shape}"


@dataclass
class Scene:
    background_seed: int
    background_style: str  # "texture" | "smooth" | "plain"
    camera_velocity: tuple[float, float]  # background pixels per frame (y, x), in units of frame height
    objects: list[SceneObject] = field(default_factory=list)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled random grid in [0, 1] (a cheap value-noise texture)."""
    grid = rng.random((cells + 2, cells * w // h + 2))
    ys, xs = np.linspace(0, cells, h), np.linspace(0, cells * w // h, w)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    g = grid
    return ((1 - fy) * (1 - fx) * g[y0][:, x0] + (1 - fy) * fx * g[y0][:, x0 + 1]
            + fy * (1 - fx) * g[y0 + 1][:, x0] + fy * fx * g[y0 + 1][:, x0 + 1])


def render_background(scene: Scene, h: int, w: int, num_frames: int) -> np.ndarray:
    """(T, h, w, 3) float background: a canvas larger than the frame, cropped along the camera path."""
    rng = np.random.default_rng(scene.background_seed)
    vy, vx = scene.camera_velocity
    pad_y, pad_x = int(abs(vy) * h * num_frames) + 2, int(abs(vx) * h * num_frames) + 2
    H, W = h + pad_y, w + pad_x
    base = rng.uniform(60, 200, size=3)
    if scene.background_style == "plain":
        canvas = np.broadcast_to(base, (H, W, 3)).copy()
    else:
        tint = rng.uniform(-1, 1, size=3)
        amp = 70 if scene.background_style == "texture" else 45
        canvas = base + amp * (_smooth_noise(rng, H, W, 4)[..., None] - 0.5) * np.array([1, 1, 1])
        canvas += 40 * (_smooth_noise(rng, H, W, 2)[..., None] - 0.5) * tint
        if scene.background_style == "texture":
            canvas += 25 * (_smooth_noise(rng, H, W, 12)[..., None] - 0.5)
    frames = []
    for t in range(num_frames):
        oy = int(round((pad_y - 1) / 2 + vy * h * (t - num_frames / 2)))
        ox = int(round((pad_x - 1) / 2 + vx * h * (t - num_frames / 2)))
        oy, ox = np.clip(oy, 0, pad_y), np.clip(ox, 0, pad_x)
        frames.append(canvas[oy : oy + h, ox : ox + w])
    return np.stack(frames)


def object_coverage(obj: SceneObject, t: int, h: int, w: int, ss: int = 2) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of one object at frame t (supersampled ss x ss)."""
    cy, cx = obj.position(t)
    cy, cx, r = cy * h, cx * w, obj.radius * h
    ys = (np.arange(h * ss) + 0.5) / ss
    xs = (np.arange(w * ss) + 0.5) / ss
    dy, dx = ys[:, None] - cy, xs[None, :] - cx
    if obj.shape == "circle":
        inside = dy**2 + dx**2 <= r**2
    elif obj.shape == "square":
        inside = (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    elif obj.shape == "diamond":
        inside = np.abs(dy) + np.abs(dx) <= r * 1.1
    elif obj.shape == "triangle":
        inside = (dy <= r * 0.7) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")
    return inside.reshape(h, ss, w, ss).mean(axis=(1, 3))


def object_colour(obj: SceneObject, h: int, w: int) -> np.ndarray:
    """(h, w, 3) colour field of an object: flat, or diagonal stripes of its colour and a second shade (darker,
    or lighter for a dark colour, so that "give the black circle stripes" changes the video)."""
    c = PALETTE[obj.color]
    if not obj.stripes:
        return np.broadcast_to(c, (h, w, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    band = ((yy + xx) // max(2, h // 12)) % 2 == 0
    return np.where(band[..., None], c, stripe_shade(c))


def stripe_shade(c: np.ndarray) -> np.ndarray:
    """The second stripe colour: 0.35 c + 20 (darker), or halfway to white where that would be within 40 of c
    (dark colours: black's darker shade would equal black)."""
    dark = c * 0.35 + 20
    return dark if np.abs(c - dark).max() >= 40 else c + 0.5 * (255 - c)


def render(scene: Scene, h: int, w: int, num_frames: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Render (T, h, w, 3) uint8 frames and, per object, its (T, h, w) visible-coverage > 0.5 masks."""
    frames = render_background(scene, h, w, num_frames)
    masks = [np.zeros((num_frames, h, w), bool) for _ in scene.objects]
    for t in range(num_frames):
        f = frames[t]
        for k, obj in enumerate(scene.objects):  # later objects occlude earlier ones
            a = object_coverage(obj, t, h, w)[..., None]
            f = f * (1 - a) + object_colour(obj, h, w) * a
            masks[k][t] = a[..., 0] > 0.5
            for j in range(k):
                masks[j][t] &= ~masks[k][t]
        frames[t] = f
    return np.clip(np.round(frames), 0, 255).astype(np.uint8), masks


def random_object(rng: np.random.Generator, num_frames: int, speed: float, avoid_colors: Sequence[int] = ()) -> SceneObject:
    colors = [i for i in range(len(PALETTE)) if i not in avoid_colors] or list(range(len(PALETTE)))
    r = rng.uniform(0.15, 0.24)
    start = (rng.uniform(0.25, 0.75), rng.uniform(0.2, 0.8))
    ang = rng.uniform(0, 2 * np.pi)
    v = rng.uniform(0.4, 1.0) * speed
    vel = (v * np.sin(ang) * 0.5, v * np.cos(ang) * 0.5)
    # keep the centre inside the frame over the clip
    end = (start[0] + vel[0] * num_frames, start[1] + vel[1] * num_frames)
    vel = tuple(vel[i] if 0.15 < end[i] < 0.85 else -vel[i] for i in range(2))
    return SceneObject(shape=str(rng.choice(SHAPES)), color=int(rng.choice(colors)), radius=r, start=start,
                       velocity=vel, wobble=float(rng.uniform(0, 0.04)), phase=float(rng.uniform(0, 6.28)))


def random_scene(rng: np.random.Generator, num_frames: int, difficulty: str = "standard") -> Scene:
    easy = difficulty == "easy"
    n_obj = int(rng.integers(1, 3)) if easy else int(rng.integers(2, 4))
    speed = 0.02 if easy else 0.035
    cam = (0.0, 0.0) if easy else (float(rng.uniform(-0.01, 0.01)), float(rng.uniform(-0.03, 0.03)))
    style = "smooth" if easy else "texture"
    objs: list[SceneObject] = []
    for _ in range(n_obj):
        objs.append(random_object(rng, num_frames, speed, avoid_colors=[o.color for o in objs]))
    return Scene(background_seed=int(rng.integers(2**31)), background_style=style, camera_velocity=cam, objects=objs)


def first_frame_visibility(scene: Scene, h: int, w: int, masks: Optional[list[np.ndarray]] = None) -> np.ndarray:
    """Per object, the visible share of its silhouette in frame 0 (occluders and the frame border hide the rest)."""
    masks = masks if masks is not None else render(scene, h, w, 1)[1]
    full = [max(float((object_coverage(o, 0, h, w, ss=1) > 0.5).sum()), 1.0) for o in scene.objects]
    return np.array([m[0].sum() / f for m, f in zip(masks, full)])


def apply_edit(scene: Scene, edit_type: str, rng: np.random.Generator, num_frames: int,
               candidates: Optional[Sequence[int]] = None) -> tuple[Scene, list[int], str]:
    """Edit the scene; returns (edited scene, indices of edited objects in the union of both scenes, instruction).

    ``candidates``: the objects that may be edited (default all); ``make_sample`` passes the ones well visible in
    frame 0, since the edit is made on the first frame and cannot change what that frame does not show.
    """
    edited = copy.deepcopy(scene)
    candidates = list(range(len(scene.objects))) if candidates is None else list(candidates)
    k = int(candidates[int(rng.integers(len(candidates)))])
    obj = edited.objects[k]
    if edit_type == "add_object":
        new = random_object(rng, num_frames, 0.03, avoid_colors=[o.color for o in scene.objects])
        edited.objects.append(new)
        return edited, [len(scene.objects)], f"add a {new.describe()}"
    if edit_type == "remove_object":
        del edited.objects[k]
        return edited, [k], f"remove the {obj.describe()}"
    if edit_type == "replace_object":
        old = obj.describe()
        obj.shape = str(rng.choice([s for s in SHAPES if s != obj.shape]))
        obj.color = int(rng.choice([c for c in range(len(PALETTE)) if c != obj.color]))
        return edited, [k], f"replace the {old} with a {obj.describe()}"
    if edit_type == "change_color":
        old = obj.describe()
        obj.color = int(rng.choice([c for c in range(len(PALETTE)) if c != obj.color]))
        return edited, [k], f"make the {old} {COLOR_NAMES[obj.color]}"
    if edit_type == "change_appearance":
        old = obj.describe()
        obj.stripes = not obj.stripes
        return edited, [k], f"give the {old} {'stripes' if obj.stripes else 'a plain surface'}"
    raise ValueError(f"unknown synthetic edit type {edit_type!r}; expected one of {EDIT_TYPES}")


def edit_region(src_masks: list[np.ndarray], gt_masks: list[np.ndarray], edit_type: str, k: int) -> np.ndarray:
    """(T, h, w) bool: the visible silhouette of the edited object in the source or in the edited video."""
    if edit_type == "add_object":
        return gt_masks[k].copy()
    if edit_type == "remove_object":
        return src_masks[k].copy()
    return src_masks[k] | gt_masks[k]


def make_sample(seed: int, index: int, num_frames: int = 14, height: int = 64, width: int = 112,
                edit_type: Optional[str] = None, difficulty: str = "standard") -> Sample:
    """One deterministic sample (seed, index): source video, edited first frame, ground truth and masks."""
    rng = np.random.default_rng([seed, index])
    edit_type = edit_type or EDIT_TYPES[index % len(EDIT_TYPES)]
    scene = random_scene(rng, num_frames, difficulty)
    src, src_masks = render(scene, height, width, num_frames)
    visible = first_frame_visibility(scene, height, width, src_masks)
    candidates = np.flatnonzero(visible >= MIN_FIRST_FRAME_VISIBILITY)
    candidates = candidates if len(candidates) else [int(np.argmax(visible))]
    edited, (k,), instruction = apply_edit(scene, edit_type, rng, num_frames, candidates)
    gt, gt_masks = render(edited, height, width, num_frames)
    masks = edit_region(src_masks, gt_masks, edit_type, k)
    obj = (scene.objects + edited.objects)[k] if edit_type != "add_object" else edited.objects[k]
    return Sample(
        sample_id=f"syn{seed}-{index:04d}-{edit_type}", source_video=src, edited_image=gt[0].copy(),
        edit_mask=masks[0].copy(), instruction=instruction, edit_type=edit_type, gt_edited_video=gt,
        gt_masks=masks, fps=7.0, source_prompt=f"a {obj.describe()} moving over a background",
        target_prompt=None,
        meta={"generator": "synthetic", "seed": seed, "index": index, "difficulty": difficulty},
    ).validate()


class SyntheticDataset:
    """``num_samples`` samples cycling through the edit types; rendered on demand, deterministic from ``seed``."""

    def __init__(self, num_samples: int = 5, num_frames: int = 14, height: int = 64, width: int = 112, seed: int = 0,
                 difficulty: str = "standard", edit_types: Optional[Sequence[str]] = None, name: str = "synthetic"):
        self.name = name
        self.num_frames, self.height, self.width, self.seed, self.difficulty = num_frames, height, width, seed, difficulty
        self.edit_types = tuple(edit_types or EDIT_TYPES)
        bad = [e for e in self.edit_types if e not in EDIT_TYPES]
        if bad:
            raise ValueError(f"dataset.loader.edit_types: unknown {bad}; expected some of {EDIT_TYPES}")
        self._ids = [f"syn{seed}-{i:04d}-{self.edit_types[i % len(self.edit_types)]}" for i in range(num_samples)]

    def sample_ids(self) -> list[str]:
        return list(self._ids)

    def load(self, sample_id: str) -> Sample:
        index = self._ids.index(sample_id)
        return make_sample(self.seed, index, self.num_frames, self.height, self.width,
                           self.edit_types[index % len(self.edit_types)], self.difficulty)
