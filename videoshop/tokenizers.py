"""Offline tokenizers of the real classes for tiny random stand-ins (no vocabulary download): CLIP's, for the text
baselines' SD family and the first-frame editors (InstructPix2Pix, FLUX.1 Kontext)."""

from __future__ import annotations

import json
import os
import tempfile


def _byte_alphabet() -> list[str]:
    """The 256 printable characters byte-level BPE (GPT-2, CLIP) maps bytes to."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def tiny_clip_tokenizer():
    """A real ``CLIPTokenizer`` over a byte-level vocabulary with no merges (every word splits into characters),
    written to a temp dir offline. Same class and call signature as SD's tokenizer; max length 77."""
    from transformers import CLIPTokenizer

    d = os.path.join(tempfile.gettempdir(), "videoshop_tiny_clip_tok")
    os.makedirs(d, exist_ok=True)
    chars = list(_byte_alphabet())
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    with open(os.path.join(d, "vocab.json"), "w") as f:
        json.dump(vocab, f)
    with open(os.path.join(d, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
    return CLIPTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"), model_max_length=77,
                         pad_token="<|endoftext|>")
