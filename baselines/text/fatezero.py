"""FateZero (Qi et al., ICCV 2023): zero-shot text-driven video editing by fusing attention from the inversion.

What the official code (ChenyangQiQi/FateZero, test_fatezero.py + p2p_ddim_spatial_temporal.py) does, and we do:
1. Frames -> SD1.4 VAE latents (``latent_dist.sample()``), the whole clip as one batch.
2. DDIM inversion (50 steps, source prompt, conditional only), storing the attention of every layer coarser than the
   finest latent level at every step (fatezero_attention.FateZeroController, mode 'invert').
3. Editing from the inverted x_T with the target prompt, DDIM 50 steps, CFG 7.5 with negative prompt "": in the
   conditional half, self-attention maps are fused with the inversion's (steps < self_replace_steps * 50; blending
   mask from the inversion cross-attention of the source blend words, threshold blend_th), cross-attention follows
   Prompt-to-Prompt (refine or replace, steps < cross_replace_steps * 51).
4. Spatial-temporal attention: self-attention layers with >= least_sc_channel channels take keys/values from the
   middle frame of the clip (SparseCausalAttention ['mid']).
Frames: the official configs edit 8-frame clips; ``clip_length: null`` (the tables) edits all frames as one clip
(the middle-frame attention allows any length), ``clip_length: 8`` edits consecutive 8-frame clips independently
(the last clip aligned to the video's end), so every source frame gets one output frame either way.
Deviations (docs/baselines.md): resize to height x width instead of short-side resize + center crop (the paper's
protocol, so the output covers the whole frame); the inflated UNet's temporal layers, which are zero-initialised
(identity) in the untuned model, are not built (their one non-zero part, a random bias, is left out); attention
maps are stored as queries/keys (the same maps, recomputed) instead of probabilities.
"""

from __future__ import annotations

import contextlib
import difflib
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from videoshop.method import EditResult
from videoshop.options import MAX_BATCH, MAX_FRAMES, MAX_STEPS, build_options, option

from .attention import installed_processors
from .ddim import ddim_invert, ddim_sample, ddim_schedule
from .fatezero_attention import FateZeroController, fatezero_processors
from .inflation import clip_group_norms
from .method import TextDrivenMethod, TextMethodOptions, frame_windows
from .sd import encode_prompts, frames_to_tensor, resize_frames, short_side_center_crop, vae_decode
from .t2v_models import SD14_SCHEDULER, load_fatezero_components


def changed_words(source: str, target: str) -> tuple[list[str], list[str]]:
    """Words of the source and target prompts that the edit changes (difflib opcodes other than 'equal')."""
    s, t = source.lower().replace(",", " ").split(), target.lower().replace(",", " ").split()
    src, tgt = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, s, t, autojunk=False).get_opcodes():
        if op != "equal":
            src += s[i1:i2]
            tgt += t[j1:j2]
    return src, tgt


def word_token_positions(tokenizer, prompt: str, words: list[str]) -> list[int]:
    """Token positions (after BOS) of every occurrence of ``words`` in ``prompt`` (Prompt-to-Prompt get_word_inds)."""
    wanted = {w.lower() for w in words}
    pos, out = 1, []
    for w in prompt.lower().replace(",", " ").split():
        n = len(tokenizer.encode(w, add_special_tokens=False))
        if w in wanted:
            out += list(range(pos, pos + n))
        pos += n
    return [p for p in out if p < tokenizer.model_max_length - 1]


