"""Glue between configs and the library (kept for imports): the pipeline builder lives in videoshop.models."""

from videoshop.models import build_pipeline  # noqa: F401
