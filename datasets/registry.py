"""The dataset registry: one entry per ``dataset=<name>`` choice, and the keys every dataset config shares, declared once.

A ``DatasetEntry`` says which loader class reads the samples (``loader``; the common folder format by default) and,
for a dataset made by ``task=build``, which builder makes it (``builder``: the kind, ``videoshop_bench.experiments.build.
<kind>_from_config``), where it goes (``out``) and whether it is cut from source videos (``from_video``: the fit
and frame-rate keys). ``dataset_node(name)`` is the config section those declare: the run keys every dataset has
(``limit``, ``ids``, ``prompts``, ``num_shards``, ``shard``), the loader's ``_target_`` and ``name`` (and ``root``:
the build's ``out``), and the build keys every builder reads. ``conf/dataset/<name>.yaml`` names its entry
(``defaults: [/dataset_entry/<name>@_here_, _self_]``) and holds only the dataset's own values; the Hydra edge
(experiments/stored_configs.py) puts the nodes into Hydra's config store. Plain Python: no Hydra here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from videoshop.registry import Registry

FOLDER = "videoshop_bench.datasets.folder.FolderDataset"
ENTRY_GROUP = "dataset_entry"  # where the nodes are stored: conf/dataset/<name>.yaml's defaults name them

# the run keys of every dataset
RUN_KEYS: dict[str, Any] = dict(
    limit=None,     # first N selected samples (build and edit runs)
    ids=None,       # explicit sample ids, e.g. [327726_t1, 242679_t1]
    prompts=None,   # CSV (id,source_prompt,target_prompt) or JSON {id: {...}} overriding text-driven methods' prompts
    num_shards=1,   # split the selected samples into N disjoint shards (round robin), one worker each;
    shard=0,        #   this worker's shard; then `python -m videoshop_bench.experiments.merge RUN_DIR` (README: scaling out)
)
# the build keys every builder reads (experiments/build.py): the model's frame count and size, sharding, reruns
BUILD_KEYS: dict[str, Any] = dict(
    num_frames="${model.num_frames}", height="${model.height}", width="${model.width}",
    shard_index=0, num_shards=1,
    overwrite=False,  # false: a rerun skips built samples
)
# a builder cutting clips from source videos: fit to the target aspect, frames spread over the clip or at a rate
FROM_VIDEO_KEYS: dict[str, Any] = dict(
    fit="crop",        # crop (centre-crop to the target aspect, then resize) | resize | pad
    sample_fps=None,   # null: frames spread uniformly over the whole clip; a number: frames at this rate from the start
)


@dataclass(frozen=True)
class DatasetEntry:
    """``name``: the ``dataset=`` choice (and ``dataset.name``); ``display``: what it is; ``loader``: the class
    reading its samples; ``builder``: the ``task=build`` kind making it (None: nothing to build); ``out``: where
    the build writes (and the folder loader reads; default ``${paths.data}/<name>``); ``from_video``: the build
    cuts clips from videos (``fit``, ``sample_fps``)."""

    name: str
    display: str
    loader: str = FOLDER
    builder: Optional[str] = None
    out: Optional[str] = None
    from_video: bool = True


DATASETS: Registry[DatasetEntry] = Registry("dataset")

for _d in (
    DatasetEntry("synthetic", "procedurally rendered videos with first-frame edits, ground truth and masks",
                 loader="videoshop_bench.datasets.synthetic.SyntheticDataset"),
    DatasetEntry("examples", "two tiny committed samples in the folder format (datasets/examples/)"),
    DatasetEntry("folder", "any dataset already in the folder format (dataset.loader.root=PATH)"),
    DatasetEntry("magicbrush", "MagicBrush-to-video (paper Sec. 4): MagicBrush images animated with SVD",
                 builder="magicbrush", out="${paths.data}/magicbrush/${dataset.build.split}", from_video=False),
    DatasetEntry("expert", "the expert-edited set / your own videos, from a manifest (paper Sec. 4)",
                 builder="expert"),
    DatasetEntry("editversebench", "EditVerseBench: instruction edits with shipped edited first frames",
                 builder="editversebench"),
    DatasetEntry("five_bench", "FiVE-Bench: prompt pairs, per-frame masks, FiVE-Acc questions",
                 builder="five_bench"),
    DatasetEntry("v2vbench", "V2VBench: 50 videos x 3 edit prompts", builder="v2vbench"),
    DatasetEntry("davis", "DAVIS 2017 sequences with edits (or reconstruction)", builder="davis"),
):
    DATASETS.register(_d)


def dataset_node(name: str) -> dict[str, Any]:
    """The config section the entry ``name`` declares (conf/dataset/<name>.yaml adds the dataset's own values)."""
    e = DATASETS.get(name)
    loader: dict[str, Any] = {"_target_": e.loader, "name": e.name}
    node: dict[str, Any] = {"name": e.name, **RUN_KEYS, "loader": loader}
    if e.builder is not None:
        loader["root"] = "${dataset.build.out}"
        node["build"] = {"kind": e.builder, "_target_": "videoshop_bench.experiments.build.${dataset.build.kind}_from_config",
                         "out": e.out or f"${{paths.data}}/{e.name}", **BUILD_KEYS,
                         **(FROM_VIDEO_KEYS if e.from_video else {})}
    return node

