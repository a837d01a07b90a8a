"""DDP on CPU: two gloo ranks under torchrun against single-process runs with the same global batch.

The model uses model.kind=ae (no posterior noise, which differs per rank by design)
and model.norm=none: BatchNorm would normalise each rank's half batch with its own
statistics, so without it the two-rank step is mathematically the single-process step.
(GroupNorm would do too, but the conv bias in front of a one-channel group has a zero
gradient up to rounding, which Adam blows up into run-to-run noise.) Flips stay on:
they are drawn per image, whatever the world size.

Run as a script (what torchrun starts) this file is the worker: it trains through
facevae.training.distributed, poisons one loss on rank 1 only, and each rank writes
a digest of its weights.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
POISON_STEP = 2  # the step whose loss turns NaN (on rank 1 only under DDP)
# fp32: bf16 autocast (the CPU default where it is native) rounds a half batch's sums
# differently from the whole batch's, far beyond the tolerance this equivalence uses
SETS = ["model.kind=ae", "model.norm=none", "train.batch_size=6", "data.flip=true",
        "train.lr=0.003", "train.ckpt_every=1000", "train.precision=fp32"]


def digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def poison_once(trainer_mod, only_rank: int | None) -> None:
    """The loss of step POISON_STEP becomes NaN, once, in this process (on `only_rank` under DDP)."""
    real = trainer_mod.vae_loss
    fired = []

    def poisoned(x, out, *, cfg, step=0):
        terms = real(x, out, cfg=cfg, step=step)
        rank = int(os.environ.get("RANK", 0))
        if step == POISON_STEP and not fired and (only_rank is None or rank == only_rank):
            fired.append(step)
            terms.total = terms.total * float("nan")
        return terms

    trainer_mod.vae_loss = poisoned


def _worker(data: str, out: str, sets: list[str]) -> None:
    from facevae.config import RunConfig
    from facevae.io import atomic_write_text
    from facevae.training import launch
    from facevae.training import run as run_mod
    from facevae.training import trainer as trainer_mod

    from tests.conftest import tiny_config

    rank = int(os.environ["RANK"])
    poison_once(trainer_mod, only_rank=1)

    class Probe(run_mod.Trainer):
        def fit(self, resume=False):
            result = super().fit(resume)
            atomic_write_text(Path(out) / f"rank{rank}.json",
                              json.dumps({"digest": digest(self.model.state_dict()), "skipped": self.skipped,
                                          "local_batch": self.loader.local_batch}))
            return result

    run_mod.Trainer = Probe
    cfg: RunConfig = tiny_config(*sets)
    launch.train_maybe_distributed(data, out, cfg, resume=False, device="cpu", progress=False)


# ---- the test (pytest side) ------------------------------------------------------------------

def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from facevae.modelfiles import checkpoint as ckpt

    return ckpt.load_checkpoint(run_dir)[1]


def _assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=2e-5, msg=k)


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_and_resume_with_one(tmp_path, monkeypatch):
    from facevae.training import trainer as trainer_mod
    from facevae.training.run import train

    from tests.conftest import make_celeba, tiny_config

    # 40 images, every 8th for validation: 35 train images, global batch 6 -> 5 steps an epoch
    data = make_celeba(tmp_path / "celeba", n=40, valid_every=8)
    real_loss = trainer_mod.vae_loss
    runs = {}
    for name, steps in (("single4", 4), ("single8", 8)):
        monkeypatch.setattr(trainer_mod, "vae_loss", real_loss)
        poison_once(trainer_mod, only_rank=None)
        runs[name] = train(data, tmp_path / name, tiny_config(*SETS, f"train.max_steps={steps}"),
                           device="cpu", progress=False)
    monkeypatch.setattr(trainer_mod, "vae_loss", real_loss)
    assert runs["single4"].skipped_steps == 1

    ddp = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
         str(data), str(ddp), *SETS, "train.max_steps=4"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # (a) both ranks hold the same weights, agreed to skip rank 1's NaN step and trained on half batches
    ranks = [json.loads((ddp / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["digest"] == ranks[1]["digest"]
    assert [r["skipped"] for r in ranks] == [1, 1] and [r["local_batch"] for r in ranks] == [3, 3]
    # (b) and the same weights as one process stepping on the same global batches
    _assert_close(_weights(ddp), _weights(tmp_path / "single4"))
    # rank 0 alone wrote the log: one row per logged step (step 3 was skipped, so not logged)
    rows = [json.loads(line) for line in (ddp / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "step"] == [1, 2, 4]

    # (c) the two-rank checkpoint resumes in one process at the same global position
    resumed = tmp_path / "resumed"
    shutil.copytree(ddp, resumed)
    train(data, resumed, tiny_config(*SETS, "train.max_steps=8"), resume=True, device="cpu", progress=False)
    _assert_close(_weights(resumed), _weights(tmp_path / "single8"))
    # which means something: 4 more steps moved the weights
    assert any(not torch.allclose(a, b) for a, b in zip(_weights(ddp).values(), _weights(resumed).values()))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    _worker(sys.argv[1], sys.argv[2], sys.argv[3:])
