"""First-frame image editors (Videoshop's premise: edit the first frame with any image tool, then propagate).

One module per editor and one entry in ``videoshop_bench.datasets.editors.registry.EDITORS``; docs/datasets.md ("Edited first frames").
"""
