"""V2VBench's frame metrics (Sun et al., "Diffusion model-based video editing: a survey", Sec. 4.2; code:
wenhao728/awesome-diffusion-v2v @ 20afc6f, v2vbench/*.py), each as an ``EditMetric``.

Protocol, as V2VBench's evaluators compute it (every choice a constructor argument, recorded in ``protocol()``):
  * frames: every frame of the edited video (``BaseEvaluator.stride = 1``; ``frame_stride`` here), at its own
    resolution; each model's own PIL image processor resizes (V2VBench ran transformers 4.x, whose default they
    are; 5.x defaults to torchvision ones) (V2VBench's videos are 24 frames, 512x512);
  * ``aesthetic`` (Frames Quality): LAION aesthetic predictor v2 (sac+logos+ava1, linearMSE head) on CLIP ViT-L/14
    image embeddings, L2-normalised; mean over frames; LAION's 1-10 scale (``aesthetic_score.py``);
  * ``clip_consistency`` (Semantic Consistency): openai/clip-vit-large-patch14 vision tower, the CLS token after the
    final layer norm (``pooler_output``, BEFORE the projection), L2-normalised; cosine of consecutive frames clamped
    at 0 (``max(0, cos)``), mean over the T-1 pairs; 0-1 (``clip_consistency.py``);
  * ``dino_consistency`` (Object Consistency): facebook/dinov2-base ``pooler_output`` (layer-normed CLS), the same
    clamped consecutive cosine (``dino_consistency.py``);
  * ``clip_text`` (Frames Text Alignment): openai/clip-vit-large-patch14 projected text and image embeddings,
    ``logit_scale.exp() * cos`` (100 x cos for this checkpoint), mean over frames (``clip_text_alignment.py``);
  * ``pickscore`` (Frames Pick Score): yuvalkirstain/PickScore_v1 (a CLIP ViT-H/14) with LAION's
    CLIP-ViT-H-14-laion2B-s32B-b79K processor, ``logit_scale.exp() * cos``, mean over frames (``pick_score.py``);
  * the edit prompt is V2VBench's target prompt (a description of the edited video); here the first non-empty of
    the sample's ``prompt_fields`` (default ``target_prompt``, then ``instruction``): the field used is noted per
    sample, and a sample with none is skipped with that reason.
Per-video values are averaged over videos (``EvaluatorWrapper.evaluate``: ``mean(axis=0)``).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from .backbones import SharedBackbone
from .base import EditMetric, check_same_shape
from .cache import FeatureCache, fingerprint
from .hf_backbones import (AESTHETIC_V2_LINEAR, CLIP_L14, DINOV2_BASE, PICKSCORE_MODEL, PICKSCORE_PROCESSOR,
                           commit_of, load_aesthetic, load_dinov2, load_hf_clip)

V2VBENCH_SOURCE = "V2VBench (wenhao728/awesome-diffusion-v2v @ 20afc6f)"


def v2vbench_frames(video: np.ndarray, stride: int = 1, start: int = 0) -> np.ndarray:
    """The frames V2VBench's ``load_video`` returns: ``frames[start::stride]`` (all frames by default)."""
    if stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {stride}")
    return video[start::stride]


def consecutive_cosine(features: torch.Tensor, clamp_negative: bool = True) -> float:
    """Mean over t of cos(f_t, f_{t-1}) of (T, D) features, each clamped at 0 (V2VBench's ``max(0, sim)``)."""
    f = torch.nn.functional.normalize(features.double(), dim=-1)
    sims = (f[1:] * f[:-1]).sum(-1)
    if clamp_negative:
        sims = sims.clamp(min=0)
    return float(sims.mean())


def edit_prompt(sample, fields: Sequence[str]) -> tuple[Optional[str], Optional[str]]:
    """(text, field) of the first non-empty ``fields`` attribute of ``sample``; (None, None) when none is set."""
    for name in fields:
        text = getattr(sample, name, None)
        if text:
            return str(text), name
    return None, None


class HFBackbone(SharedBackbone):
    """A metric's handle on a shared transformers backbone (``hf_backbones.FeatureMemo``)."""

    def modules(self):
        return self.value.modules()

    def __getitem__(self, name: str) -> Any:
        return self.value[name]

    def memo(self, key: str, fn) -> torch.Tensor:
        return self.value.memo.get_or_compute(key, fn)


def _pil(frames: np.ndarray) -> list[Image.Image]:
    return [Image.fromarray(np.ascontiguousarray(f)) for f in frames]


