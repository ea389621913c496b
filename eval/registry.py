"""The metric registry and the metric sets: one entry per metric, declared once, and the sets that compose them.

A ``MetricEntry`` says what ``metrics.<name>`` in a run's config builds (``target``, a class of eval/), the values
its real backbones need (``options``), its tiny stand-in's values (``tiny``), the result columns it writes in table
order with their display names (``columns``) and, optionally, the sets it joins (``sets``). A ``MetricSet`` names
the metrics run together (``metrics=paper`` on the command line); each set with ``twin=True`` also gets a ``_tiny``
twin (``metrics=paper_tiny``) built from the same entries' ``tiny`` values: seeded random stand-ins, offline, CPU.

Adding a metric: one module in eval/, one ``METRICS.register(MetricEntry(...))`` below (or in your own module) and
its name in a set's ``metrics`` (or ``sets=("modern",)`` on the entry). Plain Python, no Hydra: the Hydra edge
(experiments/stored_configs.py) puts every set into Hydra's config store, and tables and plots read ``columns``.

The config node of a metric (``metric_node``): ``_target_``, then ``options`` (a set's ``options`` for that metric
over them) for the real set, or ``tiny`` for the ``_tiny`` twin; the run's wiring (``device``, ``cache_dir``,
``tracking`` among ``options``) is carried into both. The real options are NOT carried into the tiny node (the tiny
stand-in takes the class's defaults for the rest), so real checkpoint names never reach a tiny protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from videoshop.registry import Registry

RUN_WIRING = ("tracking", "device", "cache_dir")  # keys that connect a metric to the run: in real and tiny nodes
DEVICE, CACHE, TRACKING = "${device}", "${paths.cache}/metrics", "${tracking}"
TINY = "_tiny"


@dataclass(frozen=True)
class MetricEntry:
    """``name``: the key under ``metrics.`` (and how a set names it); ``target``: the dotted class path;
    ``options``: the config values for the real backbones (and the run wiring ``device``, ``cache_dir``,
    ``tracking`` when the class takes them); ``tiny``: the tiny stand-in's values (None: no tiny stand-in, left out
    of the ``_tiny`` sets); ``columns``: result column -> display name, in table order; ``sets``: sets it joins
    besides those that list it."""

    name: str
    target: str
    options: dict[str, Any] = field(default_factory=dict)
    tiny: Optional[dict[str, Any]] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    sets: tuple[str, ...] = ()

    def __post_init__(self):
        if "_target_" in self.options or "_target_" in (self.tiny or {}):
            raise ValueError(f"metric {self.name!r}: the class path is `target`, not an options key")


@dataclass(frozen=True)
class MetricSet:
    """``metrics``: the set's metrics (None: every registered metric), whose columns the set reports;
    ``extras``: composed with it but not reported (e.g. ground-truth PSNR beside the paper's ten columns);
    ``options``: per-metric values over the entries' real options (e.g. V2VBench's ViT-L-14 CLIP);
    ``twin``: also compose ``<name>_tiny`` from the entries' ``tiny`` values; ``display``: what the set is."""

    name: str
    metrics: Optional[tuple[str, ...]] = ()
    display: str = ""
    extras: tuple[str, ...] = ()
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    twin: bool = True


METRICS: Registry[MetricEntry] = Registry("metric")
METRIC_SETS: Registry[MetricSet] = Registry("metric set")

CLIP_SHARED = {k: f"${{metrics.clip_tgt.{k}}}" for k in ("model", "pretrained", "checkpoint", "backbone")}

