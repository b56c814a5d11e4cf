"""A bounded fuzz run of the loader (the longer one: python tools/fuzz_loader.py --n 100)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "fuzz_loader", Path(__file__).resolve().parents[1] / "tools" / "fuzz_loader.py"
)
fuzz_loader = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fuzz_loader)


def test_no_mutated_file_escapes_as_anything_but_a_stemseg_error():
    outcomes, escaped = fuzz_loader.run(n_per_file=4, seed=1)
    assert not escaped, escaped
    assert sum(outcomes.values()) == 4 * len(fuzz_loader.TARGETS)
    # the bounded run must exercise the error path, not only clean loads
    assert outcomes["StemsegError"] + outcomes["crash contained"] > 0
