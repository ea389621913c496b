"""The config schema: every key a run reads, with its type, range and choices, checked before any work.

One mechanism: each config section is a dataclass whose fields carry a ``Check`` (``spec(...)``) in their metadata;
``validate_config(cfg)`` walks the composed config against these schemas (plus a few cross-key rules written as
functions of the resolved config) and returns one line per problem, naming the key (``method.strength=2: must be
in (0, 1]``). ``run.py`` prints each line and exits non-zero; nothing is loaded, edited or written before it passes.

Types are checked, never coerced: ``seed=abc`` is a string and is refused, ``overwrite=1`` is not a bool. The
``method`` section is checked against the method class's own declaration (its ``options`` dataclass, e.g.
``videoshop_bench.baselines.rave.RAVEOptions``, and ``inner_options``, e.g. ``videoshop.config.VideoshopConfig``): an unknown key
names its close matches, a wrong type, range or choice names the key, for every method alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Callable, Optional

from omegaconf import DictConfig, OmegaConf

from videoshop.config import VideoshopConfig
from videoshop.families import DEFAULT_FAMILY, FAMILIES, KINDS
from videoshop.options import MAX_FRAMES, Check, declared_options, option_checks, option_classes, unknown_option
from videoshop.registry import load_object

from .methods import uses_video_model  # (also registers ${method_set:...}, ${method_list:...} for the presets)
from .config_keys import missing_keys, path_problems, unknown_key_problems
from .task_registry import TASKS

FRAMES_POLICIES = ("resample", "refuse")
ASPECT_POLICIES = ("note", "refuse")
DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def spec(kind: str, **kw: Any) -> Any:
    """A schema field: ``threshold: float = spec("float", nullable=True, min=0)``."""
    return field(default=None, metadata={"check": Check(kind, **kw)})


# ------------------------------------------------------------------------------------------------ sections
@dataclass
class TopSchema:
    task: str = spec("str", required=True)  # a registered task (experiments/task_registry.py TASKS; cross_key_problems)
    seed: int = spec("int", required=True, min=0)
    device: str = spec("str", required=True, pattern=DEVICE_RE.pattern, hint="must be auto, cpu, cuda, cuda:N or mps")
    frames_policy: str = spec("str", required=True, choices=FRAMES_POLICIES)
    aspect_policy: str = spec("str", choices=ASPECT_POLICIES)
    overwrite: bool = spec("bool")
    save_mp4: bool = spec("bool")
    progress_bars: bool = spec("bool")
    prefetch: bool = spec("bool")
    debug: bool = spec("bool")
    threads: int = spec("int", nullable=True, min=1, max=1024)  # null: automatic (experiments/cpus.py)


@dataclass
class LimitsSchema:
    """Inputs beyond these are refused per sample (one line naming the file), before any model or metric sees them."""

    max_side: int = spec("int", required=True, min=2, max=65536)
    max_frames: int = spec("int", required=True, min=2, max=100000)
    max_video_megapixels: float = spec("float", required=True, min=0, max=100000, min_open=True)
    aspect_tolerance: float = spec("float", required=True, min=0, max=10)


@dataclass
class TablesSchema:
    """Intervals, paired differences and the cost plot of every table (experiments/uncertainty.py)."""

    reference: str = spec("str", required=True)
    confidence: float = spec("float", required=True, min=0, max=1, min_open=True, max_open=True)
    n_boot: int = spec("int", required=True, min=100, max=10**6)
    seed: int = spec("int", required=True, min=0)
    interval: str = spec("str", required=True, choices=("percentile", "BCa"))
    quality: str = spec("str", nullable=True)


@dataclass
class ClaimSchema:
    """Several workers on one run folder (experiments/claims.py); seconds, positive (a negative poll once made two
    workers exit with "sleep length must be non-negative")."""

    stale_after_s: float = spec("float", required=True, min=0, max=7 * 86400, min_open=True)
    heartbeat_s: float = spec("float", required=True, min=0, max=3600, min_open=True)
    poll_s: float = spec("float", required=True, min=0, max=3600, min_open=True)


@dataclass
class ModelSchema:
    name: str = spec("str", required=True)
    kind: str = spec("str", required=True, choices=KINDS)  # how its modules are made (videoshop.families.KINDS)
    dtype: str = spec("str", choices=("auto", "float32", "float16", "bfloat16"))
    num_frames: int = spec("int", required=True, min=2, max=MAX_FRAMES)
    height: int = spec("int", required=True, min=8, max=4096, multiple_of=8)
    width: int = spec("int", required=True, min=8, max=4096, multiple_of=8)
    seed: int = spec("int", min=0)
    allow_download: bool = spec("bool")
    revision: str = spec("str", nullable=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$",
                         hint="must be a hub commit hash, tag or branch")
    family: str = spec("str", nullable=True)  # an entry of videoshop.families.FAMILIES (cross_key_problems); null = svd


def _method_schema() -> type:
    """Every method's ``name``, ``height``, ``width``, plus every Videoshop option exactly as
    ``videoshop.config.VideoshopConfig`` declares it (type, range, choices: one declaration, two checkers)."""
    own = [("name", str, spec("str", required=True)),
           ("height", int, spec("int", nullable=True, min=8, multiple_of=8)),
           ("width", int, spec("int", nullable=True, min=8, multiple_of=8))]
    library = [(name, Any, field(default=None, metadata={"check": check}))
               for name, check in option_checks(VideoshopConfig).items()]
    return make_dataclass("MethodSchema", own + library)


MethodSchema = _method_schema()


@dataclass
class RuntimeSchema:
    """How the video model runs (videoshop.speed.RuntimeOptions, conf/runtime/)."""

    attention: str = spec("str", choices=("sdpa", "flash", "efficient", "cudnn", "math", "eager"))
    compile: bool = spec("bool")
    compile_mode: str = spec("str", nullable=True, choices=("default", "reduce-overhead", "max-autotune",
                                                            "max-autotune-no-cudagraphs"))
    channels_last: bool = spec("bool")
    offload: str = spec("str", choices=("none", "model"))
    encode_upcast: bool = spec("bool")


@dataclass
class DatasetSchema:
    name: str = spec("str", required=True)
    limit: int = spec("int", nullable=True, min=1, hint="")
    ids: list = spec("list", nullable=True)
    num_shards: int = spec("int", min=1, max=100000)
    shard: int = spec("int", min=0)


@dataclass
class LoaderSchema:
    """The keys loaders share (each loader takes its own others, checked by its constructor)."""

    _target_: str = spec("str", required=True)
    seed: int = spec("int", nullable=True, min=0, max=2 ** 63 - 1)
    num_samples: int = spec("int", nullable=True, min=1, max=1_000_000)
    num_frames: int = spec("int", nullable=True, min=2, max=MAX_FRAMES)
    height: int = spec("int", nullable=True, min=8, max=4096)
    width: int = spec("int", nullable=True, min=8, max=4096)


@dataclass
class LoggerSchema:
    _target_: str = spec("str", required=True)  # the logger class (videoshop_bench.experiments.loggers.WandbLogger, NullLogger)
    name: str = spec("str", required=True)
    mode: str = spec("str", choices=("offline", "online", "disabled"))


@dataclass
class StudySchema:
    """The human study (conf/study/, experiments/study/), checked for the study_* tasks."""

    dir: str = spec("str", nullable=True)
    reference: str = spec("str", required=True)
    baselines: list = spec("list", nullable=True)
    questions: dict = spec("dict", required=True)
    trials_per_rater: int = spec("int", required=True, min=2)
    raters_per_pair: int = spec("int", required=True, min=1)
    attention_rate: float = spec("float", required=True, min=0, max=0.5)
    lab_raters: int = spec("int", nullable=True, min=0)
    host: str = spec("str", required=True)
    port: int = spec("int", required=True, min=0, max=65535)
    db: str = spec("str", nullable=True)
    allow_tie: bool = spec("bool")
    votes: str = spec("str", nullable=True)


def task_reads(task: Any, section: str) -> bool:
    """Whether the registered task ``task`` reads config ``section`` (False for an unknown task)."""
    return isinstance(task, str) and task in TASKS and TASKS.get(task).reads_section(section)


# (config path, schema, when it applies)
SECTIONS: tuple[tuple[str, type, Callable[[dict], bool]], ...] = (
    ("", TopSchema, lambda c: True),
    ("limits", LimitsSchema, lambda c: task_reads(c.get("task"), "limits")),
    ("model", ModelSchema, lambda c: True),
    ("method", MethodSchema, lambda c: task_reads(c.get("task"), "method")),
    ("runtime", RuntimeSchema, lambda c: True),
    ("dataset", DatasetSchema, lambda c: True),
    ("dataset.loader", LoaderSchema, lambda c: task_reads(c.get("task"), "dataset.loader")),
    ("claim", ClaimSchema, lambda c: task_reads(c.get("task"), "limits")),
    ("logger", LoggerSchema, lambda c: True),
    ("tables", TablesSchema, lambda c: True),
    ("study", StudySchema, lambda c: task_reads(c.get("task"), "study")),
)


# ------------------------------------------------------------------------------------------------ checking
def _resolved_section(cfg: DictConfig, path: str, problems: list[str]) -> Any:
    """The section as plain Python with interpolations resolved; a key that cannot resolve becomes a problem."""
    node = cfg if not path else OmegaConf.select(cfg, path, throw_on_missing=False)
    if node is None or not isinstance(node, DictConfig):
        return node
    out: dict[str, Any] = {}
    for key in node.keys():
        full = f"{path}.{key}" if path else str(key)
        try:
            if OmegaConf.is_missing(node, key):
                out[key] = "???"
                continue
            if path == "" and OmegaConf.is_config(node._get_node(key)):
                continue  # sections are resolved on their own
            v = node[key]
            out[key] = OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
        except Exception as e:  # noqa: BLE001  (bad interpolation)
            problems.append(f"{full}: cannot be resolved: {str(e).splitlines()[0]}")
    return out


def check_section(values: dict, schema: type, prefix: str = "") -> list[str]:
    """One line per key of ``values`` that does not fit ``schema`` (or that the schema requires and is absent)."""
    problems = []
    for f in fields(schema):
        chk: Check = f.metadata["check"]
        key = f"{prefix}{f.name}"
        if f.name not in values:
            if chk.required:
                problems.append(f"{key}: missing (required)")
            continue
        value = values[f.name]
        if value == "???":
            problems.append(f"{key}: missing value; set {key}=...")
            continue
        why = chk.problem(value)
        if why:
            problems.append(f"{key}={_show(value)}: {why}")
    return problems


def _show(v: Any) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def device_problem(device: str) -> Optional[str]:
    """Whether ``device`` exists on this machine (CUDA built and visible, index in range)."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return (f"device={device}: CUDA is not available here (torch {torch.__version__}, "
                    f"{'no CUDA build' if torch.version.cuda is None else 'no visible GPU'}); use device=cpu or auto")
        if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
            return f"device={device}: only {torch.cuda.device_count()} CUDA device(s) visible"
    if device == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return "device=mps: MPS is not available here; use device=cpu or auto"
    return None


