"""One device check of facevae's CUDA paths, in about 6 minutes on one GPU; prints one JSON object.

Stages, in order, each reported with its figures, or its error, or why it was skipped:
  train_resume    `facevae train --config celeba64` (bf16, torch.compile) killed (SIGKILL) after a
                  checkpoint, then `--resume`d: the logged steps continue without gap or repeat and
                  the loss continues where it was, not where a fresh model starts
  deterministic   two short train.deterministic runs give bit-identical weights
  fp16            50 steps in fp16 with GradScaler and the device-side skip
  explorer        the web page's Explorer fitting its samplers on the model's device, one handler call
  sample_parity   `facevae sample --seed` images on this device against the CPU's
  torchrun        a 1-process `torchrun` job: DDP over NCCL
  throughput      trainer / ceiling / naive images/s at batch 64 and 1024 (benchmarks/throughput.py)
  syncs           torch.profiler count of device-to-host syncs in the steps between two log points
  fid             FID-2k of the trained model's prior samples against 2,000 training images

On the GPU machine (docs/gpu_runbook.md, section 4, says what to carry in which command):

    python3 benchmarks/gpu_check.py --data /tmp/fv/celeba64 --inception /tmp/fv/inception.pt

`--device cpu --tiny` runs the same stages with a tiny model, tiny counts and a stand-in
feature network in under a minute on two cores (the test suite does, so the check cannot
rot); what only a GPU can run (NCCL, compile, fp16 autocast) is skipped there with its reason.
Exit status 0 when every stage that ran passed.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from facevae.config import RunConfig
from facevae.data import BatchLoader, load_images, open_dataset, place_images
from facevae.metrics.fid import FEATURE_DIM
from facevae.models import build_model
from facevae.modelfiles import checkpoint as ckpt
from facevae.training.trainer import Trainer

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))
import throughput  # noqa: E402  (benchmarks/ is the script's folder)

CONFIG = "celeba64"
TINY_SETS = ["model.image_size=32", "model.widths=[8,16,32]", "model.latent_dim=8", "train.batch_size=8",
             "train.val_batches=1", "train.grid_images=4", "data.workers=1"]
SYNC_EVENTS = ("aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize",
               "cudaEventSynchronize", "Memcpy DtoH")


@dataclass(frozen=True)
class Sizes:
    """Step and image counts of one mode of the check."""

    total_steps: int  # of the killed-and-resumed run
    ckpt_every: int
    log_every: int
    short_steps: int  # fp16, deterministic and torchrun runs
    batches: tuple[int, int]  # throughput
    warmup: int
    timed_steps: tuple[int, int]  # throughput: trainer and ceiling, naive
    fid_images: int
    quick_fit_steps: int | None  # None: the explorer fits two_stage and diffusion itself (minutes)


FULL = Sizes(400, 100, 25, 50, (64, 1024), 10, (50, 10), 2000, None)
# two_stage's 4000-step fit alone takes 75 s on two cores: tiny mode stores a 20-step fit first
TINY = Sizes(12, 2, 2, 3, (8, 16), 1, (2, 1), 16, 20)


class Skip(Exception):
    """A stage this device cannot run; the message says why."""


class Failed(Exception):
    pass


def expect(ok: bool, message: str) -> None:
    if not ok:
        raise Failed(message)


@dataclass
class Check:
    args: argparse.Namespace
    device: torch.device
    sizes: Sizes
    cfg: RunConfig  # celeba64 with the pack's and the mode's settings
    sets: list[str]  # the same as --set assignments, for the CLI runs
    work: Path
    run_dir: Path = field(init=False)

    def __post_init__(self):
        self.run_dir = self.work / "run"

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def data(self) -> str:
        return str(self.args.data)

    def cli(self, *args: str, runner: tuple[str, ...] = ("-m", "facevae")) -> list[str]:
        return [sys.executable, *runner, *args]

    def train_args(self, out: Path, *sets: str, steps: int) -> list[str]:
        return ["train", "--data", self.data, "--out", str(out), "--config", CONFIG,
                *(a for s in (*self.sets, *sets) for a in ("--set", s)), "--max-steps", str(steps),
                "--device", self.device.type, "--no-progress"]

    def short(self, *sets: str) -> RunConfig:
        """The config of a short in-process run (no compile: its time would be the run's)."""
        s = self.sizes
        return self.cfg.override([f"train.max_steps={s.short_steps}", "train.compile=false",
                                  f"train.log_every={s.log_every}", "train.ckpt_every=100000", *sets])


# ---------------------------------------------------------------------------------- stages

def saved_step(run_dir: Path) -> int | None:
    """The step of the run's checkpoint from its metadata alone (cheap enough to poll)."""
    from safetensors import safe_open

    try:
        with safe_open(str(run_dir / ckpt.CHECKPOINT), framework="pt") as f:
            state = json.loads(f.metadata()["state"])
    except Exception:  # not written yet, or between the atomic write's steps
        return None
    return dict(state["__dict__"])["step"]


def step_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r["kind"] == "step"]


