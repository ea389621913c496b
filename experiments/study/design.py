"""Study design from results: pairs, attention checks, per-rater assignment, and the self-contained study folder.

The paper's Table 4 (left half): "for each baseline, we ask evaluators to compare the editing and video generation
quality of our method with the baseline". Here every sample that the reference method and a baseline both finished
gives one *pair* per question; every pair is seen by ``raters_per_pair`` raters; each rater gets a *slot* of
``trials_per_rater`` trials, a share ``attention_rate`` of them attention checks with a known answer (editing quality:
one side is the unedited source video; video quality: one side is the reference's output with its frames shuffled).
Sides are randomised per trial and balanced per rater. Everything random derives from ``seed``.

The study folder: ``study.json`` (the manifest: questions with their exact wording, trials, slots, media hashes),
``media/`` (content-addressed copies: ``<sha256 prefix>.<ext>``), and, kept apart because they are secrets,
``tokens.csv`` (lab raters' personal tokens) and ``admin_token.txt``.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from videoshop.files import file_sha256

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST = "study.json"
TOKENS = "tokens.csv"
ADMIN_TOKEN = "admin_token.txt"
MEDIA = "media"
SIDES = ("reference", "baseline")

DEFAULT_QUESTIONS = {
    "editing_quality": {
        "title": "Editing quality",
        "text": "Which video carries out the edit shown in the edited first frame, while keeping the rest of the "
                "source video unchanged?"},
    "video_quality": {
        "title": "Video quality",
        "text": "Which video looks better as a video (sharp, stable, natural motion, no flicker or artefacts)?"},
}
CHECK_KINDS = {"editing_quality": "unedited_source", "video_quality": "shuffled_frames"}


class StudyError(ValueError):
    """A study that cannot be built or read, with one line naming the file or key at fault."""


# ---------------------------------------------------------------------------------------------- results
@dataclass
class Output:
    """One method's finished output for one sample, with the media the study shows."""

    label: str
    method: str
    dataset: str
    sample_id: str
    edit_type: str
    instruction: str
    metrics: dict
    media: dict  # kind -> Path (source, first_frame, output)
    folder: Path = field(default=None)


def run_dirs_under(path: str | Path) -> list[Path]:
    """The run folders (those holding ``samples/``) at or under ``path``: a run, or a multirun's jobs."""
    path = Path(path)
    if not path.is_dir():
        raise StudyError(f"study.runs: {path}: no such folder")
    if (path / "samples").is_dir():
        return [path]
    runs = sorted(p.parent for p in path.rglob("samples") if p.is_dir() and not p.parent.name.startswith("."))
    if not runs:
        raise StudyError(f"study.runs: {path}: no run folder (with samples/) in it")
    return runs


def collect_outputs(dirs: Iterable[str | Path]) -> tuple[list[Output], list[str]]:
    """Every finished output in the results folders ``dirs``, and one note per left-out sample (failed, diverged,
    unreadable record, missing media)."""
    from videoshop_bench.experiments.report import read_records

    runs = [r for d in dirs for r in run_dirs_under(d)]
    records, media, problems = read_records(runs)
    notes = [f"left out: {p}" for p in problems]
    outputs = []
    for rec, files in zip(records, media):
        sid, label = str(rec["sample_id"]), str(rec.get("label") or rec.get("method"))
        if rec.get("status") != "ok" or rec.get("finite") is False:
            why = rec.get("error") or "non-finite output"
            notes.append(f"left out: {label}/{sid}: failed sample ({str(why).splitlines()[0][:100]})")
            continue
        missing = [k for k in ("source", "first_frame", "output") if k not in files]
        if missing:
            notes.append(f"left out: {label}/{sid}: missing media ({', '.join(missing)})")
            continue
        folder = files["output"].parent
        outputs.append(Output(label=label, method=str(rec.get("method") or label).split("[")[0],
                              dataset=str(rec.get("dataset") or ""), sample_id=sid,
                              edit_type=str(rec.get("edit_type") or ""), instruction=str(rec.get("instruction") or ""),
                              metrics={k: v for k, v in (rec.get("metrics") or {}).items()
                                       if isinstance(v, (int, float)) and v == v},
                              media=dict(files), folder=folder))
    return outputs, notes


