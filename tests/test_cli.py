"""The stemseg command line."""

from __future__ import annotations

import subprocess
import sys

from stemseg import cli


def test_demo_prints_a_row_per_bundled_file(capsys):
    assert cli.main(["demo", "--no-isolate"]) == 0
    out = capsys.readouterr().out
    for needle in (
        "bruker_tem_CuOPdTi_64x64.bcf", "64x64x2048", "uint8", "Cu O Pd Ti", "HAADF*",
        "velox_eels_eds_FeCoO.emd", "128x128x4096", "velox_si_16x16_CCaOCu.emd",
        "bruker_sem_mineral_30x30.bcf", "SEM",
    ):
        assert needle in out


def test_console_script_runs_demo_isolated():
    """`stemseg demo` as make run calls it: readers in a child process, exit 0."""
    result = subprocess.run(
        [sys.executable, "-m", "stemseg.cli", "demo"], capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".bcf") == 2 and result.stdout.count(".emd") == 2


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "demo" in capsys.readouterr().out
