"""The run-folder names are written once, in facevae.runfolder, and every module takes them from there."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from facevae import runfolder
from facevae.modelfiles import checkpoint
from facevae.runfolder import RunFolder

SRC = Path(__file__).resolve().parents[1] / "src" / "facevae"


def test_run_folder_paths():
    run = RunFolder("runs/x")  # a str is taken as a Path
    assert run.path == Path("runs/x")
    assert run.metrics == Path("runs/x/metrics.jsonl")
    assert run.weights == Path("runs/x/model.safetensors")
    assert run.checkpoint == Path("runs/x/checkpoint.safetensors")
    assert run.config == Path("runs/x/config.yaml")
    assert run.recon_grid(7) == Path("runs/x/recon/epoch_0007.png")
    assert run.eval_metrics == Path("runs/x/eval/metrics.json")
    assert run.lock == Path("runs/x/.lock")
    with pytest.raises(AttributeError):
        run.path = Path("elsewhere")  # frozen


def test_checkpoint_re_exports_the_same_names():
    assert (checkpoint.CHECKPOINT, checkpoint.WEIGHTS, checkpoint.CONFIG) == (
        runfolder.CHECKPOINT, runfolder.WEIGHTS, runfolder.CONFIG)


def test_runfolder_is_bottom_layer():
    """It may import the standard library and facevae.errors only: every layer may import it."""
    tree = ast.parse((SRC / "runfolder.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {m for m in imported if m.startswith("facevae")} <= {"facevae.errors"}
    assert {m.split(".")[0] for m in imported} <= {"__future__", "dataclasses", "pathlib", "facevae"}


# names that mean a run-folder file or folder wherever they appear as a whole string literal
RUN_NAMES = {runfolder.METRICS, runfolder.LOSS_CURVE, runfolder.WEIGHTS, runfolder.CHECKPOINT,
             runfolder.CONFIG, runfolder.LOCK}
ALLOWED = {"runfolder.py"}


def test_no_module_spells_a_run_file_name():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = str(path.relative_to(SRC))
        if rel in ALLOWED:
            continue
        tree = ast.parse(path.read_text())
        # parts of f-strings are other names (the image cache's f"{key}.lock")
        in_fstrings = {id(c) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for c in n.values}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in RUN_NAMES and id(node) not in in_fstrings:
                found.append(f"{rel}:{node.lineno} {node.value!r}")
    assert not found, "use facevae.runfolder: " + ", ".join(found)