def model_family_problems(model: dict) -> list[str]:
    """``model.family`` names a registered family, and the family's own keys fit their declaration
    (``ModelFamily.options``: ``model.max_sequence_length=abc`` is one line)."""
    family = model.get("family") or DEFAULT_FAMILY
    if not isinstance(family, str):
        return []  # ModelSchema's line
    if family not in FAMILIES:
        return [f"model.family={family}: must be one of {', '.join(FAMILIES.names())} (videoshop.families.FAMILIES)"]
    problems = []
    for key, check in FAMILIES.get(family).option_checks().items():
        why = check.problem(model[key]) if key in model else None
        if why:
            problems.append(f"model.{key}={_show(model[key])}: {why}")
    return problems


def cross_key_problems(c: dict) -> list[str]:
    """Rules that involve several keys (c: the resolved sections by path)."""
    problems = []
    top, method = c.get("", {}), c.get("method") or {}
    if isinstance(top.get("task"), str) and top["task"] not in TASKS:
        problems.append(f"task={top['task']}: must be one of {', '.join(TASKS.names())} (experiments/task_registry.py TASKS)")
    problems += model_family_problems(c.get("model") or {})
    dev = top.get("device")
    if isinstance(dev, str) and DEVICE_RE.match(dev):
        p = device_problem(dev)
        if p:
            problems.append(p)
    steps, strength = method.get("num_inference_steps"), method.get("strength")
    if (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 2 and isinstance(strength, (int, float))
            and not isinstance(strength, bool) and 0 < strength <= 1 and int(steps * strength) < 1):
        problems.append(f"method.strength={strength}: with method.num_inference_steps={steps} no step runs "
                        f"(int(steps * strength) = 0); raise either")
    lo, hi = method.get("min_guidance_scale"), method.get("max_guidance_scale")
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
        problems.append(f"method.min_guidance_scale={lo}: larger than method.max_guidance_scale={hi}")
    if task_reads(top.get("task"), "metrics"):
        metrics = c.get("metrics") or {}
        if not isinstance(metrics, dict):
            problems.append("metrics: must be a mapping of metric name -> {_target_: ...}")
        else:
            for k, v in metrics.items():
                if not isinstance(v, dict) or "_target_" not in v:
                    problems.append(f"metrics.{k}: needs a _target_ (a class path such as videoshop_bench.eval.clip.CLIPTarget)")
    return problems


