"""The VLM judge's backends: a transformers vision-language chat model (default Qwen2.5-VL-7B-Instruct), its tiny
random stand-in, and an OpenAI-compatible HTTP endpoint (off unless configured).

A backend answers ``ask(content)``: ``content`` is a chat turn's parts in order, ``{"type": "text", "text": s}``,
``{"type": "image", "image": (H, W, 3) uint8}`` or ``{"type": "video", "video": (T, H, W, 3) uint8}``; it returns
``{"raw": answer text, "model": the model that answered, "revision": its pinned revision or commit,
"answered_at": UTC ISO date}``. Decoding is greedy (transformers: ``do_sample=False``, one beam; API: temperature
0 and a fixed seed), so one backend gives one answer per input and the metric cache can keep it.
``identity()`` names everything that changes the answers; it is part of the cache key.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import os
import urllib.error
import urllib.request
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from videoshop.tokenizers import QWEN_SPECIAL, char_level_tokenizer

from .backbones import MissingWeightsError, SharedBackbone, _seeded, shared

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"

# --------------------------------------------------------------------------------------------- tiny stand-in
TINY_SPECIAL = QWEN_SPECIAL
# Qwen2-VL's chat layout (system turn omitted): the real processor brings its own template from the hub.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'video' %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_qwen_processor(max_pixels: int = 28 * 28 * 16):
    """A real ``Qwen2_5_VLProcessor`` built offline: character-level fast tokenizer with Qwen's special tokens,
    Qwen2-VL image and video processors (small ``max_pixels``), the chat layout above."""
    from tokenizers import decoders
    from transformers import (PreTrainedTokenizerFast, Qwen2_5_VLProcessor, Qwen2VLImageProcessor,
                              Qwen2VLVideoProcessor)

    tk = char_level_tokenizer(TINY_SPECIAL)
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<|endoftext|>",
                                  eos_token="<|im_end|>", additional_special_tokens=list(TINY_SPECIAL[1:]))
    tok.image_token, tok.video_token = "<|image_pad|>", "<|video_pad|>"
    small = dict(min_pixels=28 * 28 * 4, max_pixels=max_pixels)
    return Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**small), tokenizer=tok,
                               video_processor=Qwen2VLVideoProcessor(**small), chat_template=TINY_CHAT_TEMPLATE)


def qwen25_vl_config(size: str, vocab: dict[str, int], vocab_size: int):
    """``Qwen2_5_VLConfig``: ``tiny`` (1 layer, width 32) or ``7b`` (Qwen2.5-VL-7B-Instruct's sizes, for timing)."""
    from transformers import Qwen2_5_VLConfig

    ids = dict(image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
               vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"])
    special = dict(bos_token_id=vocab["<|endoftext|>"], eos_token_id=vocab["<|im_end|>"], pad_token_id=0)
    if size == "tiny":
        text = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                    num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]}, **special)
        vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                      fullatt_block_indexes=[0])
    elif size == "7b":
        text = dict(vocab_size=vocab_size, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                    num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000,
                    rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
                    **special)
        vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                      fullatt_block_indexes=[7, 15, 23, 31], window_size=112)
    else:
        raise ValueError(f"size must be tiny or 7b, got {size!r}")
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids, **special)


