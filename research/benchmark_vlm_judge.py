"""Per-video cost of the VLM judge with Qwen2.5-VL-7B-Instruct's architecture at random weights (a script, not a test).

    python research/benchmark_vlm_judge.py --layers 1 2 --dtype bfloat16 --threads 1

The full 7B model (8.3B parameters: 15.5 GiB in bf16, 31 GiB in fp32) does not fit beside other jobs in this
machine's 24 GiB, so the script builds the REAL-SIZE architecture (vision tower of 32 blocks, 3584-wide decoder,
152k vocabulary, Qwen2.5-VL-7B's config) with only ``--layers`` of the 28 decoder layers, runs the judge's two
protocols end to end (FiVE: the multiple-choice and target yes/no questions on FiVE's frames as one video;
EditVerse: the rubric on each of its frames with two images) on a synthetic sample, and extrapolates linearly in
the number of decoder layers: cost(28) = cost(L1) + (28 - L1) * (cost(L2) - cost(L1)) / (L2 - L1).
Images and videos go through Qwen2-VL's real image / video processors with Qwen2.5-VL-7B-Instruct's pixel bounds
(3136 to 12845056; FiVE's frames as images, eval/judge_backends.py ``video_kwargs``); the text through a
word-level offline tokenizer (about one token per word; Qwen's BPE gives somewhat more). Answers are forced to
``--five-tokens`` / ``--editverse-tokens`` new tokens (random weights never stop by themselves): a FiVE answer is a
word or two, an EditVerse rubric answer about a hundred tokens. Model building is excluded. Costs are CPU seconds of
this process (``time.process_time``, one thread): on a shared machine wall time depends on the other jobs, and the
layer difference that the extrapolation multiplies by 27 must not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from videoshop import _compat  # noqa: E402,F401


def word_processor(texts: list[str]):
    """A real Qwen2_5_VLProcessor whose tokenizer is word-level over ``texts`` (offline), with the default pixel
    bounds of Qwen2-VL's image and video processors."""
    import re

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (PreTrainedTokenizerFast, Qwen2_5_VLProcessor, Qwen2VLImageProcessor,
                              Qwen2VLVideoProcessor)

    from videoshop_bench.eval.judge_backends import TINY_CHAT_TEMPLATE, TINY_SPECIAL

    vocab = {s: i for i, s in enumerate(TINY_SPECIAL)}
    for t in texts + ["user assistant"]:
        for w in re.findall(r"\w+|[^\w\s]", t):
            vocab.setdefault(w, len(vocab))
    vocab["<unk>"] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<|endoftext|>",
                                  eos_token="<|im_end|>", additional_special_tokens=list(TINY_SPECIAL[1:]))
    tok.image_token, tok.video_token = "<|image_pad|>", "<|video_pad|>"
    bounds = dict(min_pixels=3136, max_pixels=12845056)  # Qwen2.5-VL-7B-Instruct's preprocessor_config.json
    return Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**bounds), tokenizer=tok,
                               video_processor=Qwen2VLVideoProcessor(**bounds), chat_template=TINY_CHAT_TEMPLATE)


def build(layers: int, dtype, proc, seed: int = 0):
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from videoshop_bench.eval.judge_backends import qwen25_vl_config

    vocab = proc.tokenizer.get_vocab()
    cfg = qwen25_vl_config("7b", vocab, 152064)  # Qwen2.5-VL-7B's vocabulary size (embedding and lm_head)
    cfg.text_config.num_hidden_layers = layers
    cfg.text_config.layer_types = cfg.text_config.layer_types[:layers]
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in ``dtype``: no fp32 copy (8 GB at 2B parameters) on the way
    try:
        with torch.device("cpu"):
            m = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    finally:
        torch.set_default_dtype(default)
    return m


