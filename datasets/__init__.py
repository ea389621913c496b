"""Dataset builders and the one sample schema every method and metric uses.

Note: this package shadows Hugging Face's ``datasets`` when running from the repository root; the project never
imports that library (parquet files are read with pyarrow/pandas).
"""

from videoshop import _compat  # noqa: F401

from .schema import Sample, SampleError  # noqa: F401