def kill_after_checkpoint(cmd: list[str], run_dir: Path, at: int, timeout: float) -> tuple[int, float]:
    """Start a training run, SIGKILL it as soon as a checkpoint of step >= `at` exists; (that step, seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while (step := saved_step(run_dir)) is None or step < at:
            if proc.poll() is not None:
                raise Failed(f"training exited ({proc.returncode}) before the kill: {proc.stdout.read()[-600:]}")
            expect(time.perf_counter() - t0 < timeout, f"no checkpoint of step {at} within {timeout:.0f} s")
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return saved_step(run_dir), time.perf_counter() - t0


def run_cli(cmd: list[str], timeout: float) -> str:
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    expect(done.returncode == 0, f"{' '.join(cmd[1:4])} ... exited {done.returncode}: {done.stdout[-800:]}")
    return done.stdout


def train_resume(c: Check) -> dict:
    s = c.sizes
    sets = [f"train.compile={str(c.cuda).lower()}", f"train.ckpt_every={s.ckpt_every}",
            f"train.log_every={s.log_every}"]
    cmd = c.cli(*c.train_args(c.run_dir, *sets, steps=s.total_steps))
    killed_at, first_s = kill_after_checkpoint(cmd, c.run_dir, s.ckpt_every, timeout=300)
    expect(killed_at < s.total_steps, f"the kill came too late: checkpoint at step {killed_at}")
    t0 = time.perf_counter()
    run_cli(cmd + ["--resume"], timeout=300)
    resume_s = time.perf_counter() - t0
    rows = step_rows(c.run_dir)
    steps = [r["step"] for r in rows]
    wanted = sorted(set(range(s.log_every, s.total_steps + 1, s.log_every)) | {s.total_steps})
    expect(steps == wanted, f"logged steps {steps} are not {wanted}: a gap or a repeat at the resume")
    expect(saved_step(c.run_dir) == s.total_steps, f"final checkpoint at step {saved_step(c.run_dir)}")
    loss = {r["step"]: r["total"] for r in rows}
    fresh, before = loss[steps[0]], loss[max(k for k in steps if k <= killed_at)]
    after = loss[min(k for k in steps if k > killed_at)]
    expect(abs(after / before - 1) < 0.2, f"loss {before:.1f} before the kill, {after:.1f} after the resume")
    if fresh - before > 0.05 * fresh:  # training had visibly moved: the resume must not start afresh
        expect(after < fresh - 0.5 * (fresh - before), f"resumed loss {after:.1f} is nearer the fresh {fresh:.1f}")
    return {"killed_at_step": killed_at, "steps": s.total_steps, "compiled": c.cuda,
            "loss_fresh": fresh, "loss_before_kill": before, "loss_after_resume": after,
            "seconds_to_kill": round(first_s, 1), "seconds_resume": round(resume_s, 1),
            "images_per_s_last": rows[-1].get("images_per_s")}


def deterministic(c: Check) -> dict:
    from facevae.training.run import train

    cfg = c.short("train.deterministic=true")
    states = []
    for name in ("a", "b"):
        train(c.data, c.work / f"det_{name}", cfg, device=c.device.type, progress=False)
        states.append(ckpt.load_checkpoint(c.work / f"det_{name}")[1])
    differing = [k for k in states[0] if not torch.equal(states[0][k], states[1][k])]
    expect(not differing, f"two deterministic runs differ in {len(differing)} tensors, e.g. {differing[:3]}")
    return {"steps": cfg.train.max_steps, "identical_tensors": len(states[0])}


def fp16(c: Check) -> dict:
    from facevae.training.run import train

    if not c.cuda:
        raise Skip("fp16 autocast with GradScaler runs on CUDA only (the CPU falls back to fp32)")
    result = train(c.data, c.work / "fp16", c.short("train.precision=fp16"), device=c.device.type, progress=False)
    expect(result.step == c.sizes.short_steps, f"stopped at step {result.step}")
    expect(all(np.isfinite(v) for v in result.last.values()), f"non-finite losses {result.last}")
    expect(result.skipped_steps < result.step // 2, f"{result.skipped_steps} of {result.step} steps skipped")
    return {"steps": result.step, "skipped": result.skipped_steps, "last": result.last,
            "images_per_s": round(result.images_per_s, 1)}


def explorer(c: Check) -> dict:
    from facevae.web.explorer import Explorer
    from facevae.web.handlers import Handlers

    from facevae.sampling import SAMPLERS

    note = "every sampler fitted here"
    if c.sizes.quick_fit_steps:
        note = store_quick_fits(c, c.sizes.quick_fit_steps)
    t0 = time.perf_counter()
    ex = Explorer.load(c.run_dir, data=c.data, device=c.device.type, log=lambda msg: None)
    load_s = time.perf_counter() - t0
    expect(set(ex.samplers) == set(SAMPLERS), f"samplers {sorted(ex.samplers)}: {ex.sampler_note}")
    on = {name: str(s.device) for name, s in ex.samplers.items() if hasattr(s, "device")}
    expect(all(torch.device(d).type == c.device.type for d in on.values()), f"sampler devices {on}")
    t0 = time.perf_counter()
    seed, faces, _ = Handlers(ex).new_faces("gmm", 1.0, 0, None)
    handler_ms = (time.perf_counter() - t0) * 1000
    expect(len(faces) > 0 and seed == 1, f"new_faces gave {len(faces)} faces, seed {seed}")
    return {"load_seconds": round(load_s, 1), "new_faces_ms": round(handler_ms, 1), "faces": len(faces),
            "sampler_devices": on, "note": note}


def store_quick_fits(c: Check, steps: int) -> str:
    """Tiny mode: short two_stage and diffusion fits stored where the explorer looks, so it loads them."""
    from facevae.sampling.registry import build_sampler
    from facevae.data.encode import encode_images, load_split
    from facevae.modelfiles.sampler_files import save_sampler
    from facevae.modelfiles.samplers import sampler_file, store_dirs

    loaded = ckpt.load_model(c.run_dir, c.device)
    cfg = loaded.config
    _, _, images = load_split(c.data, "train", cfg, progress=False)
    means, _ = encode_images(loaded.model, images, c.device)
    quick = {"two_stage": {"steps": steps}, "diffusion": {"steps": steps, "hidden": 16, "sample_steps": 5}}
    for name, options in quick.items():
        sampler = build_sampler(name, cfg.model.latent_dim, **options).fit(means)
        save_sampler(sampler, store_dirs(loaded)[-1] / sampler_file(name, 10, loaded))
    return (f"two_stage and diffusion stored from {steps}-step fits (their default fits take minutes "
            "on two CPU cores)")


def sample_parity(c: Check) -> dict:
    from facevae.tasks.generate import generate

    here = generate(c.run_dir, n=16, seed=7, device=c.device.type)
    cpu = generate(c.run_dir, n=16, seed=7, device="cpu")
    diff = (here - cpu).abs()
    # another seed's faces differ by ~0.3 on average; kernels' rounding (TF32 convolutions) by far less
    expect(float(diff.mean()) < 0.01 and float(diff.max()) < 0.1, f"mean |diff| {float(diff.mean()):.4f}")
    return {"images": 16, "max_abs_diff": round(float(diff.max()), 5), "mean_abs_diff": round(float(diff.mean()), 6)}


def torchrun(c: Check) -> dict:
    if not c.cuda:
        raise Skip("NCCL needs CUDA GPUs (tests/training/test_one_process_ddp.py runs the 1-process job on gloo)")
    out = c.work / "torchrun"
    cmd = c.cli(*c.train_args(out, "train.compile=false", steps=c.sizes.short_steps),
                runner=("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "facevae"))
    t0 = time.perf_counter()
    log = run_cli(cmd, timeout=150)
    expect(saved_step(out) == c.sizes.short_steps, f"checkpoint at step {saved_step(out)}")
    return {"processes": 1, "backend": "nccl", "steps": c.sizes.short_steps,
            "seconds": round(time.perf_counter() - t0, 1), "last_line": log.strip().splitlines()[-1][-200:]}


def throughput_stage(c: Check) -> dict:
    s = c.sizes
    ds = open_dataset(c.data)
    idx = ds.split_indices("train")
    images = load_images(ds, c.cfg, progress=False)
    workers = min(16, os.cpu_count() or 1) if c.cuda else 0
    out = {}
    for batch in s.batches:
        cfg = c.cfg.override([f"train.batch_size={batch}"])
        torch.manual_seed(0)
        initial = build_model(cfg.model).to(c.device)
        trainer = throughput.facevae_trainer(cfg, copy.deepcopy(initial), images, idx, c.device,
                                             c.work / f"tp{batch}", c.cuda)
        modes = {"trainer": (throughput.facevae_steps(trainer), s.timed_steps[0]),
                 "ceiling": (throughput.ceiling_steps(cfg, copy.deepcopy(initial), c.device, c.cuda), s.timed_steps[0]),
                 "naive": (throughput.naive_steps(cfg, copy.deepcopy(initial), ds.paths(idx), c.device, workers),
                           s.timed_steps[1])}
        row = {}
        for name, (steps, n) in modes.items():
            row[name] = throughput.timed(steps, c.device, s.warmup, n, batch)["images_per_s"]
            steps.close()  # the naive loop's DataLoader workers end here
        row["trainer_vs_naive"] = round(row["trainer"] / row["naive"], 2)
        out[f"batch_{batch}"] = row
    return {"images_per_s": out, "compiled": c.cuda, "naive_workers": workers}


def syncs(c: Check) -> dict:
    """Device-to-host syncs in the steps between two log points (sync-free mode, the CUDA default; forced on CPU)."""
    from torch.profiler import ProfilerActivity, profile

    s = c.sizes
    cfg = c.cfg.override(["train.ema_decay=0.999"])
    ds = open_dataset(c.data)
    images = load_images(ds, cfg, progress=False)
    placed, rows = place_images(images, c.device, indices=ds.split_indices("train"))
    torch.manual_seed(0)
    model = build_model(cfg.model).to(c.device).to(memory_format=torch.channels_last)
    loader = BatchLoader(placed, cfg.train.batch_size, c.device, flip=cfg.data.flip, rows=rows)
    trainer = Trainer(cfg, model, loader, torch.from_numpy(np.array(images[:8])), c.work / "syncs", c.device,
                      train_model=torch.compile(model) if c.cuda else None, progress=False, sync_free=True)
    steps = throughput.facevae_steps(trainer)
    for _ in range(s.warmup + s.log_every):
        next(steps)
    throughput.sync(c.device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if c.cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(s.log_every - 1):  # the steps strictly between two log points
            next(steps)
        throughput.sync(c.device)
    counts, host_reads = {name: 0 for name in SYNC_EVENTS}, 0
    for event in prof.events():
        name = next((n for n in SYNC_EVENTS if event.name.startswith(n)), None)
        if name is None:
            continue
        if not c.cuda and inside(event, "aten::_fused_adam"):
            host_reads += 1  # the CPU kernel reads its found_inf flag from host memory: no device to wait for
        else:
            counts[name] += 1
    # the closing synchronize above is ours, not the trainer's
    counts["cudaDeviceSynchronize"] = max(0, counts["cudaDeviceSynchronize"] - int(c.cuda))
    total = sum(counts.values())
    expect(total == 0, f"{total} host syncs in {s.log_every - 1} steps: {counts}")
    out = {"steps": s.log_every - 1, "syncs": total, "by_event": counts}
    if host_reads:
        out["not_counted"] = f"{host_reads} reads of found_inf by the CPU fused Adam kernel (host memory)"
    return out


def inside(event, prefix: str) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(prefix):
            return True
        parent = parent.cpu_parent
    return False


def fid_stage(c: Check) -> dict:
    from facevae.metrics import fid
    from facevae.tasks import evaluate as ev
    from facevae.modelfiles.samplers import get_sampler

    n = c.sizes.fid_images
    inception = c.args.inception or stand_in_inception(c.work / "stand_in_inception.pt")
    t0 = time.perf_counter()
    extractor = fid.InceptionFeatures(inception, c.device)
    loaded = ckpt.load_model(c.run_dir, c.device)
    model, cfg = loaded.model, loaded.config
    prior = get_sampler(loaded, name="prior", device=c.device)
    samples = ev.decoded_batches(model, ev.sample_latents(prior, n, seed=0, batch_size=250), c.device)
    feats, _ = ev.features_stream(samples, extractor, n, "samples", progress=False)
    ds = open_dataset(c.data)
    images = load_images(ds, cfg, progress=False)
    reference = fid.features_of(ev.read_subset(images, ev.subset(ds.split_indices("train"), n)), extractor,
                                progress=False)
    value = ev.fid_to_reference(feats, *fid.stats_of(reference))
    expect(np.isfinite(value) and value > 0, f"FID {value}")
    return {"fid": round(value, 2), "samples": n, "reference": f"{n} train images (seeded subset)",
            "model": "EMA weights after the resumed run", "sampler": "prior",
            "inception": Path(inception).name, "seconds": round(time.perf_counter() - t0, 1)}


def stand_in_inception(path: Path) -> str:
    """Tiny mode: a small TorchScript net with Inception's interface (N x 3 x 299 x 299 -> N x 2048)."""

    class StandIn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 32, 13, stride=13)
            self.head = torch.nn.Linear(32, FEATURE_DIM)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.conv(x)).mean((2, 3)))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.jit.save(torch.jit.script(StandIn().eval()), str(path))
    return str(path)