for _e in (
    # CLIP_tgt, CLIP_tgt+ (x100). model: open_clip name (ViT-L-14 for V2VBench's backbone); clip_src and clip_tc use
    # the same CLIP (set it at metrics.clip_tgt); checkpoint: a local open_clip checkpoint; backbone: real | random
    # (real size, random weights) | tiny; region_mode: crop (bbox of the tracked region) | mask (fill outside it).
    MetricEntry("clip_tgt", "videoshop_bench.eval.clip.CLIPTarget",
                dict(model="ViT-B-32", pretrained="openai", checkpoint=None, backbone="real", region_mode="crop",
                     tracking=TRACKING, device=DEVICE, cache_dir=CACHE),
                tiny=dict(backbone="tiny", region_mode="crop"),
                columns={"clip_tgt": "CLIP_tgt", "clip_tgt_plus": "CLIP_tgt+"}),
    # TIFA (x100). qg_kind: causal | seq2seq; qa_filter: null = no UnifiedQA filtering; answer_matcher: sbert | string;
    # caption_source: captioner | target_prompt_or_captioner; qg_fallback: none (sample skipped, counted) | template.
    MetricEntry("tifa", "videoshop_bench.eval.tifa.TIFA",
                dict(backbone="real", captioner="Salesforce/blip-image-captioning-large",
                     question_generator="tifa-benchmark/llama2_tifa_question_generation", qg_kind="causal",
                     qa_filter="allenai/unifiedqa-v2-t5-large-1363200", vqa="Salesforce/blip-vqa-base",
                     answer_matcher="sbert", sbert="sentence-transformers/all-mpnet-base-v2",
                     caption_source="captioner", description_template="{caption}. {instruction}", frame_stride=1,
                     qg_fallback="none", device=DEVICE, cache_dir=CACHE),
                tiny=dict(backbone="tiny", qa_filter=None, answer_matcher="string", qg_fallback="template",
                          max_new_tokens=48, frame_stride=1),
                columns={"tifa": "TIFA"}),
    # CLIP_src, CLIP_src+ (x100); fill: the value the tracked edit region is filled with (both videos) for CLIP_src+.
    MetricEntry("clip_src", "videoshop_bench.eval.clip.CLIPSource",
                dict(CLIP_SHARED, fill=0, tracking=TRACKING, device=DEVICE, cache_dir=CACHE),
                tiny=dict(backbone="tiny"), columns={"clip_src": "CLIP_src", "clip_src_plus": "CLIP_src+"}),
    # Flow, Flow+ (pixels). checkpoint: a local torchvision raft_large state dict (.pth); a video longer than
    # max_side is scored on a downscaled copy (flow in source px; eval/flow.py).
    MetricEntry("flow", "videoshop_bench.eval.flow.FlowEPE",
                dict(model="raft_large", checkpoint=None, backbone="real", num_flow_updates=12, min_size=128,
                     max_side=1024, tracking=TRACKING, device=DEVICE, cache_dir=CACHE),
                tiny=dict(backbone="tiny", num_flow_updates=4, min_size=64),
                columns={"flow": "Flow", "flow_plus": "Flow+"}),
    # FVD (x1), a set metric. detector: the I3D TorchScript URL or a local i3d_torchscript.pt; detector_sha256:
    # required to download it, checked when set (none shipped).
    MetricEntry("fvd", "videoshop_bench.eval.fvd.FVD",
                dict(detector="https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
                     detector_sha256=None, backbone="real", device=DEVICE, cache_dir=CACHE),
                tiny=dict(backbone="tiny"), columns={"fvd": "FVD"}),
    MetricEntry("ssim", "videoshop_bench.eval.fidelity.SourceSSIM", columns={"ssim": "SSIM"}),  # SSIM (x100), source vs edited
    # CLIP_TC (x100). pairs: consecutive | all (RAVE); clamp_negative: true = V2VBench's clamp at 0.
    MetricEntry("clip_tc", "videoshop_bench.eval.clip.CLIPTemporal",
                dict(CLIP_SHARED, pairs="consecutive", clamp_negative=False, device=DEVICE, cache_dir=CACHE),
                tiny=dict(backbone="tiny"), columns={"clip_tc": "CLIP_TC"}),
    # PSNR / SSIM against the ground truth where the dataset has it (synthetic), overall and inside / outside the
    # edit masks; not a paper metric.
    MetricEntry("gt_fidelity", "videoshop_bench.eval.fidelity.GroundTruthFidelity",
                columns={"psnr_gt": "PSNR_gt", "psnr_gt_in": "PSNR_gt (in)", "psnr_gt_out": "PSNR_gt (out)",
                         "ssim_gt": "SSIM_gt", "ssim_gt_in": "SSIM_gt (in)", "ssim_gt_out": "SSIM_gt (out)"}),
    # the first-frame edit apart from its propagation (eval/first_frame.py; experiment=first_frame_editors adds them)
    MetricEntry("first_frame", "videoshop_bench.eval.first_frame.FirstFrameEdit",
                dict(model="ViT-B-32", pretrained="openai", checkpoint=None, backbone="real", fill=0, device=DEVICE,
                     cache_dir=CACHE),
                tiny=dict(backbone="tiny"),
                columns={"ff_clip_text": "CLIP_text (frame 0)", "ff_clip_dir": "CLIP_dir (frame 0)",
                         "ff_clip_src": "CLIP_src (frame 0)", "ff_clip_src_plus": "CLIP_src+ (frame 0)",
                         "ff_area": "edited area % (frame 0)"}),
    MetricEntry("later_frames", "videoshop_bench.eval.first_frame.LaterFrames",
                dict(model="ViT-B-32", pretrained="openai", checkpoint=None, backbone="real", device=DEVICE,
                     cache_dir=CACHE),
                tiny=dict(backbone="tiny"),
                columns={"later_clip_text": "CLIP_text (1..T-1)", "last_clip_tgt": "CLIP_tgt (last)",
                         "frame0_kept": "CLIP frame 0 kept"}),
):
    METRICS.register(_e)

