"""benchmarks/gpu_check.py --device cpu --tiny: the device check's own code path, run in CI so it cannot rot."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, make_celeba

CPU_ONLY_SKIPS = {"fp16", "torchrun"}  # fp16 autocast and NCCL exist on CUDA only


@pytest.mark.slow  # two CLI trainings (the kill and the resume): about 25 s on two idle cores
def test_tiny_cpu_device_check_passes_every_stage_it_can_run(tmp_path):
    data = make_celeba(tmp_path / "celeba", n=40)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny",
                           "--data", str(data), "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, env=env, timeout=300)
    report = json.loads(done.stdout)  # one JSON object, nothing else on stdout
    stages = report["stages"]
    failed = {k: v["error"] for k, v in stages.items() if v.get("ok") is False}
    assert done.returncode == 0 and report["ok"] and not failed, failed
    assert {k for k, v in stages.items() if "skipped" in v} == CPU_ONLY_SKIPS
    assert all(stages[k]["skipped"] for k in CPU_ONLY_SKIPS)  # each with its reason
    resumed = stages["train_resume"]
    assert 0 < resumed["killed_at_step"] < resumed["steps"]
    assert stages["syncs"]["syncs"] == 0 and stages["sample_parity"]["max_abs_diff"] == 0.0
    from facevae.sampling import SAMPLERS

    assert set(stages["explorer"]["sampler_devices"]) == set(SAMPLERS)  # every sampler on the model's device
    assert set(stages["throughput"]["images_per_s"]) == {"batch_8", "batch_16"}
    assert stages["fid"]["fid"] > 0


def test_gpu_check_refuses_a_work_folder_it_did_not_write(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--tiny",
                           "--work", str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
