"""viz/gif.py reads a folder of grids it is given; only the progress command knows a run keeps them in recon/."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import facevae.cli  # noqa: F401  (registers the commands on the app)
from facevae.cli.app import app
from facevae.errors import FacevaeError
from facevae.runfolder import RunFolder
from facevae.viz.gif import epoch_grids
from facevae.viz.grid import save_image


def _grid(path, value: int = 0) -> None:
    save_image(np.full((20, 30, 3), value, np.uint8), path)


def test_epoch_grids_reads_the_folder_it_is_given(tmp_path):
    frames = tmp_path / "anything"
    for epoch in (3, 1):
        _grid(frames / f"epoch_{epoch:04d}.png")
    assert [e for e, _ in epoch_grids(frames)] == [1, 3]
    with pytest.raises(FacevaeError, match="no per-epoch reconstruction grids"):
        epoch_grids(tmp_path)  # the grids are not looked for in a recon/ below it


def test_progress_reads_the_runs_recon_folder(tmp_path):
    run = RunFolder(tmp_path / "run")
    for epoch in range(3):
        _grid(run.recon_grid(epoch), 40 * epoch)
    result = CliRunner().invoke(app, ["progress", "--run", str(run.path), "--out", str(tmp_path / "p.gif")])
    assert result.exit_code == 0, result.output
    assert "wrote 3 epochs (0 to 2," in result.output and (tmp_path / "p.gif").is_file()


def test_progress_names_a_missing_run_folder(tmp_path):
    result = CliRunner().invoke(app, ["progress", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "p.gif")])
    assert isinstance(result.exception, FacevaeError) and "run folder" in str(result.exception)
    assert "does not exist" in str(result.exception)