STAGES: list[tuple[str, Callable[[Check], dict]]] = [
    ("train_resume", train_resume),
    ("deterministic", deterministic),  # before other in-process CUDA work: cuBLAS reads its setting once
    ("fp16", fp16),
    ("explorer", explorer),
    ("sample_parity", sample_parity),
    ("torchrun", torchrun),
    ("throughput", throughput_stage),
    ("syncs", syncs),
    ("fid", fid_stage),
]
NEEDS_RUN = {"explorer", "sample_parity", "fid"}  # stages that read the trained run


def run_stage(fn: Callable[[Check], dict], c: Check) -> dict:
    t0 = time.perf_counter()
    try:
        out = {"ok": True, **fn(c)}
    except Skip as e:
        out = {"skipped": str(e)}
    except Exception as e:  # reported, and the remaining stages still run
        detail = str(e) if isinstance(e, Failed) else "".join(traceback.format_exception_only(e)).strip()
        out = {"ok": False, "error": detail[-1500:]}
    out["stage_seconds"] = round(time.perf_counter() - t0, 1)
    return out


# ---------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("/tmp/fv/celeba64"), help="the unpacked data pack")
    p.add_argument("--inception", type=Path, default=None,
                   help="FID Inception (TorchScript); needed on a GPU, tiny mode uses a stand-in")
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny model and counts: the CI run of the same stages")
    p.add_argument("--work", type=Path, default=Path("/tmp/fv/check"), help="scratch folder (emptied first)")
    p.add_argument("--set", dest="sets", action="append", default=None,
                   help="config override; default data.crop=178, the pack's pre-cropped 64 px images")
    p.add_argument("--only", default="", help="comma-separated stages to run (default: all)")
    p.add_argument("--json", type=Path, default=None, help="also write the JSON object here (after every stage)")
    p.add_argument("--budget", type=float, default=480,
                   help="seconds; stages not started by then are reported as skipped (the command limit is 600)")
    return p.parse_args(argv)


