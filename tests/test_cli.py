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
        # both workflows on the 6-cation phantom, next to the paper's Table 1
        "gmm ", "hdbscan ", "ARI vs truth", "iv minority wurtzite", "paper hdbscan",
    ):
        assert needle in out


def test_console_script_runs_demo_isolated():
    """`stemseg demo` as make run calls it: readers in a child process, exit 0."""
    result = subprocess.run(
        [sys.executable, "-m", "stemseg.cli", "demo", "--no-phantom"], capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".bcf") == 2 and result.stdout.count(".emd") == 2


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "demo" in capsys.readouterr().out


# --------------------------------------------------------------------------- stemseg run

import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from stemseg import data  # noqa: E402

BRUKER = data.example("bruker_tem_CuOPdTi_64x64")


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def gmm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "result"
    before = _digest(BRUKER)
    code = cli.main(["run", str(BRUKER), "--workflow", "gmm", "--n-clusters", "3",
                     "--out", str(out)])
    return code, out, before


def test_run_writes_every_output(gmm_run):
    code, out, before = gmm_run
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "labels.npy", "labels.png", "labels_full.npy", "mean_spectra.hspy",
        "quantification.csv", "result.json",
    ]
    assert np.load(out / "labels_full.npy").shape == (64, 64)
    assert np.load(out / "labels.npy").shape == (32, 32)
    table = pd.read_csv(out / "quantification.csv")
    assert set(table.element) == {"Cu", "O", "Pd", "Ti"}
    assert np.allclose(table.groupby("cluster").at_pct.sum(), 100)
    assert (table.sigma > 0).all()
    summary = json.loads((out / "result.json").read_text())
    assert summary["params"]["n_clusters"] == 3 and summary["random_state"] == 0
    assert set(summary["entropy"]) == {"0", "1", "2"}
    assert _digest(BRUKER) == before  # the input is untouched


def test_run_refuses_existing_output(gmm_run, capsys):
    _, out, _ = gmm_run
    stamp = (out / "result.json").read_bytes()
    code = cli.main(["run", str(BRUKER), "--out", str(out)])
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "result.json").read_bytes() == stamp


def test_run_on_a_folder_and_incomplete_kfactors(tmp_path, capsys):
    folder = tmp_path / "maps"
    folder.mkdir()
    shutil.copy(BRUKER, folder)
    shutil.copy(data.example("velox_si_16x16_CCaOCu"), folder)
    (tmp_path / "k.json").write_text(json.dumps({"Cu_Ka": 1.0, "Ti_Ka": 1.0}))
    # incomplete user k-factors stop the run, never mixed with theoretical values
    code = cli.main(["run", str(folder), "--n-clusters", "2", "--out", str(tmp_path / "bad"),
                     "--kfactors", str(tmp_path / "k.json")])
    assert code == 2
    assert "O_Ka" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    # a folder: one sub-folder per map; Velox files without lines still segment
    assert cli.main(["run", str(folder), "--n-clusters", "2", "--out", str(tmp_path / "ok")]) == 0
    assert (tmp_path / "ok" / BRUKER.stem / "quantification.csv").exists()
    assert (tmp_path / "ok" / "velox_si_16x16_CCaOCu" / "labels.npy").exists()


def test_sigterm_leaves_no_partial_result(tmp_path):
    big = data.example("velox_eels_eds_FeCoO")
    out = tmp_path / "result"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stemseg.cli", "run", str(big), "--workflow", "hdbscan",
         "--bin", "1", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # wait until the temporary output folder exists (the run is under way), then stop it
    deadline = time.time() + 120
    while time.time() < deadline and not any(tmp_path.iterdir()):
        time.sleep(0.2)
    assert any(tmp_path.iterdir()), "the run never started writing"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- stemseg simulate


def test_simulate_writes_a_phantom_and_refuses_to_overwrite(tmp_path, capsys):
    from stemseg import io

    out = tmp_path / "np.hspy"
    args = ["simulate", "nanoparticles-7cation", "--out", str(out), "--shape", "48", "48",
            "--seed", "2", "--option", "core_shell=true"]
    assert cli.main(args) == 0
    acq = io.load(out)
    assert acq.eds.data.shape[:2] == (48, 48)
    assert acq.truth["core_shell"] is True
    stamp = out.read_bytes()
    assert cli.main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == stamp
    assert cli.main(args + ["--overwrite"]) == 0


def test_simulate_unknown_name_lists_the_choices(tmp_path, capsys):
    assert cli.main(["simulate", "granite", "--out", str(tmp_path / "g.hspy")]) == 2
    err = capsys.readouterr().err
    assert "sulfide-6cation" in err and "lfo-sto" in err
    assert not (tmp_path / "g.hspy").exists()