def _matches(out: Output, name: str) -> bool:
    return out.label == name or out.method == name


def pick_methods(outputs: Sequence[Output], reference: str, baselines: Optional[Sequence[str]]) -> tuple[str, list[str]]:
    """The reference label (a label, or a method name carried by exactly one label) and the baseline labels."""
    labels = list(dict.fromkeys(o.label for o in outputs))
    refs = [lab for lab in labels if lab == reference] or \
        list(dict.fromkeys(o.label for o in outputs if o.method == reference))
    if len(refs) != 1:
        raise StudyError(f"study.reference={reference}: {'no' if not refs else 'several'} matching method labels "
                         f"in the results ({', '.join(labels) or 'none'})")
    others = [lab for lab in labels if lab != refs[0]]
    if baselines:
        chosen = [lab for lab in others if any(_matches(next(o for o in outputs if o.label == lab), b) for b in baselines)]
        unknown = [b for b in baselines if not any(_matches(o, b) for o in outputs if o.label != refs[0])]
        if unknown:
            raise StudyError(f"study.baselines: {', '.join(unknown)} not in the results ({', '.join(others)})")
        others = chosen
    if not others:
        raise StudyError(f"study.baselines: no baseline besides {refs[0]} in the results")
    return refs[0], others


# ---------------------------------------------------------------------------------------------- media
sha256_of = file_sha256  # the study's media are content-addressed by this digest


class MediaStore:
    """Content-addressed copies in ``<study>/media``; returns names relative to that folder."""

    def __init__(self, root: Path):
        self.root = root / MEDIA
        self.root.mkdir(parents=True, exist_ok=True)
        self.index: dict[str, dict] = {}

    def add(self, path: Path) -> str:
        digest = sha256_of(path)
        name = f"{digest[:24]}{path.suffix.lower()}"
        if not (self.root / name).is_file():
            shutil.copyfile(path, self.root / name)
        self.index[name] = {"sha256": digest, "bytes": (self.root / name).stat().st_size}
        return name


def shuffled_frames_video(output: Output, seed: int, tmp: Path) -> Path:
    """The attention-check decoy for video quality: the output's frames in a seeded random order in which no frame
    keeps its place (a derangement; flicker and jumps any attentive rater sees)."""
    from videoshop.video_io import read_video

    edited = output.folder / "edited"
    frames, fps = read_video(edited if edited.is_dir() else output.media["output"])
    rng = np.random.default_rng(seed)
    n = len(frames)
    order = np.arange(n)
    while n > 1 and (order == np.arange(n)).any():
        order = rng.permutation(n)
    path = tmp / f"shuffled-{output.sample_id}.mp4"
    write_mp4_single_thread(path, frames[order], fps if fps and fps > 0 else 7.0)
    return path


