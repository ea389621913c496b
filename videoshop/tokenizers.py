"""Offline tokenizers of the real classes for tiny random stand-ins (no vocabulary download): CLIP's, for the text
baselines' SD family and the first-frame editors (InstructPix2Pix, FLUX.1 Kontext); a character-level one with Qwen's
special tokens, for the Qwen2.5-VL stand-ins (Qwen-Image-Edit's text encoder, the VLM judge)."""

from __future__ import annotations

import json
import os
import string
import tempfile

# Qwen2 / Qwen2.5-VL's chat and vision special tokens, each one id as in the released tokenizers
QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                "<|video_pad|>")
CHARACTERS = " \n" + string.ascii_letters + string.digits + string.punctuation


def char_level_tokenizer(special, characters: str = CHARACTERS, unk: str = "<unk>"):
    """A ``tokenizers.Tokenizer`` that splits text into single characters: the ``special`` tokens first (one id
    each, in order), then ``characters``, then ``unk`` for anything else."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(special)}
    for c in characters:
        vocab.setdefault(c, len(vocab))
    vocab.setdefault(unk, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    return tok


def _byte_alphabet() -> list[str]:
    """The 256 printable characters byte-level BPE (GPT-2, CLIP) maps bytes to."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def tiny_clip_tokenizer():
    """A real ``CLIPTokenizer`` over a byte-level vocabulary with no merges (every word splits into characters),
    written offline to a private temp dir (the tokenizer reads both files when built; concurrent processes never share
    a half-written file). Same class and call signature as SD's tokenizer; max length 77."""
    from transformers import CLIPTokenizer

    chars = list(_byte_alphabet())
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    with tempfile.TemporaryDirectory(prefix="videoshop_tiny_clip_tok_") as d:
        with open(os.path.join(d, "vocab.json"), "w") as f:
            json.dump(vocab, f)
        with open(os.path.join(d, "merges.txt"), "w") as f:
            f.write("#version: 0.2\n")
        return CLIPTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"), model_max_length=77,
                             pad_token="<|endoftext|>")
