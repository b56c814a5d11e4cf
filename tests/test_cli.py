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
from pathlib import Path  # noqa: E402
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
        "labels.hspy", "labels.npy", "labels.png", "labels.tif", "labels_full.npy",
        "mean_spectra.hspy", "quantification.csv", "report.pdf", "result.json",
        "segmentation.hspy", "spectra.png",
    ]
    full = np.load(out / "labels_full.npy")
    assert full.shape == (64, 64)
    # the labels as a calibrated HyperSpy signal and as a 16-bit TIFF (cluster + 1)
    import hyperspy.api as hs
    from PIL import Image

    labels = hs.load(out / "labels.hspy")
    assert np.array_equal(labels.data, full)
    from stemseg import io

    source_axes = io.load(BRUKER).eds.axes_manager.navigation_axes   # in nm
    for a, b in zip(labels.axes_manager.signal_axes, source_axes):
        assert a.scale == pytest.approx(b.scale) and str(a.units) == str(b.units)
    assert np.array_equal(np.asarray(Image.open(out / "labels.tif")), full + 1)
    # the whole result in one file, read back by the package
    seg = io.load_segmentation(out / "segmentation.hspy")
    assert np.array_equal(seg.labels_full, full) and seg.workflow == "gmm"
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert np.load(out / "labels.npy").shape == (32, 32)
    table = pd.read_csv(out / "quantification.csv")
    assert set(table.element) == {"Cu", "O", "Pd", "Ti"}
    assert np.allclose(table.groupby("cluster").at_pct.sum(), 100)
    assert (table.sigma > 0).all()
    summary = json.loads((out / "result.json").read_text())
    assert summary["params"]["n_clusters"] == 3 and summary["random_state"] == 0
    assert set(summary["entropy"]) == {"0", "1", "2"}
    # what a reader of the numbers needs: input, lines, k-factors and their source, beam
    assert summary["source_sha256"] == before
    assert summary["xray_lines"] == ["Cu_Ka", "O_Ka", "Pd_La", "Ti_Ka"]
    assert set(summary["kfactors"]) == set(summary["xray_lines"])
    assert summary["kfactor_source"].startswith("theoretical")
    assert summary["beam_energy_kV"] == 200
    assert summary["pixel_size"][0]["units"] == "nm"
    assert {"stemseg", "hyperspy", "exspy", "scikit-learn"} <= set(summary["software"])
    assert _digest(BRUKER) == before  # the input is untouched


def test_big_maps_are_streamed_by_default(gmm_run, tmp_path, monkeypatch, capsys):
    """Issue 17: a map whose cube holds more than cli.STREAM_ABOVE_BYTES is read lazily and
    run through the streamed workflow without --lazy (the thresholds lowered here so that
    the bundled map counts as big); count splitting, which needs the whole cube, refuses."""
    assert json.loads((gmm_run[1] / "result.json").read_text())["streamed"] is None
    monkeypatch.setattr(cli, "PROBE_ABOVE_FILE_BYTES", 0)   # probe the size of every file
    import argparse

    acq, why = cli._load_for_run(BRUKER, argparse.Namespace(lazy=False), {})
    assert why is None and isinstance(acq.eds.data, np.ndarray)  # probed, small: in memory
    monkeypatch.setattr(cli, "STREAM_ABOVE_BYTES", 1024)
    big = tmp_path / "big"
    assert cli.main(["run", str(BRUKER), "--n-clusters", "2", "--out", str(big)]) == 0
    summary = json.loads((big / "result.json").read_text())
    assert summary["streamed"].startswith("streamed: its cube holds"), summary["streamed"]
    assert "streamed" in capsys.readouterr().err
    assert np.load(gmm_run[1] / "labels.npy").shape == np.load(big / "labels.npy").shape
    code = cli.main(["run", str(BRUKER), "--n-clusters", "auto", "--out", str(tmp_path / "a")])
    assert code != 0 and "count splitting" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_run_refuses_existing_output(gmm_run, capsys):
    _, out, _ = gmm_run
    stamp = (out / "result.json").read_bytes()
    code = cli.main(["run", str(BRUKER), "--out", str(out)])
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "result.json").read_bytes() == stamp


def test_incomplete_kfactors_stop_a_single_map(tmp_path, capsys):
    """User k-factors that miss one of the map's lines stop the run (never mixed with
    theoretical values), name the file and the line, and leave no output."""
    (tmp_path / "k.json").write_text(json.dumps({"Cu_Ka": 1.0, "Ti_Ka": 1.0}))
    code = cli.main(["run", str(BRUKER), "--n-clusters", "2", "--out", str(tmp_path / "bad"),
                     "--kfactors", str(tmp_path / "k.json")])
    assert code == 2
    err = capsys.readouterr().err
    assert "O_Ka" in err and BRUKER.name in err
    assert not (tmp_path / "bad").exists()


def _uncalibrated_map(path):
    """A small phantom whose energy axis has lost its calibration (channels, no units)."""
    from stemseg import simulate

    ph = simulate.phantom("sulfide-6cation", shape=(32, 32), random_state=0)
    axis = ph.eds.axes_manager.signal_axes[0]
    axis.scale, axis.offset, axis.units = 1.0, 0.0, "<undefined>"
    ph.eds.save(path)


