"""The task registry: what ``task=<name>`` runs (experiments/tasks.py runs it after validating the config).

Each task is one plain function ``fn(cfg, label=None)`` and one entry in ``TASKS``: its name (``task=<name>``), the
function (a dotted path, imported when the task runs) and the config sections it reads, from which the config
schema decides what to check (experiments/config_schema.py). A new task is one function plus one
``TASKS.register(Task(...))``, in this module or in the module that defines it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

from videoshop.registry import Registry

EDIT_READS = ("dataset.loader", "model", "method", "metrics", "tracking", "limits")


@dataclass(frozen=True)
class Task:
    """``run``: ``fn(cfg, label=None)`` or its dotted path (imported when the task runs); ``reads``: the config
    sections it uses (their schemas are checked and their mandatory ``???`` values must be set; ``method`` and
    ``limits`` only where read)."""

    name: str
    run: Union[str, Callable]
    reads: tuple[str, ...] = ()
    doc: str = ""
    combine: Optional[str] = None  # a multirun of this task ends with ``fn(job_dirs, sweep_dir)`` (dotted path), after
                                   # the combined tables every sweep gets (experiments/callbacks.py, merge.py --sweep)

    def reads_section(self, section: str) -> bool:
        return any(r == section or r.startswith(section + ".") for r in self.reads)


TASKS: Registry[Task] = Registry("task")
for _t in (Task("edit", "videoshop_bench.experiments.runner.run_edit", EDIT_READS, "edit every selected sample, score, tabulate"),
           Task("reconstruct", "videoshop_bench.experiments.runner.run_edit", EDIT_READS,
                "edit with the source's own first frame (inversion fidelity)"),
           Task("first_frame_editors", "videoshop_bench.experiments.first_frame_editors.run_first_frame_editors",
                EDIT_READS + ("first_frame", "first_frame_editors"),
                "one first-frame editor's job of experiment=first_frame_editors (a multirun over editors)",
                combine="videoshop_bench.experiments.first_frame_editors.combine_first_frame_editors"),
           Task("build", "videoshop_bench.experiments.build.run_build", ("dataset.build",), "build a dataset into paths.data"),
           Task("train_toy", "videoshop_bench.research.train_toy.run_train", ("model",), "train the toy model"),
           Task("regression", "videoshop_bench.experiments.regression.run_regression", (), "check the committed goldens"),
           Task("trajectory", "videoshop_bench.research.trajectory.run_trajectory", (), "Fig. 3: x_t - x_0 cosine similarities"),
           Task("study_build", "videoshop_bench.experiments.study.tasks.run_study_build", ("study",), "the human study's trials"),
           Task("study_serve", "videoshop_bench.experiments.study.tasks.run_study_serve", ("study",), "the rater/admin server"),
           Task("study_import", "videoshop_bench.experiments.study.tasks.run_study_import", ("study",), "import votes from CSV"),
           Task("study_analyze", "videoshop_bench.experiments.study.tasks.run_study_analyze", ("study",), "the study's tables")):
    TASKS.register(_t)