INJECTED = ("pipeline", "device")  # what the runner passes to a method's constructor itself
OWN = ("name", "height", "width")  # a constructor keyword of these is checked as MethodSchema says


def method_checks(cls) -> dict[str, Check]:
    """Every ``method.<key>`` the method class takes, with its Check, from its one declaration
    (videoshop.options.declared_options: its ``options`` / ``inner_options`` dataclasses and typed constructor
    keywords; a plugin constructor with ``**kwargs`` and no declaration also takes every Videoshop option)."""
    checks, open_ended = declared_options(cls)
    declared = {k for c in option_classes(cls) for k in option_checks(c)}
    schema = option_checks(MethodSchema)
    for key in OWN:
        if key in checks and key not in declared:  # the constructor's own keyword: the run's rule for it
            checks[key] = schema[key]
    if open_ended:
        checks = {**option_checks(VideoshopConfig), **checks}
    return {k: v for k, v in checks.items() if k not in INJECTED}


def method_option_problems(values: dict) -> list[str]:
    """Each ``method.<key>`` the method's class (``method._target_``) does not take, or whose value does not fit its
    declared type, range or choices: one line naming the key, before any work."""
    target = values.get("_target_")
    if not isinstance(target, str):
        return ["method._target_: missing (the method's class, e.g. videoshop.method.VideoshopMethod)"]
    try:
        checks = method_checks(load_object(target))
    except (ImportError, AttributeError, ValueError) as e:
        return [f"method._target_={target}: cannot be imported ({type(e).__name__}: {e})"]
    problems = [] if "name" in values else ["method.name: missing (required)"]
    for key, value in values.items():
        if key == "_target_" or value == "???":
            continue
        if key == "uses_video_model":
            problems.append(f"method.uses_video_model: not a config key; the class {target} declares it "
                            f"(uses_video_model = {uses_video_model(target)})")
        elif key not in checks:
            problems.append(unknown_option(key, checks, target))
        else:
            why = checks[key].problem(value)
            if why:
                problems.append(f"method.{key}={_show(value)}: {why}")
    return problems