# V2VBench's eight metrics (docs/v2vbench.md; wenhao728/awesome-diffusion-v2v @ 20afc6f). model: a hub id or a local
# directory, revision: a hub commit pinning it; checkpoint: the original release file (DOVER.pth,
# ViClip-InternVid-10M-FLT.pth, gmflow_sintel-0c07dcb3.pth); prompt_fields: the sample fields read as V2VBench's
# target prompt, first set wins (the field used is noted per sample); backbone: real | random | tiny.
V2V_WIRING = dict(device=DEVICE, cache_dir=CACHE)
for _e in (
    MetricEntry("aesthetic", "videoshop_bench.eval.v2vbench.AestheticScore",
                dict(model="shunk031/aesthetics-predictor-v2-sac-logos-ava1-l14-linearMSE", revision=None,
                     backbone="real", frame_stride=1, **V2V_WIRING),
                tiny=dict(backbone="tiny"), columns={"aesthetic": "Aesthetic"}, sets=("v2vbench",)),
    MetricEntry("clip_consistency", "videoshop_bench.eval.v2vbench.CLIPConsistency",
                dict(model="openai/clip-vit-large-patch14", revision=None, backbone="real", frame_stride=1,
                     **V2V_WIRING),
                tiny=dict(backbone="tiny"), columns={"clip_consistency": "CLIP_cons"}, sets=("v2vbench",)),
    MetricEntry("dino_consistency", "videoshop_bench.eval.v2vbench.DINOConsistency",
                dict(model="facebook/dinov2-base", revision=None, backbone="real", frame_stride=1, **V2V_WIRING),
                tiny=dict(backbone="tiny"), columns={"dino_consistency": "DINO_cons"}, sets=("v2vbench",)),
    MetricEntry("dover", "videoshop_bench.eval.dover.DoverScore", dict(checkpoint=None, backbone="real", seed=0, device=DEVICE),
                tiny=dict(backbone="tiny"), columns={"dover": "DOVER"}, sets=("v2vbench",)),
    MetricEntry("clip_text", "videoshop_bench.eval.v2vbench.CLIPTextAlignment",
                dict(model="openai/clip-vit-large-patch14", revision=None, backbone="real", frame_stride=1,
                     prompt_fields=["target_prompt", "instruction"], **V2V_WIRING),
                tiny=dict(backbone="tiny"), columns={"clip_text": "CLIP_text"}, sets=("v2vbench",)),
    MetricEntry("pickscore", "videoshop_bench.eval.v2vbench.PickScore",
                dict(model="yuvalkirstain/PickScore_v1", processor="laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
                     revision=None, backbone="real", frame_stride=1, prompt_fields=["target_prompt", "instruction"],
                     **V2V_WIRING),
                tiny=dict(backbone="tiny", seed=1), columns={"pickscore": "PickScore"}, sets=("v2vbench",)),
    MetricEntry("viclip_text", "videoshop_bench.eval.viclip.ViCLIPTextAlignment",
                dict(checkpoint=None, backbone="real", prompt_fields=["target_prompt", "instruction"], **V2V_WIRING),
                tiny=dict(backbone="tiny"), columns={"viclip_text": "ViCLIP_text"}, sets=("v2vbench",)),
    MetricEntry("gmflow_motion", "videoshop_bench.eval.motion_alignment.MotionAlignment",
                dict(checkpoint=None, backbone="real", attn_splits=2, max_side=1024, **V2V_WIRING),
                tiny=dict(backbone="tiny"), columns={"gmflow_motion": "GMFlow_motion"}, sets=("v2vbench",)),
):
    METRICS.register(_e)