def test_batch_keeps_finished_maps_and_lists_failures(tmp_path, capsys):
    """A folder of user-like files -- TEM, SEM, a sparse Velox map, an uncalibrated map, an
    empty and a truncated file -- in one batch: every readable map gets its complete folder,
    each failure a row with the file and the reason, errors on their own lines, exit 1."""
    folder = tmp_path / "maps"
    folder.mkdir()
    for name in ("bruker_tem_CuOPdTi_64x64", "bruker_sem_mineral_30x30",
                 "velox_si_16x16_CCaOCu"):
        shutil.copy(data.example(name), folder)
    (folder / "empty.bcf").write_bytes(b"")
    (folder / "truncated.bcf").write_bytes(BRUKER.read_bytes()[:20_000])
    _uncalibrated_map(folder / "uncalibrated.hspy")
    before = {p.name: _digest(p) for p in folder.iterdir()}
    out = tmp_path / "out"
    code = cli.main(["run", str(folder), "--n-clusters", "2", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1, "a batch with failed maps must exit with status 1"
    assert {p.name: _digest(p) for p in folder.iterdir()} == before  # inputs untouched
    summary = pd.read_csv(out / "batch_summary.csv").set_index("file")
    assert set(summary.index) == set(before)
    failed = summary[summary.status == "failed"]
    assert set(failed.index) == {"empty.bcf", "truncated.bcf", "uncalibrated.hspy"}
    assert failed.error.str.contains("StemsegFileFormatError|StemsegReaderCrash").loc[
        ["empty.bcf", "truncated.bcf"]].all()
    assert "--energy-range all" in failed.loc["uncalibrated.hspy", "error"]
    for name in failed.index:  # no half-written folder, and the error on its own line
        assert not (out / Path(name).stem).exists()
        assert any(line.startswith(f"{name}: FAILED: ") for line in captured.err.splitlines())
    assert "failed: " in captured.out and "batch_summary.csv" in captured.out
    ok = summary[summary.status == "ok"]
    for name in ok.index:
        files = {p.name for p in (out / Path(name).stem).iterdir()}
        assert {"labels.npy", "labels_full.npy", "labels.png", "mean_spectra.hspy",
                "result.json"} <= files, f"{name}: incomplete output {files}"
    assert (out / "bruker_tem_CuOPdTi_64x64" / "quantification.csv").exists()
    assert "SEM" in ok.loc["bruker_sem_mineral_30x30.bcf", "notes"]
    # SEM: no Cliff-Lorimer, but each cluster's net line intensities
    sem = pd.read_csv(out / "bruker_sem_mineral_30x30" / "line_intensities.csv")
    assert set(sem.cluster) == {0, 1} and sem.line.nunique() >= 2
    assert (sem.sigma > 0).all() and np.isfinite(sem.intensity_per_pixel).all()
    # the sparse maps say so in the summary, in result.json and on their own line
    assert "few counts: only 2.56 counts per binned pixel" in ok.loc[
        "velox_si_16x16_CCaOCu.emd", "notes"]
    result = json.loads((out / "velox_si_16x16_CCaOCu" / "result.json").read_text())
    assert any("counts per binned pixel" in w for w in result["warnings"])
    assert any(line.startswith("bruker_tem_CuOPdTi_64x64.bcf: warning: clustering: only")
               for line in captured.err.splitlines())
    # the uncalibrated map runs with every channel as a feature, as the error suggested
    code = cli.main(["run", str(folder / "uncalibrated.hspy"), "--energy-range", "all",
                     "--n-clusters", "2", "--out", str(tmp_path / "uncal")])
    assert code == 0 and (tmp_path / "uncal" / "labels.npy").exists()


@pytest.mark.parametrize("argv,needle", [
    (["--energy-range", "1"], "two energies"),
    (["--energy-range", "5", "1"], "must be below"),
    (["--energy-range", "a", "b"], "two energies"),
    (["--downsample", "0"], "--downsample"),
    (["--cutoff-kv", "-3"], "--cutoff-kv"),
])
def test_bad_reader_and_range_options_refused_before_loading(tmp_path, capsys, argv, needle):
    code = cli.main(["run", str(BRUKER), "--out", str(tmp_path / "o"), *argv])
    assert code == 2 and needle in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_reader_options_go_to_the_readers_that_take_them(tmp_path):
    from types import SimpleNamespace

    args = SimpleNamespace(downsample=2, cutoff_kv=10.0, rebin_energy=None)
    options, ignored = cli._reader_options(Path("a.bcf"), args)
    assert options == {"downsample": 2, "cutoff_at_kV": 10.0} and not ignored
    options, ignored = cli._reader_options(Path("a.emd"), args)
    assert options == {} and len(ignored) == 2 and "--downsample ignored" in ignored[0]


def test_version(capsys):
    import stemseg

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"stemseg {stemseg.__version__}"


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


def test_a_zspy_map_is_a_map_not_a_folder(tmp_path):
    """A .zspy map is a Zarr store, i.e. a directory: `stemseg run map.zspy` runs it, and a
    folder holding one lists it as one map."""
    from stemseg import simulate

    folder = tmp_path / "maps"
    folder.mkdir()
    path = folder / "phantom.zspy"
    simulate.save(simulate.phantom("sulfide-6cation", shape=(32, 32)), path)
    assert cli._map_files(path) == [path] and cli._map_files(folder) == [path]
    assert cli.main(["run", str(path), "--n-clusters", "3", "--out", str(tmp_path / "o")]) == 0
    summary = json.loads((tmp_path / "o" / "result.json").read_text())
    assert summary["n_clusters"] == 3
    # the store's digest covers its files: the same for the same bytes, new for new ones
    assert summary["source_sha256"] == cli._sha256(path) and len(summary["source_sha256"]) == 64
    (path / "extra").write_bytes(b"x")
    assert cli._sha256(path) != summary["source_sha256"]
