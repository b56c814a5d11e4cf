"""Write environment.yml and binder/requirements.txt from requirements-lock.txt.

The lock file is the single source of pinned versions; `make lock` calls this
after re-resolving it, and tests/test_packaging.py fails when the copies drift.
Run: python tools/sync_environment.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements-lock.txt"
PYTHON = "3.11"


def pins() -> list[str]:
    """The pinned requirements of the lock file (comments dropped)."""
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def environment_yml() -> str:
    """environment.yml for conda/mamba users: Python from conda, the rest pinned by pip."""
    body = "\n".join(f"      - {p}" for p in pins())
    return (
        "# Generated from requirements-lock.txt by tools/sync_environment.py: do not edit.\n"
        "name: stemseg\n"
        "channels:\n  - conda-forge\n"
        "dependencies:\n"
        f"  - python={PYTHON}\n"
        "  - pip\n"
        "  - pip:\n"
        f"{body}\n"
        "      - -e .\n"
    )


def outputs() -> dict[Path, str]:
    return {
        ROOT / "environment.yml": environment_yml(),
        ROOT / "binder" / "requirements.txt": LOCK.read_text(encoding="utf-8"),
        ROOT / "binder" / "runtime.txt": f"python-{PYTHON}\n",
    }


def main(argv: list[str]) -> int:
    stale = [p for p, text in outputs().items() if not p.exists() or p.read_text() != text]
    if "--check" in argv:
        for p in stale:
            print(f"out of date: {p.relative_to(ROOT)} (run: python tools/sync_environment.py)")
        return 1 if stale else 0
    for p, text in outputs().items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