PAPER = ("clip_tgt", "tifa", "clip_src", "flow", "fvd", "ssim", "clip_tc")
for _s in (
    MetricSet("paper", PAPER, "the paper's ten columns (Tables 2-3) and ground-truth fidelity where there is one",
              extras=("gt_fidelity",)),
    MetricSet("modern", (), "metrics beyond the paper's (VLM judges, perceptual and motion metrics)"),
    MetricSet("v2vbench", (), "V2VBench's protocol"),
    MetricSet("all", None, "every registered metric"),
    MetricSet("default", ("ssim", "gt_fidelity"), "no learned backbone: SSIM source vs edited, ground-truth "
              "PSNR / SSIM where the dataset has it", twin=False),
    MetricSet("none", (), "no metrics (edit and save only)", twin=False),
):
    METRIC_SETS.register(_s)

# --- modern: the VLM judge (FiVE-Acc, EditVerse rubric), background preservation and motion fidelity (FiVE-Bench) ---
for _e in (
    # FiVE-Acc parts (x100) and EditVerse's rubric (0-3 each, total 0-9) from one VLM judge (eval/vlm_judge.py).
    # judge: transformers (model: hub id, revision: pinned commit, path: local copy, model_class: any transformers
    # VLM chat class) | api (api_base_url + api_model, OpenAI-compatible; never called unless set);
    # protocols: [five, editverse]; column_prefix: a second judge's column prefix (judge agreement).
    MetricEntry("vlm_judge", "videoshop_bench.eval.vlm_judge.VLMJudge",
                dict(judge="transformers", backbone="real", model="Qwen/Qwen2.5-VL-7B-Instruct", revision=None,
                     path=None, protocols=["five", "editverse"], five_num_frames=4, editverse_frames=3,
                     column_prefix="", device=DEVICE, cache_dir=CACHE),
                tiny=dict(backbone="tiny", five_max_new_tokens=8, editverse_max_new_tokens=16),
                columns={"five_yn": "FiVE-YN", "five_mc": "FiVE-MC", "five_union": "FiVE-union",
                         "five_inter": "FiVE-inter", "five_acc": "FiVE-Acc", "ev_prompt": "EV prompt",
                         "ev_quality": "EV quality", "ev_background": "EV background", "ev_total": "EV total"},
                sets=("modern",)),
    # PSNR (dB), SSIM (x100), LPIPS (x1e3), MSE (x1e4) outside the tracked edit region (eval/background.py).
    # masking: five (region blacked out in both frames, whole-frame metrics) | exclude (outside pixels only);
    # lpips_checkpoint: a local torchvision squeezenet1_1 state dict (the LPIPS backbone).
    MetricEntry("background", "videoshop_bench.eval.background.BackgroundFidelity",
                dict(masking="five", backbone="real", lpips_checkpoint=None, frame_stride=1, tracking=TRACKING,
                     device=DEVICE, cache_dir=CACHE),
                tiny=dict(backbone="tiny"),
                columns={"bg_psnr": "PSNR_bg", "bg_ssim": "SSIM_bg", "bg_lpips": "LPIPS_bg", "bg_mse": "MSE_bg"},
                sets=("modern",)),
    # Motion fidelity score, whole frame and edit-region box (eval/motion_fidelity.py). point_tracker: auto
    # (CoTracker when tracking.cotracker_repo and cotracker_checkpoint are set, else the weight-free flow tracker) |
    # cotracker | flow; grid_size: 55 as FiVE.
    MetricEntry("motion_fidelity", "videoshop_bench.eval.motion_fidelity.MotionFidelity",
                dict(point_tracker="auto", grid_size=55, tracking=TRACKING, device=DEVICE, cache_dir=CACHE),
                tiny=dict(point_tracker="flow", grid_size=20),
                columns={"mfs": "MFS", "mfs_edit": "MFS_edit"}, sets=("modern",)),
    # Edit propagation (x100, eval/propagation.py): per-frame CLIP (or DINOv2) similarity of the tracked edit region
    # to the edited first frame's (in) and of the outside to the source (out); area under each curve, last value.
    # embedder: clip | dinov2; model: null = ViT-B-32 (clip) / facebook/dinov2-base (dinov2); reference:
    # edited_image (the user's edit) | output_first (the method's own frame 0); fill: the filled region's value.
    MetricEntry("propagation", "videoshop_bench.eval.propagation.EditPropagation",
                dict(embedder="clip", model=None, pretrained="openai", checkpoint=None, revision=None, backbone="real",
                     reference="edited_image", fill=0, tracking=TRACKING, device=DEVICE, cache_dir=CACHE),
                tiny=dict(backbone="tiny"),
                columns={"propagation_in_auc": "Prop_in AUC", "propagation_in_last": "Prop_in last",
                         "propagation_out_auc": "Prop_out AUC", "propagation_out_last": "Prop_out last"},
                sets=("modern",)),
):
    METRICS.register(_e)


