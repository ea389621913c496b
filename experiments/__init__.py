from videoshop import _compat  # noqa: F401
