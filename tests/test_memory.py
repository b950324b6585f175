"""Issue 17: a capture's peak extra memory stays within 1.3x of what it keeps (no extra copies).

Runs one case of ``benchmarks/memory.py`` (a fresh subprocess, the kernel's high-water mark; see
its docstring for the method) on the shipped classifier.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status and clear_refs")
def test_capture_peak_is_within_1_3x_of_the_kept_maps():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import memory
    finally:
        sys.path.pop(0)
    result = memory.subprocess_case("sentiment", 256)
    assert result["kept"] == result["full_maps"]  # 6 layers x 12 heads x 256 x 256 float32, once
    assert result["extra"] / result["kept"] <= 1.3, result
