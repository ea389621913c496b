"""The models TIFA runs (``eval/tifa.py``) and the text baselines' prompt maker reuses: loading by hub id or local
directory with a one-line error, greedy / beam text generation, and tiny seeded stand-ins of the same transformers
classes (BLIP, LLaMA, T5) over an offline word-piece vocabulary."""

from __future__ import annotations

import os
import string
import tempfile
from typing import Any

import torch

from .backbones import MissingWeightsError, _seeded
from .tifa_qa import MAX_INPUT_TOKENS

MODEL_CLASSES = {"caption": "BlipForConditionalGeneration", "vqa": "BlipForQuestionAnswering",
                 "causal": "AutoModelForCausalLM", "seq2seq": "AutoModelForSeq2SeqLM", "sbert": "AutoModel"}


def load_text_model(kind: str, ident: str, key: str, dtype: torch.dtype, device: torch.device):
    """(model, processor-or-tokenizer) of ``kind`` (a MODEL_CLASSES key) from a hub id or local dir; one-line
    MissingWeightsError naming ``key`` when absent."""
    import transformers

    proc_cls = "AutoProcessor" if kind in ("caption", "vqa") else "AutoTokenizer"
    try:
        model = getattr(transformers, MODEL_CLASSES[kind]).from_pretrained(ident, torch_dtype=dtype)
        proc = getattr(transformers, proc_cls).from_pretrained(ident)
    except (OSError, ValueError) as e:
        raise MissingWeightsError(f"{key}: {ident} not found offline; set {key}=PATH (a local model directory) "
                                  f"({type(e).__name__})") from None
    return model.eval().to(device), proc


@torch.no_grad()
def generate_text(model, tok, prompt: str, device: torch.device, causal: bool, max_new_tokens: int,
                  num_beams: int = 1) -> str:
    """Deterministic decoding of ``prompt`` (at most MAX_INPUT_TOKENS read); a causal model's prompt is cut off."""
    enc = tok(prompt, return_tensors="pt", truncation=True, max_length=MAX_INPUT_TOKENS).to(device)
    enc.pop("token_type_ids", None)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams,
                         pad_token_id=tok.pad_token_id)
    if causal:
        out = out[:, enc["input_ids"].shape[1]:]
    return tok.decode(out[0], skip_special_tokens=True)


# ------------------------------------------------------------------------------------------ tiny stand-ins
_TINY_WORDS = ("yes no a an the is are of on in with and to this image show does what color red green blue yellow "
               "white black object shape circle square triangle about q choices entities description").split()


def tiny_tokenizer():
    """A BertTokenizer over a small offline vocabulary (special tokens, characters, a few words)."""
    from transformers import BertTokenizer

    d = os.path.join(tempfile.gettempdir(), "videoshop_tiny_tok")
    os.makedirs(d, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"] + list(string.ascii_lowercase + string.digits) + \
        list(string.punctuation) + ["##" + c for c in string.ascii_lowercase + string.digits] + list(_TINY_WORDS)
    path = os.path.join(d, "vocab.txt")
    with open(path, "w") as f:
        f.write("\n".join(dict.fromkeys(vocab)) + "\n")  # first occurrence of each, in order
    return BertTokenizer(path, do_lower_case=True, bos_token="[DEC]")


def tiny_blip(cls_name: str, vocab_size: int):
    """A random one-layer BLIP of class ``cls_name`` (captioning or VQA) at 32 px."""
    import transformers
    from transformers import BlipConfig

    cfg = BlipConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, encoder_hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=512, pad_token_id=0,
                         bos_token_id=5, eos_token_id=3, sep_token_id=3),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=32)
    return getattr(transformers, cls_name)(cfg)


def tiny_processor(tok):
    """A BLIP processor at 32 px over ``tok``."""
    from transformers import BlipImageProcessor, BlipProcessor

    return BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok)


def tiny_llama(vocab_size: int):
    """A random one-layer LLaMA causal LM (TIFA's question generator's class)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                        max_position_embeddings=2048, pad_token_id=0, bos_token_id=2,
                                        eos_token_id=3))


def tiny_t5(vocab_size: int):
    """A random one-layer T5 (UnifiedQA's class; the text baselines' prompt rewriter)."""
    from transformers import T5Config, T5ForConditionalGeneration

    return T5ForConditionalGeneration(T5Config(vocab_size=vocab_size, d_model=32, d_kv=16, d_ff=64, num_layers=1,
                                               num_heads=2, pad_token_id=0, eos_token_id=3, decoder_start_token_id=0))


def tiny_tifa_models(seed: int, with_filter: bool, device: torch.device) -> dict[str, Any]:
    """TIFA's captioner, VQA model, question generator and (``with_filter``) UnifiedQA filter as seeded tiny
    stand-ins sharing one tokenizer: {role: (model, processor-or-tokenizer)}."""
    tok = tiny_tokenizer()
    v = len(tok)
    proc = tiny_processor(tok)
    m = {"caption": (_seeded(seed, lambda: tiny_blip("BlipForConditionalGeneration", v)), proc),
         "vqa": (_seeded(seed + 1, lambda: tiny_blip("BlipForQuestionAnswering", v)), proc),
         "qg": (_seeded(seed + 2, lambda: tiny_llama(v)), tok)}
    if with_filter:
        m["filter"] = (_seeded(seed + 3, lambda: tiny_t5(v)), tok)
    for model, _ in m.values():
        model.eval().to(device)
    return m
