"""Peak memory per edit (videoshop.speed): a reset starts a new window, so an earlier, larger allocation no longer
counts (on Linux, where /proc/self/clear_refs resets VmHWM)."""

import numpy as np
import pytest

from videoshop.speed import peak_memory_mb, reset_peak_memory


def test_reset_starts_a_new_window_on_the_cpu():
    scope = reset_peak_memory("cpu")
    if scope != "rss_window":
        pytest.skip("this kernel does not allow resetting the resident high-water mark")
    big = np.ones(400 * 2**20 // 8)  # 400 MiB resident
    with_big = peak_memory_mb("cpu")
    del big
    assert reset_peak_memory("cpu") == "rss_window"
    after = peak_memory_mb("cpu")
    assert with_big - after > 300  # the 400 MiB peak belongs to the old window only
    small = np.ones(100 * 2**20 // 8)
    assert peak_memory_mb("cpu") - after > 80  # and the new window sees what is allocated in it
    del small