def fresh_work_dir(work: Path) -> bool:
    """Empty `work` when an earlier check wrote it (its marker is there); never delete anything else."""
    marker = work / ".gpu_check"
    if marker.is_file():
        shutil.rmtree(work)
    elif work.exists() and any(work.iterdir()):
        return False
    work.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return True


def device_facts(device: torch.device) -> dict:
    facts = {"device": throughput.device_name(device), "device_type": device.type, "torch": torch.__version__}
    if device.type == "cuda":
        facts.update(capability=".".join(map(str, torch.cuda.get_device_capability(device))),
                     cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return facts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA GPU is visible: run with --device cpu --tiny", file=sys.stderr)
        return 2
    if device.type == "cuda" and args.inception is None and not args.tiny:
        print("error: pass --inception PATH (the fp32 Inception restored in /tmp, see docs/gpu_runbook.md)",
              file=sys.stderr)
        return 2
    sets = ["data.crop=178"] if args.sets is None else args.sets
    sizes = TINY if args.tiny else FULL
    sets = [*(TINY_SETS if args.tiny else []), *sets]
    if not fresh_work_dir(args.work):
        print(f"error: --work {args.work} holds files this check did not write: choose another folder",
              file=sys.stderr)
        return 2
    check = Check(args, device, sizes, RunConfig.load(CONFIG).override(sets), sets, args.work)
    only = [s for s in args.only.split(",") if s]
    t0 = time.perf_counter()
    report = {"check": "gpu_check", "tiny": args.tiny, **device_facts(device), "config": CONFIG, "sets": sets,
              "ok": True, "seconds": 0.0, "stages": {}}
    for name, fn in STAGES:
        if only and name not in only:
            continue
        if time.perf_counter() - t0 > args.budget:
            result = {"skipped": f"out of time: {args.budget:.0f} s budget spent"}
        elif name in NEEDS_RUN and not check.run_dir.joinpath(ckpt.WEIGHTS).is_file():
            result = {"ok": False, "error": "no trained run: train_resume did not leave one"}
        else:
            result = run_stage(fn, check)
        report["stages"][name] = result
        report.update(ok=report["ok"] and result.get("ok", True), seconds=round(time.perf_counter() - t0, 1))
        if args.json:  # a command killed at its limit still returns the stages done so far
            args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")
    print(json.dumps(report, indent=1, default=float))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