class _V2VMetric(EditMetric):
    """Shared plumbing: a backbone handle, the frame selection, a batched per-frame feature function."""

    higher_is_better = True
    config_key = "metrics.v2vbench"
    hub_default = CLIP_L14

    def __init__(self, model: Optional[str] = None, revision: Optional[str] = None, backbone: str = "real",
                 device: str = "auto", batch_size: int = 16, seed: int = 0, cache_dir: Optional[str] = None,
                 frame_stride: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if frame_stride < 1:
            raise ValueError(f"{self.config_key}.frame_stride must be >= 1, got {frame_stride}")
        self.model_id, self.revision, self.backbone = model or self.hub_default, revision, backbone
        self.batch_size, self.frame_stride, self.seed = batch_size, frame_stride, seed
        self.cache = FeatureCache(cache_dir, "v2vbench")
        self.net = HFBackbone(self._loader(seed), device)

    def _loader(self, seed: int):
        raise NotImplementedError

    def _batched(self, frames: np.ndarray, fn) -> torch.Tensor:
        out = [fn(_pil(frames[i:i + self.batch_size])) for i in range(0, len(frames), self.batch_size)]
        return torch.cat(out).float().cpu()

    def describe_backbone(self) -> str:
        if self.backbone == "tiny":
            return f"tiny random {type(self.net['model']).__name__} (seeded; numbers meaningless)"
        if self.backbone == "random":
            return f"{type(self.net['model']).__name__} real-size, RANDOM weights (timing only)"
        commit = commit_of(self.net["model"])
        return f"{self.model_id}{f' @ {self.revision}' if self.revision else ''}{f' (commit {commit})' if commit else ''}"

    def frames_protocol(self) -> str:
        which = "every frame" if self.frame_stride == 1 else f"frames[::{self.frame_stride}]"
        return f"{which} of the edited video at its resolution, the model's own PIL image processor"


class _ClipVision(_V2VMetric):
    """CLIP ViT features of frames: the pooled CLS token (pre-projection) and the projected image embedding."""

    def _loader(self, seed):
        return partial(load_hf_clip, self.model_id, getattr(self, "processor_id", None), self.revision,
                       self.backbone, seed=seed, config_key=self.config_key, architecture=self.architecture)

    architecture = "clip_l14"

    @torch.no_grad()
    def pooled(self, frames: np.ndarray) -> torch.Tensor:
        """(T, D_vision) ``vision_model(...).pooler_output`` of each frame (memoised per content in the backbone)."""
        model, proc = self.net["model"], self.net["images"]

        def run(ims):
            px = proc(ims, return_tensors="pt").pixel_values.to(self.net.device)
            return model.vision_model(pixel_values=px).pooler_output

        return self.net.memo(fingerprint("pooled", frames), lambda: self._batched(frames, run))

    @torch.no_grad()
    def image_embeds(self, frames: np.ndarray) -> torch.Tensor:
        model = self.net["model"]
        return model.visual_projection(self.pooled(frames).to(self.net.device)).float().cpu()

    @torch.no_grad()
    def text_embed(self, text: str) -> torch.Tensor:
        """(D,) projected text embedding of ``text`` (padding, truncation at 77 tokens as V2VBench); cached."""
        model, tok = self.net["model"], self.net["tokenizer"]

        def run():
            t = tok([text], padding=True, truncation=True, max_length=77, return_tensors="pt")
            out = model.text_model(input_ids=t.input_ids.to(self.net.device),
                                   attention_mask=t.attention_mask.to(self.net.device))
            return model.text_projection(out.pooler_output)[0].float().cpu()

        return self.cache.get_or_compute(fingerprint("text", text, *self.model_identity()), run)

    def model_identity(self) -> tuple:
        """Everything that tells one text model from another (cache keys): two metrics sharing a cache folder
        (CLIP_text and PickScore, tiny or random ones included) never read each other's entries."""
        return (type(self).__name__, self.model_id, getattr(self, "processor_id", None), self.revision,
                self.backbone, self.architecture, self.seed, self.describe_backbone())


class CLIPConsistency(_ClipVision):
    """V2VBench Semantic Consistency: clamped cosine of consecutive frames' CLIP ViT-L/14 CLS tokens (0-1)."""

    names = ("clip_consistency",)
    config_key = "metrics.clip_consistency"

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        return {"clip_consistency": consecutive_cosine(self.pooled(v2vbench_frames(edited, self.frame_stride)))}

    def protocol(self):
        return {"clip_consistency": f"{V2VBENCH_SOURCE} Semantic Consistency: {self.describe_backbone()}, vision "
                                    f"pooler_output (CLS, pre-projection), mean over consecutive frames of max(0, cos); "
                                    f"{self.frames_protocol()}; 0-1"}


class _TextAlignment(_ClipVision):
    """``logit_scale.exp() * cos(text, frame)`` averaged over frames (V2VBench's CLIP score and PickScore)."""

    def __init__(self, prompt_fields: Sequence[str] = ("target_prompt", "instruction"), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt_fields = tuple(prompt_fields)

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        name = self.names[0]
        text, _ = edit_prompt(sample, self.prompt_fields)
        if text is None:
            return {name: None}
        t = torch.nn.functional.normalize(self.text_embed(text).double(), dim=-1)
        e = torch.nn.functional.normalize(self.image_embeds(v2vbench_frames(edited, self.frame_stride)).double(), dim=-1)
        scale = float(self.net["model"].logit_scale.detach().exp())
        return {name: scale * float((e @ t).mean())}

    def skip_reason(self, name, sample):
        return f"no edit prompt (none of {', '.join(self.prompt_fields)} is set)"

    def sample_notes(self, sample):
        text, field = edit_prompt(sample, self.prompt_fields)
        return [f"{self.names[0]}: prompt from {field}"] if field and field != self.prompt_fields[0] else []

    def text_protocol(self) -> str:
        return (f"prompt = first set of {', '.join(self.prompt_fields)} (V2VBench: the target prompt), padded, "
                f"truncated at 77 tokens; logit_scale.exp() * cos(text, frame), mean over frames; "
                f"{self.frames_protocol()}")


class CLIPTextAlignment(_TextAlignment):
    """V2VBench Frames Text Alignment: CLIP ViT-L/14 score of each frame against the edit prompt (x logit scale)."""

    names = ("clip_text",)
    config_key = "metrics.clip_text"

    def protocol(self):
        return {"clip_text": f"{V2VBENCH_SOURCE} Frames Text Alignment: {self.describe_backbone()}, projected "
                             f"embeddings; {self.text_protocol()}"}


class PickScore(_TextAlignment):
    """V2VBench Frames Pick Score: PickScore_v1 (CLIP ViT-H/14 fine-tuned on Pick-a-Pic preferences)."""

    names = ("pickscore",)
    config_key = "metrics.pickscore"
    hub_default = PICKSCORE_MODEL
    architecture = "clip_h14"

    def __init__(self, processor: Optional[str] = PICKSCORE_PROCESSOR, **kwargs: Any) -> None:
        self.processor_id = processor
        super().__init__(**kwargs)

    def protocol(self):
        proc = f" with processor {self.processor_id}" if self.backbone == "real" else ""
        return {"pickscore": f"{V2VBENCH_SOURCE} Frames Pick Score: {self.describe_backbone()}{proc}; "
                             f"{self.text_protocol()}"}


class DINOConsistency(_V2VMetric):
    """V2VBench Object Consistency: clamped cosine of consecutive frames' DINOv2-base CLS tokens (0-1)."""

    names = ("dino_consistency",)
    config_key = "metrics.dino_consistency"
    hub_default = DINOV2_BASE

    def _loader(self, seed):
        return partial(load_dinov2, self.model_id, self.revision, self.backbone, seed=seed, config_key=self.config_key)

    @torch.no_grad()
    def pooled(self, frames: np.ndarray) -> torch.Tensor:
        model, proc = self.net["model"], self.net["images"]

        def run(ims):
            return model(pixel_values=proc(ims, return_tensors="pt").pixel_values.to(self.net.device)).pooler_output

        return self.net.memo(fingerprint("dino", frames), lambda: self._batched(frames, run))

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        return {"dino_consistency": consecutive_cosine(self.pooled(v2vbench_frames(edited, self.frame_stride)))}

    def protocol(self):
        return {"dino_consistency": f"{V2VBENCH_SOURCE} Object Consistency: {self.describe_backbone()}, "
                                    f"pooler_output (layer-normed CLS), mean over consecutive frames of max(0, cos); "
                                    f"{self.frames_protocol()}; 0-1"}


class AestheticScore(_V2VMetric):
    """V2VBench Frames Quality: the LAION aesthetic predictor's score of each frame, averaged (1-10 scale)."""

    names = ("aesthetic",)
    config_key = "metrics.aesthetic"
    hub_default = AESTHETIC_V2_LINEAR

    def _loader(self, seed):
        return partial(load_aesthetic, self.model_id, self.revision, self.backbone, seed=seed,
                       config_key=self.config_key)

    @torch.no_grad()
    def frame_scores(self, frames: np.ndarray) -> torch.Tensor:
        model, proc = self.net["model"], self.net["images"]

        def run(ims):
            return model(proc(ims, return_tensors="pt").pixel_values.to(self.net.device))

        return self.net.memo(fingerprint("aesthetic", frames), lambda: self._batched(frames, run))

    def score(self, sample, edited):
        check_same_shape(sample, edited)
        return {"aesthetic": float(self.frame_scores(v2vbench_frames(edited, self.frame_stride)).double().mean())}

    def protocol(self):
        return {"aesthetic": f"{V2VBENCH_SOURCE} Frames Quality: {self.describe_backbone()}, LAION improved "
                             f"aesthetic predictor (linear MLP on L2-normalised CLIP ViT-L/14 image embeddings), "
                             f"mean over frames; {self.frames_protocol()}; 1-10"}
