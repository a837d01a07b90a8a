"""Library calls leave process-wide state alone: importing and plotting picks no matplotlib backend."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def test_plots_neither_pick_a_backend_nor_load_pyplot(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps({"kind": "step", "step": 1, "total": 3.0, "recon": 2.0, "kl": 1.0}) + "\n")
    code = ("import sys, matplotlib; from pathlib import Path; import facevae.viz.latent_plots; "
            "from facevae.viz.plots import plot_losses; "
            f"plot_losses(Path({str(metrics)!r}), Path({str(tmp_path / 'loss.png')!r})); "
            "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    env = {**os.environ, "MPLBACKEND": "svg"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["svg", "False"]
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"

