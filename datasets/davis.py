"""DAVIS 2017 (Pont-Tuset et al. 2017) from a local folder: the standard source videos with per-object masks, a
common choice for user studies and for the reconstruction (inversion) task.

Layout read (the DAVIS 2017 TrainVal release, davischallenge.org; the same layout the davis2017-evaluation toolkit
reads)::

    <root>/JPEGImages/<resolution>/<sequence>/00000.jpg ...   frames (resolution: 480p or Full-Resolution)
    <root>/Annotations/<resolution>/<sequence>/00000.png ...  indexed-palette PNGs: pixel value = object id (0 = bg)
    <root>/ImageSets/2017/{train,val}.txt                     sequence names per split (optional here)

DAVIS has no edits, so two modes:

* ``mode: edit`` (default) reads an edits manifest (``edits``: CSV or JSONL, paths relative to it) with columns
  ``sequence, instruction`` and optional ``id, object, edited, edit_type, source_prompt, target_prompt``. ``object``
  is the DAVIS object id the edit touches: its frame-0 annotation is the edit mask, and for edits that keep the
  object's silhouette (change_color, change_appearance, remove_object) its per-frame annotations are ``gt_masks``.
  ``object`` empty = no mask (e.g. add_object); ``all`` = every annotated object. ``edited`` (or
  ``first_frames/<id>.png``) is the edited first frame. Ids default to ``<sequence>`` (``_<n>`` for repeats).
* ``mode: reconstruction``: every sequence of ``split`` as a reconstruction sample (edited = its own first frame,
  ground truth = the source video), no manifest needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .benchmarks import bad_entry, build_benchmark, convert_entry, read_mask_frames, read_rows
from .folder_spec import safe_sample_id
from .schema import Sample

NAME = "davis"
RESOLUTIONS = ("480p", "Full-Resolution")
SILHOUETTE_EDITS = ("change_color", "change_appearance", "remove_object")


def sequences(root: Path, resolution: str = "480p", split: str = "all") -> list[str]:
    """Sequence names of ``split`` (ImageSets/2017/<split>.txt) or every folder of JPEGImages/<resolution>."""
    frames = root / "JPEGImages" / resolution
    if not frames.is_dir():
        raise FileNotFoundError(f"dataset.build.source={root}: no JPEGImages/{resolution}/ (expected the DAVIS 2017 "
                                f"folder; dataset.build.resolution is one of {RESOLUTIONS})")
    if split and split != "all":
        listing = root / "ImageSets" / "2017" / f"{split}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"dataset.build.split={split}: no {listing}")
        return [s.strip() for s in listing.read_text().splitlines() if s.strip()]
    return sorted(p.name for p in frames.iterdir() if p.is_dir())


def _object_rule(obj) -> Optional[tuple]:
    if obj is None or str(obj).strip() in ("", "none"):
        return None
    if str(obj).strip().lower() == "all":
        return ("gt", 0)
    return ("eq", int(float(obj)))


def read_edit_entries(root: Path, edits, resolution: str = "480p") -> list[dict]:
    """Entries from the edits manifest (module docstring); a bad row becomes one failing entry naming file:line."""
    edits = Path(edits).expanduser()
    counts: dict[str, int] = {}
    entries = []
    for i, r in enumerate(read_rows(edits)):
        seq = str(r.get("sequence") or "").strip()
        n = counts[seq] = counts.get(seq, 0) + 1
        sid = safe_sample_id(r.get("id") or (seq if n == 1 else f"{seq}_{n}") or f"row{i}")
        if r.get("_error") or not seq:
            entries.append(bad_entry(sid, r["_where"], r.get("_error") or "no `sequence`"))
            continue
        try:
            rule = _object_rule(r.get("object"))
        except ValueError:
            entries.append(bad_entry(sid, r["_where"], f"object={r.get('object')!r}: a DAVIS object id, 'all' or empty"))
            continue
        ann = root / "Annotations" / resolution / seq
        edited = r.get("edited") or None
        e = {"id": sid, "_where": r["_where"], "video": str(root / "JPEGImages" / resolution / seq),
             "instruction": r.get("instruction"), "edit_type": r.get("edit_type") or None,
             "edited": str(edits.parent / edited) if edited else None,
             "source_prompt": r.get("source_prompt") or None, "target_prompt": r.get("target_prompt") or None,
             "meta": {"dataset": NAME, "sequence": seq, "object": r.get("object"), "resolution": resolution}}
        if rule is not None:
            e.update(mask_rule=rule, mask=str(ann), silhouette_masks=str(ann))
        entries.append(e)
    return entries


def read_entries(root, mode: str = "edit", edits=None, resolution: str = "480p", split: str = "all") -> list[dict]:
    root = Path(root).expanduser()
    if mode == "reconstruction":
        return [{"id": safe_sample_id(s), "_where": str(root / "JPEGImages" / resolution / s),
                 "video": str(root / "JPEGImages" / resolution / s), "reconstruction": True,
                 "instruction": "reconstruct the source video", "edit_type": "reconstruction",
                 "edited": str(root / "JPEGImages" / resolution / s),
                 "meta": {"dataset": NAME, "sequence": s, "resolution": resolution}}
                for s in sequences(root, resolution, split)]
    if mode != "edit":
        raise ValueError(f"dataset.build.mode={mode!r}: edit | reconstruction")
    if not edits:
        raise ValueError("dataset.build.edits is not set: a CSV/JSONL of sequence,instruction[,object,edited,...] "
                         "(or dataset.build.mode=reconstruction)")
    sequences(root, resolution)  # the folder is a DAVIS folder
    return read_edit_entries(root, edits, resolution)


def convert_davis_entry(e: dict, **options) -> Sample:
    """``convert_entry`` plus DAVIS's two extras: reconstruction samples, and the object's per-frame annotations as
    ``gt_masks`` for silhouette-keeping edits."""
    if e.get("reconstruction"):
        s = convert_entry(e, **{**options, "first_frames": None})
        return Sample.as_reconstruction(s)
    s = convert_entry(e, **options)
    if e.get("silhouette_masks") and s.edit_type in SILHOUETTE_EDITS:
        from .fit import fit_frames

        idx = np.asarray(s.meta["frame_indices"])
        total = s.meta["original"]["num_frames"]
        masks = read_mask_frames(e["silhouette_masks"], idx, total, e["mask_rule"], e["_where"])
        s.gt_masks = fit_frames(masks, s.size[0], s.size[1], s.meta["fit"], mask=True)
        s.meta["gt_masks"] = "DAVIS annotation of the edited object in each frame (source silhouette)"
    return s.validate()


def build_davis(source, out_root, *, mode: str = "edit", edits=None, resolution: str = "480p", split: str = "all",
                first_frames=None, **kw) -> dict:
    """DAVIS 2017 -> the common folder format (``videoshop_bench.datasets.benchmarks.build_benchmark`` options)."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"dataset.build.resolution={resolution!r}: one of {RESOLUTIONS}")
    return build_benchmark(NAME, read_entries(source, mode, edits, resolution, split), out_root, source=source,
                           first_frames=first_frames, convert=convert_davis_entry,
                           settings={"mode": mode, "edits": str(edits) if edits else None, "resolution": resolution,
                                     "split": split}, **kw)
