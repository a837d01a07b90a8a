"""Kill a small training run N times at random moments with SIGKILL, resume it each time; prints JSON.

After every kill it checks that the run folder's checkpoint (when there is one yet) loads,
and counts the temp files the kill left; the next `--resume` must then continue (exit 0 when
it reaches the end, or be killed again; any other exit is a failure). At the end the run is
resumed to completion and its final weights and metrics history are compared with those of
one uninterrupted run of the same config: resume is exact, so they must be equal, bit for bit.

Kill moments are uniform over the wall time of the uninterrupted run (start-up included),
so some kills land while Python starts, some during atomic writes, most between steps.

    python benchmarks/kill_resume.py --data ../shared/celeba_mini --kills 100
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from facevae.errors import FacevaeError
from facevae.modelfiles import checkpoint as ckpt

CONFIG = ["model.image_size=32", "model.widths=[8,16]", "model.latent_dim=8", "train.batch_size=8",
          "train.log_every=1", "train.ckpt_every=3", "train.val_batches=1", "train.grid_images=2",
          "data.workers=1", "train.epochs=1000"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/celeba_mini", help="CelebA root (its first images are used)")
    p.add_argument("--kills", type=int, default=100)
    p.add_argument("--steps", type=int, default=40, help="optimizer steps of the run (5 per epoch)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp folder)")
    return p.parse_args()


def small_celeba(src: Path, dst: Path, n_train: int = 40, n_valid: int = 8) -> Path:
    """The first training and validation images of `src`, symlinked, with matching annotation files."""
    (dst / "img_align_celeba").mkdir(parents=True)
    rows = [ln.split() for ln in (src / "list_eval_partition.txt").read_text().splitlines() if ln.strip()]
    keep = [f for f, s in rows if s == "0"][:n_train] + [f for f, s in rows if s == "1"][:n_valid]
    for name in keep:
        os.symlink((src / "img_align_celeba" / name).resolve(), dst / "img_align_celeba" / name)
    wanted = set(keep)
    (dst / "list_eval_partition.txt").write_text("".join(f"{f} {s}\n" for f, s in rows if f in wanted))
    attrs = (src / "list_attr_celeba.txt").read_text().splitlines()
    kept = [ln for ln in attrs[2:] if ln.split(" ", 1)[0] in wanted]
    (dst / "list_attr_celeba.txt").write_text("\n".join([str(len(keep)), attrs[1], *kept]) + "\n")
    return dst


def train_cmd(data: Path, out: Path, steps: int, resume: bool) -> list[str]:
    sets = [a for c in CONFIG for a in ("--set", c)]
    return [sys.executable, "-m", "facevae", "train", "--data", str(data), "--out", str(out), *sets,
            "--max-steps", str(steps), "--no-progress", "--device", "cpu", *(["--resume"] if resume else [])]


def start(cmd: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def temp_files(run: Path) -> list[Path]:
    return [p for folder in (run, run / "recon") if folder.is_dir() for p in folder.glob(".*.tmp")]


def history(run: Path) -> list[tuple]:
    """(kind, step, total, val_total) of every metrics row: the numbers that resume must reproduce."""
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["kind"], r["step"], r.get("total"), r.get("val_total")) for r in rows]


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a / ckpt.WEIGHTS)), load_file(str(b / ckpt.WEIGHTS))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def checkpoint_step(run: Path) -> int | None:
    """The step of the run's checkpoint, None when there is none yet; raises when it does not load."""
    if not (run / ckpt.CHECKPOINT).is_file():
        return None
    return int(ckpt.load_checkpoint(run)[2]["step"])


def main() -> None:
    args = parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="facevae-kill-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FACEVAE_CACHE", str(work / "cache"))
    data = small_celeba(Path(args.data), work / "data")
    rng = random.Random(args.seed)
    t0 = time.perf_counter()

    ref = work / "uninterrupted"
    proc = start(train_cmd(data, ref, args.steps, resume=False))
    _, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"the uninterrupted run failed: {err[-2000:]}")
    run_wall = time.perf_counter() - t0

    run = work / "killed"
    kills = during_training = unloadable = failures = left_behind = finished_early = 0
    steps_seen: list[int] = []
    problems: list[str] = []
    while kills < args.kills:
        proc = start(train_cmd(data, run, args.steps, resume=(run / ckpt.CONFIG).exists()))
        time.sleep(rng.uniform(0, run_wall))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        if proc.returncode == 0:  # it reached the end before the kill: start over for the next kill
            finished_early += 1
            shutil.rmtree(run)
            continue
        if proc.returncode != -signal.SIGKILL:
            failures += 1
            problems.append(err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}")
            break
        kills += 1
        during_training += (run / "metrics.jsonl").is_file()
        left_behind += len(temp_files(run))
        try:
            step = checkpoint_step(run)
        except FacevaeError as e:
            unloadable += 1
            problems.append(str(e))
            continue
        if step is not None:
            steps_seen.append(step)

    final = start(train_cmd(data, run, args.steps, resume=(run / ckpt.CONFIG).exists()))
    _, err = final.communicate()
    result = {
        "kills": kills,
        "kills_after_training_started": during_training,
        "runs_that_finished_before_their_kill": finished_early,
        "checkpoint_unloadable_after_kill": unloadable,
        "resume_failures": failures + (final.returncode != 0),
        "temp_files_left_by_kills": left_behind,
        "temp_files_at_end": len(temp_files(run)),
        "max_checkpoint_step_seen": max(steps_seen, default=None),
        "final_weights_equal_uninterrupted": final.returncode == 0 and same_weights(run, ref),
        "metrics_history_equal_uninterrupted": final.returncode == 0 and history(run) == history(ref),
        "steps": args.steps,
        "uninterrupted_run_s": round(run_wall, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "problems": problems[:5] + ([err.strip().splitlines()[-1]] if final.returncode else []),
    }
    print(json.dumps(result, indent=2))
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
