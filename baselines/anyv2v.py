"""AnyV2V (Ku, Wei, Ren, Yang, Chen, TMLR 2024): training-free first-frame edit propagation with an image-to-video
model, here on I2VGen-XL as the official code does it (TIGER-AI-Lab/AnyV2V, i2vgen-xl/: run_group_ddim_inversion.py,
run_group_pnp_edit.py, pnp_utils.py, pipelines/pipeline_i2vgen_xl.py; defaults in docs/baselines.md), on diffusers'
I2VGen-XL components and this project's DDIM helpers (baselines/text/ddim.py).

Per video (``AnyV2V.edit``), with the edited first frame from the sample (as Videoshop):
1. the first 16 frames (``frame_policy=official``; ``all``: every frame) resized to 512 x 512 (PIL LANCZOS, whole
   frame, as the official group scripts); VAE posterior samples (``seeding=official``: the official scripts' random
   stream from the run's seed, see ``skip_pipeline_loading_draw``);
2. DDIM inversion of the source video with I2VGen-XL conditioned on the *source* first frame and the empty prompt,
   guidance 1, 500 steps, keeping the latent at every timestep (AnyV2V Sec. 3.2);
3. sampling, 50 DDIM steps with CFG 9 (target prompt vs the official negative prompt; the unconditional half also
   gets a zero CLIP image embedding), conditioned on the *edited* first frame, from the inverted latent at the
   first timestep (``init_step`` 0: t = 981); at each step the UNet also runs the source branch (the inverted latent
   at that timestep, empty prompt, source first frame) in the same batch, and plug-and-play injection replaces
   features of the edited branch by the source branch's (Sec. 3.3, baselines/text/pnp.py): the residual output of
   decoder ResNet ``up_blocks[1].resnets[1]`` on the first 20% of the steps, spatial self-attention Q/K on 20%,
   temporal self-attention Q/K on 50%, in decoder blocks 4-11 (``up_blocks[1].*[1, 2]``, ``up_blocks[2..3].*[0..2]``);
4. VAE decode, one frame at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from videoshop_bench.datasets.schema import SampleError
from videoshop.method import EditResult
from videoshop.options import MAX_FRAMES, MAX_STEPS, build_options, option

from .pix2video import fill_dropped_frames, select_frames
from .text.ddim import DDIMSchedule, ddim_invert, ddim_sample, ddim_schedule
from .text.i2vgen import (clip_image_embedding, decode_video, encode_text, first_frame_latents, load_i2vgen_components,
                          v_to_eps, video_latents)
from .text.method import DTYPES, TextDrivenMethod, TextMethodOptions
from .text.pnp import KINDS, InjectionState, injection_steps, pnp_installed
from .text.sd import RESIZE_FILTERS, NFECounter, frames_to_tensor, resize_frames

Tensor = torch.Tensor

NEGATIVE = ("Distorted, discontinuous, Ugly, blurry, low resolution, motionless, static, disfigured, disconnected "
            "limbs, Ugly faces, incomplete arms")
SEEDING = ("official", "single_stream")
DECODER_BLOCKS_4_TO_11 = ((1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2))


def invert_latents(v_fn, z0: Tensor, schedule: DDIMSchedule) -> dict[int, Tensor]:
    """DDIM inversion (ddim.py's ``ddim_invert``) of a v-prediction model ``v_fn(x, t)``: step k takes the latent at
    level abar_prev to timestep t = timesteps[n-1-k] with eps = v_to_eps(v_fn(x, t), x, abar_prev) (diffusers'
    ``DDIMInverseScheduler`` with the pipeline passing t). Returns {t: latent at level t} for every timestep."""
    n = len(schedule)
    traj = ddim_invert(lambda x, t, k: v_to_eps(v_fn(x, t), x, schedule.alpha_prev[n - 1 - k]), z0, schedule)
    return {int(schedule.timesteps[n - 1 - k]): traj[k + 1] for k in range(n)}


def skip_pipeline_loading_draw(models, generator: torch.Generator) -> None:
    """Advance ``generator`` past the one global-RNG draw the official inversion script makes between
    ``seed_everything(seed)`` and its first VAE posterior sample: loading the pipeline constructs transformers 4.x's
    ``CLIPVisionEmbeddings``, whose ``class_embedding = nn.Parameter(torch.randn(hidden_size))`` is drawn even when
    the weights are then loaded (measured by experiments/official_check.py: it is the only draw; the other
    components load without drawing)."""
    torch.randn(int(models.image_encoder.config.hidden_size), generator=generator)


def _layers(pairs) -> list[list[int]]:
    return [list(p) for p in pairs]


@dataclass
class AnyV2VOptions(TextMethodOptions):
    """AnyV2V's options; defaults are the official code's (TIGER-AI-Lab/AnyV2V @bc540be, i2vgen-xl/:
    configs/group_ddim_inversion/template.yaml, configs/group_pnp_edit/template.yaml + group_config.json,
    gradio_demo.py)."""

    dtype: str = option("auto", "str", "fp16 on CUDA (official: torch_dtype=float16, variant fp16), fp32 on CPU",
                        choices=DTYPES)
    base: dict = option({"hub_id": "ali-vilab/i2vgen-xl", "path": None, "variant": None}, "dict",
                        "I2VGenXLPipeline checkpoint (unet, vae, text/image encoders, scheduler config), or a local "
                        "diffusers directory (path); variant fp16: the official from_pretrained(variant='fp16') files")
    native: dict = option({"pretrained": {"side": 512, "num_inversion_steps": 500},
                           "random": {"side": 512, "num_inversion_steps": 500},
                           "tiny": {"side": 64, "num_inversion_steps": None}}, "dict",
                          "official sizes per weights; the YAML sets height, width and num_inversion_steps from it "
                          "(the tiny stand-in runs small to keep tests fast; null = num_inference_steps)")
    height: int = option(512, "int", "official image_size [512, 512]: whole frame resized (run_group_*.py; the gradio "
                         "demo can crop)", min=8, max=4096)
    width: int = option(512, "int", "see height", min=8, max=4096)
    frame_policy: str = option("all", "str", "all: every source frame in one clip (the tables) | official: the first "
                               "max_frames, the rest repeat the last edited frame", choices=("all", "official"))
    max_frames: int = option(16, "int", "n_frames: 16 (frame_policy=official)", min=1, max=MAX_FRAMES)
    num_inference_steps: int = option(50, "int", "n_steps of the editing pass (DDIM, timesteps 981 ... 1)",
                                      min=1, max=MAX_STEPS)
    num_inversion_steps: Optional[int] = option(500, "int", "inverse_config.n_steps: 500 (gradio default too); null = "
                                                "num_inference_steps", nullable=True, min=1, max=MAX_STEPS)
    guidance_scale: float = option(9.0, "float", "cfg of the editing pass", min=0)
    negative_prompt: str = option(NEGATIVE, "str", "negative prompt of the editing pass")
    inversion_prompt: str = option("", "str", "inverse_config.prompt (inversion: cfg 1.0, source first frame)")
    inversion_guidance_scale: float = option(1.0, "float", "only 1.0 (the official inversion: conditional only) is "
                                             "implemented", choices=(1.0,))
    source_branch_prompt: str = option("", "str", "ddim_inv_prompt: the source branch's prompt during PnP sampling")
    target_fps: int = option(8, "int", "I2VGen-XL's fps micro-condition", min=1)
    init_step: int = option(0, "int", "ddim_init_latents_t_idx: start from the inverted latent at timesteps[0] = 981 "
                            "(every group_config entry and the gradio demo; the template says 1 = 961)", min=0)
    random_ratio: float = option(0.0, "float", "initial latent = noise * r + inverted * (1 - r)", min=0, max=1)
    conv_injection: float = option(0.2, "float", "pnp_f_t: conv injection on the first int(50 * 0.2) = 10 steps",
                                   min=0, max=1)
    spatial_attn_injection: float = option(0.2, "float", "pnp_spatial_attn_t: spatial self-attention Q/K on the "
                                           "first 10 steps", min=0, max=1)
    temporal_attn_injection: float = option(0.5, "float", "pnp_temp_attn_t: temporal self-attention Q/K on the first "
                                            "25 steps", min=0, max=1)
    conv_layers: list = option([[1, 1]], "list", "up_blocks[1].resnets[1] (residual branch, before the skip is added)")
    spatial_attn_layers: list = option(_layers(DECODER_BLOCKS_4_TO_11), "list", "res_dict {1: [1, 2], 2: [0, 1, 2], "
                                       "3: [0, 1, 2]}: decoder blocks 4-11")
    temporal_attn_layers: list = option(_layers(DECODER_BLOCKS_4_TO_11), "list", "decoder blocks 4-11")
    clip_skip: Optional[int] = option(1, "int", "text embeddings: penultimate CLIP layer + final LayerNorm (the "
                                      "pipeline methods' default)", nullable=True, min=0)
    decode_chunk_size: int = option(1, "int", "frames per VAE decode (the pipeline's default in AnyV2V's calls)",
                                    min=1)
    resize: str = option("pil_lanczos", "str", "frames and edited first frame: PIL LANCZOS to the method size, whole "
                         "frame (official convert_video_to_frames / edited-frame loading) | antialias_bilinear (the "
                         "project's)", choices=RESIZE_FILTERS)
    seeding: str = option("official", "str", "official: the official scripts' CPU random stream from the run's seed "
                          "(the inversion script's pipeline loading draws randn(CLIP vision width) first; the edit "
                          "script restarts at the seed twice) | single_stream: one stream, no skip, no restart",
                          choices=SEEDING)


class AnyV2V(TextDrivenMethod):
    """``method=anyv2v``. Every option is declared once, in ``AnyV2VOptions``, with the official default."""

    options = AnyV2VOptions

    def __init__(self, name: str = "anyv2v", device: str = "cpu", **options) -> None:
        o = build_options(AnyV2VOptions, options, owner="videoshop_bench.baselines.anyv2v.AnyV2V")
        super().__init__(name, device, o.weights, o.dtype, o.allow_download, o.prompts)
        self.resize, self.seeding = o.resize, o.seeding
        self.base = dict(o.base)
        self.height, self.width, self.frame_policy, self.max_frames = int(o.height), int(o.width), o.frame_policy, int(o.max_frames)
        self.num_inference_steps = int(o.num_inference_steps)
        self.num_inversion_steps = int(o.num_inversion_steps or o.num_inference_steps)
        self.guidance_scale, self.negative_prompt = float(o.guidance_scale), o.negative_prompt
        self.inversion_prompt, self.source_branch_prompt = o.inversion_prompt, o.source_branch_prompt
        self.target_fps, self.init_step, self.random_ratio = int(o.target_fps), int(o.init_step), float(o.random_ratio)
        self.fractions = dict(conv=float(o.conv_injection), spatial=float(o.spatial_attn_injection),
                              temporal=float(o.temporal_attn_injection))
        self.layers = dict(conv=[tuple(p) for p in o.conv_layers], spatial=[tuple(p) for p in o.spatial_attn_layers],
                           temporal=[tuple(p) for p in o.temporal_attn_layers])
        self.decode_chunk_size, self.clip_skip = int(o.decode_chunk_size), o.clip_skip
        self.trace: Optional[list] = None  # set to a list to record what the injection sites receive
        self.models = load_i2vgen_components(self.weights, self.base, allow_download=self.allow_download,
                                             dtype=self.dtype, seed=int(o.seed)).to(self.device, self.dtype)
        self.schedule = ddim_schedule(self.models.scheduler_config, self.num_inference_steps)
        self.inversion_schedule = ddim_schedule(self.models.scheduler_config, self.num_inversion_steps)
        self._check_steps()

    def _check_steps(self) -> None:
        if not 0 <= self.init_step < self.num_inference_steps:
            raise ValueError(f"method.init_step={self.init_step}: expected 0 <= init_step < num_inference_steps "
                             f"({self.num_inference_steps})")
        missing = {int(t) for t in self.schedule.timesteps} - {int(t) for t in self.inversion_schedule.timesteps}
        if missing:
            raise ValueError(f"method.num_inversion_steps={self.num_inversion_steps}: its DDIM timesteps miss the "
                             f"sampling timesteps {sorted(missing)[:3]}...; use a multiple of num_inference_steps "
                             f"({self.num_inference_steps}) whose step 1000 // n divides 1000 // {self.num_inference_steps}")

    # ------------------------------------------------------------------------------------- conditions
    def unet_v(self, x: Tensor, t: int, text: Tensor, image_emb: Tensor, image_lat: Tensor) -> Tensor:
        """I2VGen-XL's v-prediction for a batch of video latents (B, C, F, h, w) and their conditions."""
        fps = torch.full((x.shape[0],), self.target_fps, device=self.device)
        return self.models.unet(x.to(self.dtype), t, fps=fps, image_latents=image_lat.to(self.dtype),
                                image_embeddings=image_emb.to(self.dtype), encoder_hidden_states=text.to(self.dtype),
                                return_dict=False)[0].float()

    def frame_condition(self, frame: np.ndarray, num_frames: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(image latents, CLIP image embedding) of a (H, W, 3) uint8 first frame at the method resolution."""
        m = self.models
        lat = first_frame_latents(m.vae, frames_to_tensor(frame[None], self.device, self.dtype), num_frames, generator)
        return lat.float(), clip_image_embedding(m, frame, self.device).float()

    def text(self, prompts: Sequence[str]) -> list[Tensor]:
        m = self.models
        return list(encode_text(m.tokenizer, m.text_encoder, list(prompts), self.device, self.clip_skip).float().split(1))

    # ------------------------------------------------------------------------------------- inversion
    def invert(self, z0: Tensor, source_frame: np.ndarray, generator: torch.Generator,
               nfe: NFECounter) -> dict[int, Tensor]:
        """DDIM inversion of the source latents (guidance 1, ``inversion_prompt``, source first frame):
        {timestep: latent at that noise level} for every inversion timestep (AnyV2V saves ddim_latents_{t}.pt)."""
        lat, emb = self.frame_condition(source_frame, z0.shape[2], generator)
        (text,) = self.text([self.inversion_prompt])

        def v_fn(x, t):
            nfe.add("unet_inversion", x.shape[0])
            return self.unet_v(x, t, text, emb, lat)

        return invert_latents(v_fn, z0.float(), self.inversion_schedule)

    # ------------------------------------------------------------------------------------- sampling
    def conditions(self, source_frame: Optional[np.ndarray], edited_frame: np.ndarray, target_prompt: str,
                   num_frames: int, generator: torch.Generator) -> dict[str, Tensor]:
        """Batched conditions in the order [source ; uncond ; cond] (uncond only with CFG, guidance > 1): texts
        [source branch prompt ; negative ; target], CLIP image embeddings [source ; zeros ; edited], image latents
        [source ; edited ; edited]. Draw order from ``generator``: edited first frame, then source first frame."""
        cfg = self.guidance_scale > 1.0
        lat_e, emb_e = self.frame_condition(edited_frame, num_frames, generator)
        src_txt, neg, tgt = self.text([self.source_branch_prompt, self.negative_prompt, target_prompt])
        edit = dict(text=torch.cat([neg, tgt]) if cfg else tgt,
                    image_emb=torch.cat([torch.zeros_like(emb_e), emb_e]) if cfg else emb_e,
                    image_lat=torch.cat([lat_e, lat_e]) if cfg else lat_e)
        if source_frame is None:
            return dict(edit=edit)
        lat_s, emb_s = self.frame_condition(source_frame, num_frames, generator)
        return dict(edit=edit, source=dict(text=src_txt, image_emb=emb_s, image_lat=lat_s))

    def active_kinds(self, step: int) -> set[str]:
        n = len(self.schedule)
        return {k for k in KINDS if step in injection_steps(n, self.fractions[k]) and self.layers[k]}

    def sample(self, x: Tensor, cond: dict, inverted: Optional[dict[int, Tensor]], nfe: NFECounter,
               start_step: Optional[int] = None) -> Tensor:
        """DDIM sampling (AnyV2V ``sample_with_pnp``) from ``x`` at ``timesteps[start_step]``. The source branch runs
        only at steps where some injection is active (elsewhere the official code computes and discards it)."""
        sched: DDIMSchedule = self.schedule
        state = InjectionState(trace=self.trace)
        e = cond["edit"]
        halves = e["text"].shape[0]

        def eps_fn(x, t, i):
            state.step, state.active = i, self.active_kinds(i) if inverted is not None else set()
            parts = [x] * halves
            text, emb, lat = e["text"], e["image_emb"], e["image_lat"]
            state.chunks = 1
            if state.active:
                s = cond["source"]
                parts = [inverted[t].to(x)] + parts
                text, emb = torch.cat([s["text"], text]), torch.cat([s["image_emb"], emb])
                lat, state.chunks = torch.cat([s["image_lat"], lat]), halves + 1
            v = self.unet_v(torch.cat(parts), t, text, emb, lat)[-halves * x.shape[0]:]
            nfe.add("unet_sampling", halves * x.shape[0])
            if state.chunks > 1:
                nfe.add("unet_source_branch", x.shape[0])
            eps = v_to_eps(v, torch.cat([x] * halves), sched.alpha[i])
            return tuple(eps.chunk(2)) if halves == 2 else eps

        with pnp_installed(self.models.unet, state, self.layers["conv"], self.layers["spatial"],
                           self.layers["temporal"]):
            return ddim_sample(eps_fn, x, sched, self.guidance_scale,
                               start_step=self.init_step if start_step is None else start_step)

    def initial_latent(self, inverted: dict[int, Tensor], generator: torch.Generator) -> Tensor:
        """The inverted latent at ``timesteps[init_step]``, blended with noise when ``random_ratio`` > 0
        (official: random * r + inverted * (1 - r))."""
        x = inverted[int(self.schedule.timesteps[self.init_step])]
        if self.random_ratio > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device)
            x = noise * self.random_ratio + x * (1 - self.random_ratio)
        return x

    # ------------------------------------------------------------------------------------- the method
    @torch.no_grad()
    def edit_frames(self, frames: np.ndarray, edited_first: np.ndarray, target_prompt: str,
                    generator: torch.Generator) -> tuple[np.ndarray, NFECounter, bool]:
        """Edit (T, H, W, 3) uint8 frames at the method resolution given the edited first frame (H, W, 3)."""
        nfe, m = NFECounter(), self.models
        seed = generator.initial_seed()
        if self.seeding == "official":
            skip_pipeline_loading_draw(m, generator)
        z0 = video_latents(m.vae, frames_to_tensor(frames, self.device, self.dtype), generator).float()
        inverted = self.invert(z0, frames[0], generator, nfe)
        if self.seeding == "official":  # the edit script: seed_everything(seed), its random_ratio noise, then
            generator.manual_seed(seed)  # torch.manual_seed(seed) again right before the sampling pass
            x = self.initial_latent(inverted, generator)
            generator.manual_seed(seed)
            cond = self.conditions(frames[0], edited_first, target_prompt, frames.shape[0], generator)
        else:
            cond = self.conditions(frames[0], edited_first, target_prompt, frames.shape[0], generator)
            x = self.initial_latent(inverted, generator)
        z = self.sample(x, cond, inverted, nfe)
        finite = bool(torch.isfinite(z).all())
        return decode_video(m.vae, z.to(self.dtype), self.decode_chunk_size), nfe, finite

    def edit(self, sample, generator: torch.Generator) -> EditResult:
        t0 = time.perf_counter()
        prompts = self.resolve_prompts(sample)
        if sample.edited_image is None:
            raise SampleError(f"{sample.sample_id}: AnyV2V needs the edited first frame (field 'edited_image')")
        n = select_frames(sample.num_frames, self.frame_policy, self.max_frames)
        if n < 2:
            raise SampleError(f"{sample.sample_id}: AnyV2V needs at least 2 frames (I2VGen-XL's frame-position mask)")
        frames = resize_frames(sample.source_video[:n], self.height, self.width, self.resize)
        edited_first = resize_frames(np.asarray(sample.edited_image)[None], self.height, self.width, self.resize)[0]
        out, nfe, finite = self.edit_frames(frames, edited_first, prompts.target_prompt, generator)
        info = {"prompts": prompts.to_dict(), "frames_edited": n, "frame_policy": self.frame_policy,
                "resolution": [self.height, self.width], "network_passes": dict(nfe.by_name),
                "batched_unet_calls": self.num_inversion_steps + self.num_inference_steps - self.init_step,
                "method_seconds": time.perf_counter() - t0}
        if n < sample.num_frames:
            info["note"] = f"official frame cap: frames {n}..{sample.num_frames - 1} repeat the last edited frame"
        return EditResult(frames=fill_dropped_frames(out, sample.num_frames), nfe=nfe.total, finite=finite, info=info)