def token_alignment(tokenizer, source: str, target: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt-to-Prompt refinement mapper: for each of the 77 target tokens, the source token it takes its map from and
    whether it is aligned (equal tokens matched by difflib; every position after the target prompt maps to the same
    position of the source, as Prompt-to-Prompt's ``seq_aligner.get_mapper``)."""
    L = tokenizer.model_max_length
    s = tokenizer(source).input_ids[:L]
    t = tokenizer(target).input_ids[:L]
    mapper, aligned = torch.arange(L), torch.zeros(L)
    for a, b, n in difflib.SequenceMatcher(None, s, t, autojunk=False).get_matching_blocks():
        mapper[b:b + n] = torch.arange(a, a + n)
        aligned[b:b + n] = 1
    for j in range(len(t), L):  # padding positions take the source map at the same position (P2P's get_mapper:
        mapper[j] = j  # mapper[len(y):] = len(y) + arange(...)), aligned
        aligned[j] = 1
    return mapper, aligned


@dataclass
class FateZeroOptions(TextMethodOptions):
    """FateZero's options; defaults are the official code's (ChenyangQiQi/FateZero, config/style|attribute)."""

    base: dict = option({"hub_id": "CompVis/stable-diffusion-v1-4", "path": None}, "dict",
                        "the official zero-shot base model (hub_id) or a local diffusers directory (path)")
    native_side: dict = option({"pretrained": 512, "random": 512, "tiny": 64}, "dict",
                               "frame side per weights; the YAML sets height/width from it (tiny: 64 px, fast tests)")
    height: int = option(512, "int", "official: short side 512 + centre crop 512x512; here resized (whole frame)",
                         min=8, max=4096)
    width: int = option(512, "int", "see height", min=8, max=4096)
    clip_length: Optional[int] = option(None, "int", "null: all frames as one clip (the tables); 8: the official "
                                        "n_sample_frame, consecutive clips edited independently (last aligned to the "
                                        "end)", nullable=True, min=1, max=MAX_FRAMES)
    num_inference_steps: int = option(50, "int", "DDIM steps of inversion and of editing", min=1, max=MAX_STEPS)
    guidance_scale: float = option(7.5, "float", "CFG of the editing pass", min=0)
    negative_prompt: str = option("", "str", "negative prompt of the editing pass")
    self_replace_steps: float = option(0.6, "float", "self-attention fusion on steps < int(0.6 * 50) (p2p_config.0 "
                                       "of every official config)", min=0, max=1)
    cross_replace_steps: float = option(0.8, "float", "P2P cross-attention replacement on steps < int(0.8 * 51)",
                                        min=0, max=1)
    is_replace_controller: bool = option(False, "bool", "false: AttentionRefine; true: AttentionReplace (used only "
                                         "when token counts match)")
    blend_self_attention: bool = option(True, "bool", "blending mask M from the source blend words (make_controller, "
                                        "prompt_choose=source)")
    blend_th: float = option(0.3, "float", "mask threshold (make_controller default; style configs use 2 = M off)",
                             min=0)
    fuse_max_query_fraction: float = option(0.25, "float", "fuse/store layers with <= this fraction of the latent "
                                            "tokens (official: <= 32x32 at 64x64)", min=0, max=1, min_open=True)
    least_sc_channel: Optional[int] = option(None, "int", "middle-frame attention in blocks >= this width; null = "
                                             "block_out_channels[1] (640)", nullable=True, min=1)
    equalizer_value: Optional[float] = option(None, "float", "P2P reweighting of the new words' cross-attention "
                                              "(eq_params), off by default", nullable=True)
    use_inversion_attention: bool = option(True, "bool", "false: no attention fusion at all (DDIM inversion + "
                                           "spatial-temporal attention)")
    latent_sample: bool = option(True, "bool", "VAE latent_dist.sample() (official) or the mean")
    store_on_cpu: bool = option(False, "bool", "where the inversion's attention Q/K are kept (official: CPU RAM or "
                                "disk)")
    store_dtype: str = option("float16", "str", "dtype of the stored attention Q/K",
                              choices=("float16", "float32", "bfloat16"))
    decode_chunk_size: int = option(8, "int", "frames per VAE decode call", min=1, max=MAX_BATCH)
    clip_group_norm: bool = option(True, "bool", "ResNet/output GroupNorms over the whole clip, as FateZero's inflated "
                                   "UNet (false: per frame)")
    frame_fit: str = option("resize", "str", "resize: whole frame (the tables) | center_crop: official short side + "
                            "centre crop", choices=("resize", "center_crop"))


CLIP_OPTIONS = ("seed", "height", "width", "clip_length", "num_inference_steps", "guidance_scale", "negative_prompt",
                "self_replace_steps", "cross_replace_steps", "is_replace_controller", "blend_self_attention",
                "blend_th", "fuse_max_query_fraction", "least_sc_channel", "equalizer_value",
                "use_inversion_attention", "latent_sample", "store_on_cpu", "store_dtype", "decode_chunk_size",
                "clip_group_norm", "frame_fit")  # what edit() reads from self.opts


class FateZero(TextDrivenMethod):
    """``method=fatezero``: see the module docstring; every option is declared once, in ``FateZeroOptions``
    (conf/method/fatezero.yaml only ties weights and sizes to ``model=``)."""

    options = FateZeroOptions

    def __init__(self, name: str = "fatezero", device: str = "cpu", debug: bool = False, **options):
        o = build_options(FateZeroOptions, options, owner="videoshop_bench.baselines.text.fatezero.FateZero")
        opts = {k: getattr(o, k) for k in CLIP_OPTIONS}
        super().__init__(name, device=device, weights=o.weights, dtype=o.dtype, allow_download=o.allow_download,
                         prompts=o.prompts, base=o.base, **opts)
        comps = load_fatezero_components(o.weights, o.base, allow_download=o.allow_download, dtype=self.dtype,
                                         seed=o.seed)
        comps.to(self.device, self.dtype)
        self.unet, self.vae, self.text_encoder, self.tokenizer = comps.unet, comps.vae, comps.text_encoder, comps.tokenizer
        if opts["least_sc_channel"] is None:  # FateZero's 640 = SD's second block width
            opts["least_sc_channel"] = int(self.unet.config.block_out_channels[1])
        self.opts = opts
        self.debug = debug  # keep the controller and latents of the last edit (tests)
        self.last_controller: Optional[FateZeroController] = None
        self.last_latents: dict = {}

    # ------------------------------------------------------------------ pieces
    def controller_for(self, source: str, target: str, num_frames: int, latent_hw: tuple[int, int]) -> tuple[FateZeroController, dict]:
        """The FateZero controller for one clip, and a record of the words/controller it chose."""
        o, tok = self.opts, self.tokenizer
        n = int(o["num_inference_steps"])
        src_words, tgt_words = changed_words(source, target)
        same_len = len(tok(source).input_ids) == len(tok(target).input_ids)
        cross_mode = "replace" if (o["is_replace_controller"] and same_len) else "refine"
        mapper, aligned = token_alignment(tok, source, target)
        blend = None
        if o["blend_self_attention"] and src_words:
            pos = word_token_positions(tok, source, src_words)
            if pos:
                blend = torch.zeros(tok.model_max_length)
                blend[pos] = 1.0
        eq = None
        if o["equalizer_value"] is not None and tgt_words:
            eq = torch.ones(tok.model_max_length)
            eq[word_token_positions(tok, target, tgt_words)] = float(o["equalizer_value"])
        ctrl = FateZeroController(
            num_frames=num_frames, latent_hw=latent_hw,
            max_query_tokens=int(latent_hw[0] * latent_hw[1] * float(o["fuse_max_query_fraction"])),
            num_steps=n, self_steps=int(n * float(o["self_replace_steps"])),
            cross_steps=int((n + 1) * float(o["cross_replace_steps"])), cross_mode=cross_mode,
            token_map=mapper, token_aligned=aligned, equalizer=eq, blend_tokens=blend, blend_th=float(o["blend_th"]),
            store_device=torch.device("cpu") if o["store_on_cpu"] else None,
            store_dtype=getattr(torch, o["store_dtype"]), debug=self.debug)
        how = dict(blend_words_source=src_words, blend_words_target=tgt_words,
                   blend_words_rule="words that differ between the source and target prompts (difflib word diff); "
                                    "the self-attention mask uses the source words (FateZero prompt_choose='source')",
                   blend_mask="on" if blend is not None else "off (no changed source word: self-attention fully from inversion)",
                   cross_attention_controller=cross_mode)
        return ctrl, how

    def encode(self, frames, generator: torch.Generator) -> torch.Tensor:
        """VAE latents of the frames (uint8 (F, H, W, 3), or float (F, 3, H, W) in [-1, 1]): a posterior sample
        (FateZero) or the mean, times the scaling factor."""
        x = frames.to(self.device, self.dtype) if torch.is_tensor(frames) else frames_to_tensor(frames, self.device,
                                                                                                self.dtype)
        post = [self.vae.encode(c).latent_dist for c in x.split(8)]
        z = [p.sample(generator=generator) if self.opts["latent_sample"] else p.mean for p in post]
        return torch.cat(z).float() * float(self.vae.config.scaling_factor)

    @torch.no_grad()
    def edit_clip(self, frames: np.ndarray, source: str, target: str, generator: torch.Generator) -> tuple[np.ndarray, dict]:
        """Invert and edit one clip (F, H, W, 3) uint8, or (F, 3, H, W) float in [-1, 1], at the method's resolution;
        returns frames and info."""
        o = self.opts
        z0 = self.encode(frames, generator)
        f, _, h, w = z0.shape
        cond_src, cond_tgt, uncond = encode_prompts(self.tokenizer, self.text_encoder,
                                                    [source, target, o["negative_prompt"]], self.device).chunk(3)
        ctrl, how = self.controller_for(source, target, f, (h, w))
        if not o["use_inversion_attention"]:
            ctrl.max_query_tokens = -1  # plain DDIM inversion + sampling, spatial-temporal attention only
        self.last_controller = ctrl
        schedule = ddim_schedule(SD14_SCHEDULER, int(o["num_inference_steps"]))
        unet = lambda x, t, emb: self.unet(x.to(self.dtype), t, encoder_hidden_states=emb).sample.float()  # noqa: E731

        def invert_eps(x, t, k):  # source prompt, conditional only; maps stored at inversion step k
            ctrl.mode, ctrl.step = "invert", k
            return unet(x, t, cond_src.expand(f, -1, -1))

        emb = torch.cat([uncond.expand(f, -1, -1), cond_tgt.expand(f, -1, -1)])

        def edit_eps(x, t, i):  # [uncond; cond] in one batch; the controller edits the cond half
            ctrl.mode, ctrl.step = "edit", i
            return unet(torch.cat([x, x]), t, emb).chunk(2)

        norms = clip_group_norms(self.unet, f) if o["clip_group_norm"] else contextlib.nullcontext()
        with norms, installed_processors(self.unet, fatezero_processors(self.unet, ctrl, int(o["least_sc_channel"]))):
            x_T = ddim_invert(invert_eps, z0, schedule)[-1]
            lat = ddim_sample(edit_eps, x_T, schedule, guidance_scale=float(o["guidance_scale"]))
            ctrl.mode = "off"
        if not self.debug:
            ctrl.store.clear()
        how.update(finite=bool(torch.isfinite(lat).all()))
        if self.debug:
            self.last_latents = dict(z0=z0, x_T=x_T, edited=lat)
        return vae_decode(self.vae, lat.to(self.dtype), int(o["decode_chunk_size"])), how

    def clips(self, num_frames: int) -> list[tuple[int, int]]:
        """Frame ranges edited together: one clip of all frames, or consecutive clips of ``clip_length``."""
        return frame_windows(num_frames, self.opts["clip_length"])

    # ------------------------------------------------------------------ the method interface
    def edit(self, sample, generator: torch.Generator) -> EditResult:
        prompts = self.resolve_prompts(sample)
        h, w = int(self.opts["height"]), int(self.opts["width"])
        if self.opts["frame_fit"] == "center_crop":  # official: short side scaled, centre crop (borders cut off)
            video = short_side_center_crop(sample.source_video, h, w)
        else:  # default: the whole frame resized (the paper's protocol)
            video = resize_frames(sample.source_video, h, w)
        out = np.zeros((len(video), h, w, 3), np.uint8)
        clips, info, finite = self.clips(len(video)), {}, True
        n = int(self.opts["num_inference_steps"])
        for a, b in clips:
            frames, info = self.edit_clip(video[a:b], prompts.source_prompt, prompts.target_prompt, generator)
            out[a:b] = frames  # an overlapping last clip overwrites the overlap with its own edit
            finite &= info.pop("finite")
        # NFE per image-sized input, as the other SD-family baselines (baselines/text/sd.py NFECounter): a UNet call on
        # F frames counts F, the CFG pair 2F; network_passes counts the batched calls themselves
        frames_edited = sum(b - a for a, b in clips)
        info.update(prompts=prompts.to_dict(), clips=clips, resolution=[self.opts["height"], self.opts["width"]],
                    nfe_breakdown=dict(inversion=n * frames_edited, editing=2 * n * frames_edited),
                    network_passes=dict(inversion=n * len(clips), editing=n * len(clips)))
        return EditResult(frames=out, nfe=3 * n * frames_edited, finite=finite, info=info)