def write_mp4_single_thread(path: Path, frames: np.ndarray, fps: float, crf: int = 18) -> None:
    """H.264 mp4 (yuv420p, even sizes) encoded on one thread, so that the same frames give the same bytes (and the
    same content hash in the manifest) whatever the machine's load; x264's threaded encodes were seen to differ."""
    import av

    from videoshop.video_io import fps_fraction

    h, w = frames.shape[1] + frames.shape[1] % 2, frames.shape[2] + frames.shape[2] % 2
    frames = np.pad(frames, ((0, 0), (0, h - frames.shape[1]), (0, w - frames.shape[2]), (0, 0)), mode="edge")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps_fraction(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.thread_count = 1
        stream.options = {"crf": str(crf), "threads": "1"}
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        container.mux(stream.encode())


# ---------------------------------------------------------------------------------------------- the study
def _trial(tid: str, question: str, ref: Output, videos: dict, store: MediaStore, **extra: Any) -> dict:
    return {"id": tid, "question": question, "dataset": ref.dataset, "sample_id": ref.sample_id,
            "edit_type": ref.edit_type, "instruction": ref.instruction,
            "source": store.add(ref.media["source"]), "first_frame": store.add(ref.media["first_frame"]),
            "videos": {side: store.add(p) for side, p in videos.items()}, **extra}


def make_pairs(outputs: Sequence[Output], reference: str, baselines: Sequence[str], questions: Sequence[str],
               store: MediaStore) -> list[dict]:
    """One trial per question, baseline and sample both methods finished; ``reference``/``baseline`` name the
    labels, ``metrics`` keep each side's automatic metrics (for the metric-agreement table)."""
    by = {(o.label, o.dataset, o.sample_id): o for o in outputs}
    ref_outputs = sorted((o for o in outputs if o.label == reference), key=lambda o: (o.dataset, o.sample_id))
    pairs = []
    for q in questions:
        for b in baselines:
            for r in ref_outputs:
                o = by.get((b, r.dataset, r.sample_id))
                if o is None:
                    continue
                pairs.append(_trial(f"p{len(pairs):05d}", q, r, {"reference": r.media["output"],
                                                                "baseline": o.media["output"]}, store,
                                    reference=reference, baseline=b, check=None,
                                    metrics={"reference": r.metrics, "baseline": o.metrics}))
    return pairs


def make_checks(outputs: Sequence[Output], reference: str, questions: Sequence[str], store: MediaStore,
                seed: int) -> tuple[list[dict], list[str]]:
    """One attention check per question and reference sample: the correct answer is stored as the ``reference``
    side (the edited output), the decoy as ``baseline`` (unedited source, or shuffled frames)."""
    checks, notes = [], []
    refs = sorted((o for o in outputs if o.label == reference), key=lambda o: (o.dataset, o.sample_id))
    with tempfile.TemporaryDirectory() as tmp:
        for q in questions:
            kind = CHECK_KINDS.get(q, "shuffled_frames")
            for i, r in enumerate(refs):
                try:
                    decoy = r.media["source"] if kind == "unedited_source" else \
                        shuffled_frames_video(r, seed + i, Path(tmp))
                except Exception as e:  # noqa: BLE001  (an unreadable output: no check from it)
                    notes.append(f"no attention check from {r.label}/{r.sample_id}: {str(e).splitlines()[0][:100]}")
                    continue
                checks.append(_trial(f"c{len(checks):05d}", q, r, {"reference": r.media["output"], "baseline": decoy},
                                     store, reference=reference, baseline=None, check=kind, metrics={}))
    return checks, notes


def build_study(runs: Sequence[str | Path], out_dir: str | Path, reference: str = "videoshop",
                baselines: Optional[Sequence[str]] = None, questions: Optional[dict] = None,
                instructions: str = "", trials_per_rater: int = 20, raters_per_pair: int = 3,
                attention_rate: float = 0.1, seed: int = 0, lab_raters: Optional[int] = None,
                name: str = "study") -> dict:
    """Build the study folder ``out_dir`` from the results folders ``runs``; returns the manifest.

    ``questions``: name -> {title, text} (the paper's two by default). ``lab_raters``: how many personal tokens to
    write (default: one per slot; a rater takes a free slot on first visit, lab and crowd raters alike). The same arguments give the same manifest (tokens are random secrets and are
    kept in ``tokens.csv``, outside the manifest).
    """
    questions = dict(questions or DEFAULT_QUESTIONS)
    for q, spec in questions.items():
        if not isinstance(spec, dict) or not spec.get("text"):
            raise StudyError(f"study.questions.{q}: needs a 'text' (the exact wording raters see)")
    if trials_per_rater < 2 or raters_per_pair < 1 or not 0 <= attention_rate < 1:
        raise StudyError("study: trials_per_rater >= 2, raters_per_pair >= 1 and 0 <= attention_rate < 1 required")
    out = Path(out_dir)
    if (out / MANIFEST).exists():
        raise StudyError(f"study.dir={out}: a study is already there ({MANIFEST}); choose another study.dir")
    outputs, notes = collect_outputs(runs)
    ref, base = pick_methods(outputs, reference, baselines)
    out.mkdir(parents=True, exist_ok=True)
    store = MediaStore(out)
    pairs = make_pairs(outputs, ref, base, list(questions), store)
    if not pairs:
        raise StudyError(f"study.runs: no sample finished by both {ref} and a baseline ({', '.join(base)})")
    checks, check_notes = make_checks(outputs, ref, list(questions), store, seed) if attention_rate > 0 else ([], [])
    rng = np.random.default_rng(seed)
    slots = assign_slots_by_question(pairs, checks, raters_per_pair, trials_per_rater, attention_rate, rng)
    manifest = {
        "schema_version": SCHEMA_VERSION, "name": name, "seed": seed, "reference": ref, "baselines": base,
        "questions": questions, "instructions": instructions,
        "settings": {"trials_per_rater": trials_per_rater, "raters_per_pair": raters_per_pair,
                     "attention_rate": attention_rate},
        "runs": [str(Path(r).resolve()) for r in runs],
        "trials": pairs + checks, "slots": slots, "media": dict(sorted(store.index.items())),
        "left_out": {"n_failed": sum("failed sample" in n for n in notes), "notes": notes + check_notes},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    write_tokens(out, lab_raters if lab_raters is not None else len(slots))
    for n in notes + check_notes:
        log.info("study: %s", n)
    log.info("study: %s: %d pairs (%s vs %s), %d attention checks, %d rater slots of up to %d trials",
             out, len(pairs), ref, ", ".join(base), len(checks), len(slots), trials_per_rater)
    return manifest


def assign_slots_by_question(pairs: list[dict], checks: list[dict], raters_per_pair: int, trials_per_rater: int,
                             attention_rate: float, rng: np.random.Generator) -> list[list[dict]]:
    """Slots over all pairs (a rater answers both questions), checks drawn from all questions."""
    from .assignment import assign_slots

    return assign_slots([p["id"] for p in pairs], [c["id"] for c in checks], raters_per_pair, trials_per_rater,
                        attention_rate, rng)


def write_tokens(out: Path, n: int) -> None:
    """``tokens.csv`` (rater_id, token) for ``n`` lab raters and ``admin_token.txt``: random secrets."""
    lines = ["rater_id,token"] + [f"lab-{i + 1:03d},{secrets.token_urlsafe(16)}" for i in range(n)]
    (out / TOKENS).write_text("\n".join(lines) + "\n")
    (out / ADMIN_TOKEN).write_text(secrets.token_urlsafe(24) + "\n")
    for p in (out / TOKENS, out / ADMIN_TOKEN):
        p.chmod(0o600)


# ---------------------------------------------------------------------------------------------- reading
def load_manifest(study_dir: str | Path) -> dict:
    """The study's manifest; one line naming the file when it is missing or unreadable."""
    path = Path(study_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise StudyError(f"study.dir: {path}: no study here (build one with task=study_build)") from None
    except ValueError as e:
        raise StudyError(f"{path}: unreadable study manifest ({e})") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise StudyError(f"{path}: schema_version {manifest.get('schema_version')} (this code reads {SCHEMA_VERSION})")
    return manifest


def verify_media(study_dir: str | Path, manifest: dict) -> tuple[set[str], list[str]]:
    """Trials whose media are missing or do not match their content hash (dropped), and one note per bad file."""
    root = Path(study_dir) / MEDIA
    bad, notes = set(), []
    for name, meta in manifest["media"].items():
        p = root / name
        if not p.is_file():
            bad.add(name)
            notes.append(f"{p}: missing media file")
        elif sha256_of(p) != meta["sha256"]:
            bad.add(name)
            notes.append(f"{p}: corrupt media file (content hash differs from the manifest)")
    dropped = {t["id"] for t in manifest["trials"]
               if bad & {t["source"], t["first_frame"], *t["videos"].values()}}
    if dropped:
        notes.append(f"{len(dropped)} trial(s) dropped for bad media: {', '.join(sorted(dropped)[:20])}")
    return dropped, notes


def read_tokens(study_dir: str | Path) -> list[dict]:
    """The lab raters of ``tokens.csv`` (rater_id, token)."""
    import csv

    path = Path(study_dir) / TOKENS
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{"rater_id": r["rater_id"], "token": r["token"]} for r in csv.DictReader(f)]


def read_admin_token(study_dir: str | Path) -> str:
    path = Path(study_dir) / ADMIN_TOKEN
    if not path.is_file():
        raise StudyError(f"{path}: missing (set study.admin_token=... or rebuild the study)")
    return path.read_text().strip()