def missing_value_problems(cfg: DictConfig, task: Any) -> list[str]:
    """Mandatory values (``???``) the task reads and nobody set, e.g. ``dataset.loader.root`` of dataset=folder."""
    read = TASKS.get(task).reads if isinstance(task, str) and task in TASKS else ()
    out = []
    for key in sorted(missing_keys(cfg)):
        if any(key == p or key.startswith(p + ".") for p in read):
            out.append(f"{key}: missing value; set {key}=...")
    return out


def validate_config(cfg: DictConfig) -> list[str]:
    """Every problem of ``cfg`` as one line naming the key; [] when the run may start."""
    problems: list[str] = missing_value_problems(cfg, cfg.get("task"))
    resolved: dict[str, Any] = {}
    top = _resolved_section(cfg, "", problems)
    resolved[""] = top
    for path in ("limits", "model", "method", "runtime", "dataset", "dataset.loader", "claim", "logger", "metrics",
                 "study", "tables"):
        resolved[path] = _resolved_section(cfg, path, problems)
    for path, schema, applies in SECTIONS:
        values = resolved.get(path)
        if not applies(top):
            continue
        if path == "method" and isinstance(values, dict):
            problems += method_option_problems(values)  # from the method class's one declaration
            continue
        if values is None:
            if any(f.metadata["check"].required for f in fields(schema)) and path:
                problems.append(f"{path}: missing config section")
            continue
        problems += check_section(values, schema, f"{path}." if path else "")
    problems += cross_key_problems(resolved)
    problems += unknown_key_problems(cfg, {p: s for p, s, applies in SECTIONS if applies(top)})
    task = cfg.get("task")
    if not (isinstance(task, str) and task in TASKS) or "dataset.loader" in TASKS.get(task).reads:
        problems += path_problems(resolved)  # task=build makes that folder: it need not exist yet
    return problems