def time_protocols(model, proc, sample, five_tokens: int, editverse_tokens: int) -> dict:
    import torch
    from PIL import Image

    from videoshop_bench.eval.judge_backends import video_kwargs
    from videoshop_bench.eval.judge_protocols import (EDITVERSE_TEMPLATE, FIVE_MC_TEMPLATE, FIVE_YES_NO_TEMPLATE, editing_prompt,
                                      editverse_frame_indices, five_frame_indices, five_questions)

    def gen(parts, images, videos, n):
        text = proc.apply_chat_template([{"role": "user", "content": parts}], tokenize=False,
                                        add_generation_prompt=True)
        kw = video_kwargs(proc, 10.0) if videos else {}
        x = proc(text=[text], images=images or None, videos=videos or None, return_tensors="pt", **kw)
        for k in ("pixel_values", "pixel_values_videos"):
            if k in x:
                x[k] = x[k].to(model.dtype)
        t, c = time.perf_counter(), time.process_time()
        with torch.no_grad():
            model.generate(**x, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        return time.process_time() - c, time.perf_counter() - t, int(x["input_ids"].shape[1])

    edited = sample.gt_edited_video
    video = [Image.fromarray(f) for f in edited[five_frame_indices(len(edited))]]
    qs = five_questions(sample)
    out = {"five": [], "editverse": []}
    for tmpl, q in ((FIVE_MC_TEMPLATE, qs["multiple_choice"]), (FIVE_YES_NO_TEMPLATE, qs["target_yes_no"])):
        out["five"].append(gen([{"type": "video"}, {"type": "text", "text": tmpl.format(question=q)}], [], [video],
                               five_tokens))
    text = EDITVERSE_TEMPLATE.format(prompt=editing_prompt(sample))
    for t in editverse_frame_indices(len(edited)):
        out["editverse"].append(gen([{"type": "text", "text": text}, {"type": "image"}, {"type": "image"}],
                                    [Image.fromarray(sample.source_video[t]), Image.fromarray(edited[t])], [],
                                    editverse_tokens))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, nargs=2, default=[1, 2])
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    p.add_argument("--frames", type=int, default=14)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=112)
    p.add_argument("--five-tokens", type=int, default=4)
    p.add_argument("--editverse-tokens", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    import torch

    from videoshop_bench.datasets.synthetic import SyntheticDataset
    from videoshop_bench.eval.judge_protocols import EDITVERSE_TEMPLATE, FIVE_MC_TEMPLATE, FIVE_YES_NO_TEMPLATE, five_questions

    torch.set_num_threads(a.threads)
    load = os.getloadavg()
    ds = SyntheticDataset(num_samples=1, num_frames=a.frames, height=a.height, width=a.width)
    sample = ds.load(ds.sample_ids()[0])
    proc = word_processor([EDITVERSE_TEMPLATE.format(prompt=sample.instruction), FIVE_MC_TEMPLATE,
                           FIVE_YES_NO_TEMPLATE] + [v for v in five_questions(sample).values() if v])
    dtype = getattr(torch, a.dtype)
    per_l = {}
    for layers in a.layers:
        t = time.perf_counter()
        m = build(layers, dtype, proc)
        print(f"built {layers} decoder layer(s): {sum(q.numel() for q in m.parameters()) / 1e9:.2f}B params, "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        per_l[layers] = time_protocols(m, proc, sample, a.five_tokens, a.editverse_tokens)
        print(layers, json.dumps(per_l[layers]), flush=True)
        del m
    l1, l2 = a.layers
    est = {}
    for proto in ("five", "editverse"):
        c1 = sum(c for c, _, _ in per_l[l1][proto])
        c2 = sum(c for c, _, _ in per_l[l2][proto])
        est[proto] = c1 + (28 - l1) * (c2 - c1) / (l2 - l1)
    print(f"\nQwen2.5-VL-7B architecture, random weights, {a.dtype}, {torch.get_num_threads()} thread(s), video "
          f"{a.frames}x{a.height}x{a.width}; CPU seconds of this process (robust to other jobs' load; wall time "
          f"was {sum(w for p in per_l.values() for r in p.values() for _, w, _ in r):.0f} s for "
          f"{sum(c for p in per_l.values() for r in p.values() for c, _, _ in r):.0f} CPU s at load average "
          f"{load[0]:.1f} -> {os.getloadavg()[0]:.1f}); measured at {l1} and {l2} of 28 decoder layers, extrapolated:")
    for proto, s in est.items():
        toks = [n for _, _, n in per_l[l1][proto]]
        print(f"  {proto:10s} {s:8.1f} CPU s per video ({len(toks)} requests, prompt tokens {toks})")
    print(f"  {'both':10s} {sum(est.values()):8.1f} CPU s per video")
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "measured_cpu_wall_tokens": per_l,
                                            "estimate_cpu_s": est, "load_average": [load[0], os.getloadavg()[0]]},
                                           indent=1))


if __name__ == "__main__":
    main()