def set_members(name: str) -> list[str]:
    """The metrics set ``name`` composes, in order: its ``metrics``, its ``extras``, then the entries joining it."""
    s = METRIC_SETS.get(name)
    listed = list(METRICS.names() if s.metrics is None else s.metrics) + list(s.extras)
    return listed + [e.name for e in METRICS if name in e.sets and e.name not in listed]


def metric_node(name: str, tiny: bool = False, options: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """``metrics.<name>``'s config node: ``_target_`` and the real ``options`` (``options`` over them), or the
    tiny stand-in's values plus the run wiring (``device``, ``cache_dir``, ``tracking``)."""
    e = METRICS.get(name)
    if not tiny:
        return {"_target_": e.target, **e.options, **(options or {})}
    if e.tiny is None:
        raise ValueError(f"metric {name!r} has no tiny stand-in")
    wiring = {k: e.options[k] for k in RUN_WIRING if k in e.options}
    return {"_target_": e.target, **e.tiny, **wiring}


def config_names() -> list[str]:
    """Every ``metrics=`` choice: each set, and ``<set>_tiny`` for each set with a twin."""
    return [n for s in METRIC_SETS for n in ((s.name, s.name + TINY) if s.twin else (s.name,))]


def set_config(name: str) -> dict[str, dict[str, Any]]:
    """The ``metrics`` section that ``metrics=<name>`` composes (``<set>_tiny``: the set's tiny twin)."""
    tiny = name.endswith(TINY) and name not in METRIC_SETS
    s = METRIC_SETS.get(name[: -len(TINY)] if tiny else name)
    if tiny and not s.twin:
        raise ValueError(f"metric set {s.name!r} has no tiny twin")
    members = set_members(s.name)
    if tiny:
        return {m: metric_node(m, tiny=True) for m in members if METRICS.get(m).tiny is not None}
    return {m: metric_node(m, options=s.options.get(m)) for m in members}


def column_order() -> tuple[str, ...]:
    """Every registered metric's result columns, in table order (registration order, each entry's order)."""
    return tuple(c for e in METRICS for c in e.columns)


def display_names() -> dict[str, str]:
    """Result column -> its display name (``clip_tgt_plus`` -> ``CLIP_tgt+``)."""
    return {c: d for e in METRICS for c, d in e.columns.items()}


def set_columns(name: str) -> tuple[str, ...]:
    """The columns set ``name`` reports (its ``metrics``, not its ``extras``), in table order."""
    s = METRIC_SETS.get(name)
    names = METRICS.names() if s.metrics is None else s.metrics
    return tuple(c for m in names for c in METRICS.get(m).columns)


def _members_cell(s: MetricSet) -> str:
    if s.metrics is None:
        return "every registered metric"
    return ", ".join(f"`{m}`" for m in set_members(s.name)) or "(none yet)"


def metric_sets_markdown() -> str:
    """The metric sets as a Markdown table (docs/metrics.md holds it; a test keeps the two equal)."""
    rows = [f"| `{s.name}` | {'`' + s.name + TINY + '`' if s.twin else '-'} | {s.display} | "
            f"{_members_cell(s)} |"
            for s in METRIC_SETS]
    return "\n".join(["| set | tiny twin | what | metrics |", "|---|---|---|---|", *rows])
