"""The first-frame edit apart from its propagation (experiment ``first_frame_editors``): how good the image editor's
edit of frame 0 is on its own, and how much of it the video method keeps over frames 1..T-1.

All CLIP numbers are cosine similarities x100 of L2-normalised open_clip embeddings (the backbone of eval/clip.py);
the text is the sample's target prompt, else its instruction.

Frame 0, the editor's image I' against the source frame I and the text (``FirstFrameEdit``):
  * ``ff_clip_text``     cos(E(I'), T(text)): the edit matches the text (CLIP score, Hessel et al. 2021, unweighted);
  * ``ff_clip_dir``      cos(E(I') - E(I), T(target) - T(source)): CLIP directional similarity (Gal et al. 2022,
                         InstructPix2Pix's Fig. 8 metric); needs both prompts, skipped otherwise;
  * ``ff_clip_src``      cos(E(I'), E(I)): the edit keeps the source frame (CLIP_src on frame 0);
  * ``ff_clip_src_plus`` the same with the edit region (the sample's edit mask) filled in both (CLIP_src+ on frame 0);
  * ``ff_area``          fraction of the frame inside the edit mask (x100).

Frames 1..T-1 of the edited video V (``LaterFrames``), against the same references:
  * ``later_clip_text``   mean_t cos(E(V_t), T(text)): the text still holds (compare with ``ff_clip_text``);
  * ``last_clip_tgt``    cos(E(V_{T-1}), E(I')): the last frame, where an edit that fades has faded most;
  * ``frame0_kept``      cos(E(V_0), E(I')): how faithfully the method reproduces the frame it was given;
  * curve ``clip_text``  cos(E(V_t), T(text)) for every frame t (kept in the record, plotted per editor).
``ff_clip_text`` high and ``later_clip_text`` low: the video method lost the edit; both low: the image editor did.
The paper's ten metrics over frames 1..T-1 (``clip_tgt[1:]``, ``clip_src[1:]``, ...) are the run's own metrics on
a frame window (eval/windows.py, config ``frame_windows``), not copies here.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from .base import check_same_shape
from .cache import fingerprint
from .clip import _ClipMetric, fill_region


def target_text(sample) -> str:
    """The text an edit is judged against: the target prompt where the sample has one, else its instruction."""
    return (sample.target_prompt or sample.instruction or "").strip()


class _ClipTextMetric(_ClipMetric):
    """A CLIP metric that also embeds text (open_clip ``encode_text``, the model's own tokenizer)."""

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        import open_clip

        model = self.clip.model
        name = self.clip.model_name if self.clip.backbone != "tiny" else "videoshop-tiny-clip"
        tokens = open_clip.get_tokenizer(name)(texts)
        vocab = int(model.token_embedding.num_embeddings) if hasattr(model, "token_embedding") else None
        if vocab is not None and int(tokens.max()) >= vocab:  # the tiny stand-in's 1000-token table: ids folded
            tokens = tokens % vocab
        e = model.encode_text(tokens.to(self.clip.device)).float()
        return torch.nn.functional.normalize(e, dim=-1).cpu()

    def _cached_text(self, text: str) -> torch.Tensor:
        key = fingerprint("text", text, self.clip.describe(), self.clip.checkpoint or self.clip.pretrained)
        return self.cache.get_or_compute(key, lambda: self.embed_text([text]))


def _cos100(a: torch.Tensor, b: torch.Tensor) -> float:
    return 100.0 * float((a * b).sum(-1).mean())


class FirstFrameEdit(_ClipTextMetric):
    """The image editor's edit of frame 0 on its own (module docstring); reads the sample, not the edited video."""

    names = ("ff_clip_text", "ff_clip_dir", "ff_clip_src", "ff_clip_src_plus", "ff_area")
    higher_is_better = True
    config_key = "metrics.first_frame"

    def __init__(self, fill: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fill = fill

    def score(self, sample, edited):
        text = target_text(sample)
        src0, img = sample.source_video[0], sample.edited_image
        e_img, e_src = self._cached_embed("ff_edit", img[None])[0], self._cached_embed("ff_source", src0[None])[0]
        out: dict[str, Optional[float]] = {"ff_clip_text": _cos100(e_img, self._cached_text(text)[0]) if text else None,
                                           "ff_clip_src": _cos100(e_img, e_src), "ff_clip_dir": None,
                                           "ff_clip_src_plus": None, "ff_area": None}
        if sample.source_prompt and sample.target_prompt:
            d_img = e_img - e_src
            d_txt = self._cached_text(sample.target_prompt)[0] - self._cached_text(sample.source_prompt)[0]
            out["ff_clip_dir"] = 100.0 * float(torch.nn.functional.cosine_similarity(d_img, d_txt, dim=0))
        mask = sample.edit_mask
        if mask is not None:
            out["ff_area"] = 100.0 * float(np.mean(mask))
            if mask.any() and not mask.all():
                a = self.clip.embed([fill_region(img[None], mask[None], self.fill)[0]])[0]
                b = self.clip.embed([fill_region(src0[None], mask[None], self.fill)[0]])[0]
                out["ff_clip_src_plus"] = _cos100(a, b)
        return out

    def skip_reason(self, name: str, sample) -> str:
        if name == "ff_clip_dir":
            return "needs a source and a target prompt"
        if name == "ff_clip_text":
            return "no target prompt or instruction"
        if name in ("ff_area", "ff_clip_src_plus") and sample.edit_mask is None:
            return "no edit mask"
        return super().skip_reason(name, sample)

    def protocol(self):
        c = self.clip.describe()
        return {"ff_clip_text": f"{c}; edited first frame vs the target prompt (else the instruction), text embedded",
                "ff_clip_dir": f"{c}; cos(E(edit) - E(source frame 0), T(target prompt) - T(source prompt))",
                "ff_clip_src": f"{c}; edited first frame vs source frame 0",
                "ff_clip_src_plus": f"{c}; as ff_clip_src, the edit mask filled with {self.fill} in both",
                "ff_area": "percent of frame 0 inside the edit mask (editor's, by difference, or the dataset's)"}


class LaterFrames(_ClipTextMetric):
    """What the video method keeps of the first-frame edit's text match over frames 1..T-1 (module docstring)."""

    names = ("later_clip_text", "last_clip_tgt", "frame0_kept")
    curve_names = ("clip_text",)
    higher_is_better = True
    config_key = "metrics.later_frames"

    def frame_text_similarity(self, sample, edited: np.ndarray) -> np.ndarray:
        """(T,) cos x100 of each edited frame with the target text (frame 0 included): the text curve."""
        text = target_text(sample)
        return 100.0 * (self.clip.embed(list(edited)) @ self._cached_text(text)[0]).numpy()

    def score_curves(self, sample, edited):
        check_same_shape(sample, edited)
        frames = self.clip.embed(list(edited))
        tgt = self._cached_embed("ff_edit", sample.edited_image[None])[0]
        text = target_text(sample)
        curve = 100.0 * (frames @ self._cached_text(text)[0]).numpy() if text else None
        values = {"later_clip_text": float(curve[1:].mean()) if text else None,
                  "last_clip_tgt": _cos100(frames[-1], tgt), "frame0_kept": _cos100(frames[0], tgt)}
        return values, ({"clip_text": [float(v) for v in curve]} if text else {})

    def score(self, sample, edited):
        return self.score_curves(sample, edited)[0]

    def skip_reason(self, name: str, sample) -> str:
        return "no target prompt or instruction" if name == "later_clip_text" else super().skip_reason(name, sample)

    def protocol(self):
        c = self.clip.describe()
        return {"later_clip_text": f"{c}; mean over frames 1..T-1 of cos(edited_t, target text)",
                "last_clip_tgt": f"{c}; cos(last edited frame, edited first frame)",
                "frame0_kept": f"{c}; cos(edited frame 0, edited first frame)"}