def build_random_qwen25_vl(size: str, seed: int, dtype: torch.dtype = torch.float32):
    """(Qwen2_5_VLForConditionalGeneration with seeded random weights, the offline tiny processor)."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    proc = tiny_qwen_processor()
    tok = proc.tokenizer
    cfg = qwen25_vl_config(size, tok.get_vocab(), len(tok))
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in ``dtype``: the 7B sizes never exist in fp32 on the way (33 GB)
    try:
        with torch.device("cpu"):
            model = _seeded(seed, lambda: Qwen2_5_VLForConditionalGeneration(cfg))
    finally:
        torch.set_default_dtype(default)
    return model.eval(), proc


# ----------------------------------------------------------------------------------------- loading
def load_vlm(model: str, revision: Optional[str], path: Optional[str], model_class: str, dtype: torch.dtype,
             device: torch.device, config_key: str):
    """(model, processor) from a local ``path`` or the hub id ``model`` at ``revision``; one-line
    ``MissingWeightsError`` naming ``config_key`` when the weights are not here."""
    import transformers

    if path and not os.path.isdir(path):
        raise MissingWeightsError(f"{config_key}.path: {path} does not exist; set {config_key}.path=DIR (a local "
                                  f"copy of {model}) or {config_key}.backbone=tiny")
    source = path or model
    rev = None if path else revision
    try:
        cls = getattr(transformers, model_class)
        m = cls.from_pretrained(source, revision=rev, dtype=dtype)
        proc = transformers.AutoProcessor.from_pretrained(source, revision=rev)
    except (OSError, ValueError) as e:
        raise MissingWeightsError(
            f"{config_key}.model: {model}{f' @ {revision}' if revision else ''} not found offline; set "
            f"{config_key}.path=DIR (e.g. from `huggingface-cli download {model}` on a connected machine) "
            f"({type(e).__name__})") from None
    return m.eval().to(device), proc


def video_kwargs(processor, fps: float) -> dict[str, Any]:
    """Processor arguments for a video given as a list of frames, as FiVE gives it: qwen-vl-utils reads such a list
    frame by frame as IMAGES (``fetch_image``: the image pixel bounds, no per-frame video cap), and the processor
    gets ``fps=10``. So the video's frames take the image processor's bounds here (Qwen2.5-VL-7B: 3136 to 12845056
    pixels) and no video cap."""
    out: dict[str, Any] = {"fps": fps, "cap_pixels_per_frame": False}
    size = getattr(getattr(processor, "image_processor", None), "size", None)
    if size is not None and getattr(size, "shortest_edge", None) and getattr(size, "longest_edge", None):
        out["size"] = {"shortest_edge": int(size.shortest_edge), "longest_edge": int(size.longest_edge)}
    return out


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class TransformersJudge(SharedBackbone):
    """A transformers vision-language chat model answering greedily (``backbone``: real | tiny | random-7b).

    A ``SharedBackbone``: ``value`` = (model, processor), one instance per configuration and device;
    ``to(device)`` (from the owning metric's ``.to()``) rebinds to the instance for that device."""

    def __init__(self, model: str = DEFAULT_MODEL, revision: Optional[str] = None, path: Optional[str] = None,
                 model_class: str = "AutoModelForImageTextToText", backbone: str = "real", dtype: str = "auto",
                 device: str | torch.device = "auto", seed: int = 0, max_new_tokens: int = 128,
                 video_fps: float = 10.0, config_key: str = "metrics.vlm_judge") -> None:
        if backbone not in ("real", "tiny", "random-7b"):
            raise ValueError(f"{config_key}.backbone must be real, tiny or random-7b, got {backbone!r}")
        self.model_id, self.revision, self.path, self.backbone = model, revision, path, backbone
        self.model_class, self.dtype_choice, self.config_key = model_class, dtype, config_key
        self.max_new_tokens, self.video_fps, self.seed = int(max_new_tokens), float(video_fps), seed
        if backbone != "real":
            size = "tiny" if backbone == "tiny" else "7b"
            self.model_id, self.revision = f"RANDOM Qwen2_5_VL ({size} sizes, seed {seed})", f"seed{seed}"
        super().__init__(self._load, device)
        if backbone == "real":
            self.revision = revision or getattr(self.model.config, "_commit_hash", None) or "unpinned"

    def _dtype_for(self, dev: torch.device) -> torch.dtype:
        if self.dtype_choice == "auto":
            return torch.bfloat16 if dev.type == "cuda" else torch.float32
        return getattr(torch, self.dtype_choice)

    def _load(self, dev: torch.device):
        dtype = self._dtype_for(dev)
        key = ("vlm", self.backbone, self.model_id, self.revision, self.path, self.model_class, str(dev), str(dtype),
               self.seed)
        if self.backbone == "real":
            return shared(key, lambda: load_vlm(self.model_id, self.revision, self.path, self.model_class, dtype,
                                                dev, self.config_key))
        size = "tiny" if self.backbone == "tiny" else "7b"

        def build():
            m, p = build_random_qwen25_vl(size, self.seed, dtype)
            return m.to(dev), p

        return shared(key, build)

    @property
    def model(self):
        return self.value[0]

    @property
    def processor(self):
        return self.value[1]

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype_for(self.device)

    def identity(self) -> dict[str, Any]:
        return {"kind": "transformers", "model": self.model_id, "revision": self.revision, "dtype": str(self.dtype),
                "decoding": "greedy", "video_fps": self.video_fps}

    def describe(self) -> str:
        return (f"{self.model_id} @ {self.revision} (transformers, {str(self.dtype).replace('torch.', '')}, greedy, "
                f"max {self.max_new_tokens} new tokens)")

    @torch.no_grad()
    def ask(self, content: list[dict[str, Any]], max_new_tokens: Optional[int] = None) -> dict[str, Any]:
        parts, images, videos = [], [], []
        for c in content:
            if c["type"] == "text":
                parts.append({"type": "text", "text": c["text"]})
            elif c["type"] == "image":
                parts.append({"type": "image"})
                images.append(Image.fromarray(np.ascontiguousarray(c["image"])))
            else:
                parts.append({"type": "video"})
                videos.append([Image.fromarray(np.ascontiguousarray(f)) for f in c["video"]])
        prompt = self.processor.apply_chat_template([{"role": "user", "content": parts}], tokenize=False,
                                                    add_generation_prompt=True)
        kwargs: dict[str, Any] = {"images": images or None, "videos": videos or None}
        if videos:
            kwargs.update(video_kwargs(self.processor, self.video_fps))
        x = self.processor(text=[prompt], return_tensors="pt", **kwargs).to(self.device)
        for k in ("pixel_values", "pixel_values_videos"):
            if k in x:
                x[k] = x[k].to(self.dtype)
        out = self.model.generate(**x, max_new_tokens=int(max_new_tokens or self.max_new_tokens), do_sample=False,
                                  num_beams=1, temperature=None, top_p=None, top_k=None)
        raw = self.processor.batch_decode(out[:, x["input_ids"].shape[1]:], skip_special_tokens=True,
                                          clean_up_tokenization_spaces=False)[0]
        return {"raw": raw, "model": self.model_id, "revision": self.revision, "answered_at": _utc_now()}


# ------------------------------------------------------------------------------------------- API judge
def _data_url(image: np.ndarray, quality: int = 95) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def openai_chat_content(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our content parts as OpenAI chat ``content``: text as text, an image as a JPEG data URL (quality 95, the
    OpenCV default EditVerse uses), a video as its frames in order (the chat API takes images, not videos)."""
    out: list[dict[str, Any]] = []
    for c in content:
        if c["type"] == "text":
            out.append({"type": "text", "text": c["text"]})
        else:
            for frame in ([c["image"]] if c["type"] == "image" else list(c["video"])):
                out.append({"type": "image_url", "image_url": {"url": _data_url(frame)}})
    return out


class ApiJudge:
    """An OpenAI-compatible ``/chat/completions`` endpoint (temperature 0, fixed seed). Built only when
    ``api.base_url`` and ``api.model`` are configured; the key is read from the environment variable named by
    ``api_key_env`` and never stored. Each answer records the model name the server reports and the date."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0,
                 max_tokens: int = 512, seed: int = 0, config_key: str = "metrics.vlm_judge.api") -> None:
        if not base_url or not model:
            raise ValueError(f"{config_key}: base_url and model must both be set for the API judge")
        self.base_url, self.model_id, self.api_key_env = base_url.rstrip("/"), model, api_key_env
        self.timeout, self.max_tokens, self.seed, self.config_key = timeout, int(max_tokens), int(seed), config_key
        self.revision = "api"

    def identity(self) -> dict[str, Any]:
        return {"kind": "openai-api", "base_url": self.base_url, "model": self.model_id,
                "decoding": f"temperature 0, seed {self.seed}"}

    def describe(self) -> str:
        return f"{self.model_id} via OpenAI-compatible API at {self.base_url} (temperature 0, seed {self.seed})"

    def ask(self, content: list[dict[str, Any]], max_new_tokens: Optional[int] = None) -> dict[str, Any]:
        body = {"model": self.model_id, "temperature": 0, "seed": self.seed,
                "max_tokens": int(max_new_tokens or self.max_tokens),
                "messages": [{"role": "user", "content": openai_chat_content(content)}]}
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(f"{self.base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:  # noqa: S310 (configured endpoint)
                reply = json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{self.config_key}.base_url: {self.base_url} answered HTTP {e.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise RuntimeError(f"{self.config_key}.base_url: {self.base_url} unreachable or not JSON "
                               f"({type(e).__name__})") from None
        try:
            raw = reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise RuntimeError(f"{self.config_key}: reply without choices[0].message.content") from None
        created = reply.get("created")
        when = (_dt.datetime.fromtimestamp(int(created), _dt.timezone.utc).isoformat() if isinstance(created, int)
                else _utc_now())
        return {"raw": raw, "model": str(reply.get("model") or self.model_id), "revision": "api", "answered_at": when}
