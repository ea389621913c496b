"""The paper's human study (Table 4, left half) as a tool.

``design.py`` builds a blinded side-by-side preference study from any results folders (pairs of the reference method
and each baseline per sample and question, attention checks, per-rater assignment); ``db.py`` stores raters and
votes (SQLAlchemy, SQLite in WAL mode by default); ``server.py`` serves it to raters (FastAPI on uvicorn, all assets
in ``static/``); ``analysis.py`` writes Table 4's left half with bootstrap intervals, inter-rater agreement and how
far each automatic metric agrees with people; ``votes_io.py`` exports and imports votes as CSV; ``tasks.py`` is the
Hydra edge (``task=study_build|study_serve|study_analyze|study_import``).
"""
