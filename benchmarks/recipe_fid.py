"""The mini-CelebA FID protocol (docs/results.md): train a recipe, fit its samplers, score it.

    python benchmarks/recipe_fid.py train --recipe seed-bce --data DATA --out runs/recipes/seed-bce
    python benchmarks/recipe_fid.py eval --run runs/recipes/seed-bce --data DATA --results runs/recipes/results.jsonl
    python benchmarks/recipe_fid.py table --results runs/recipes/results.jsonl

train: the recipe (benchmarks/recipes.yaml: a shipped config plus overrides, and any
       --set) trained from scratch; then the fitted samplers (GMM, two-stage VAE...)
       are fitted on all training latents and stored beside the run. The wall time of
       all of it, data loading included, is the protocol's training budget
       (10 minutes on one H100) and goes to timing.json. --minutes M instead fixes the
       training budget: a short probe measures the recipe's rate here and sets
       train.max_steps to what M minutes allow (the CPU search of docs/results.md).
eval:  per sampler, --samples faces (seeded) through NVIDIA's Inception once, then
       their FID against three references: all train images (the protocol), all
       valid images, and a random train subset as large as the valid split. The
       last two have the same count, so their gap shows memorisation (a model that
       copies training faces scores better against train than against valid).
       Reconstructions of the valid images are scored against those images. One JSON
       row is appended to --results.
table: the rows as the markdown table of docs/results.md.
search-table: the fixed-budget rows (run folders beside benchmarks/protocol_fid.py rows).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import yaml

from facevae.config import RunConfig
from facevae.data import load_images, open_dataset
from facevae.tasks import evaluate as ev
from facevae.metrics import fid
from facevae.metrics.recon import reconstruct_uint8
from facevae.models import build_model
from facevae.modelfiles.samplers import get_sampler
from facevae.modelfiles.checkpoint import load_model
from facevae.modelfiles.device import resolve_device
from facevae.training.run import train

from throughput import device_name, facevae_steps, facevae_trainer, sync, timed  # noqa: E402  (benchmarks/ is the script's folder)

RECIPES = Path(__file__).with_name("recipes.yaml")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="stage", required=True)
    t = sub.add_parser("train")
    t.add_argument("--recipe", required=True)
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--set", dest="sets", action="append", default=[], help="extra override after the recipe's")
    t.add_argument("--samplers", default="gmm,two_stage", help="fitted samplers, timed with training")
    t.add_argument("--device", default="auto")
    t.add_argument("--minutes", type=float, default=0,
                   help="fixed training budget: the steps that fit in it at the rate a short probe measures")
    e = sub.add_parser("eval")
    e.add_argument("--run", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--results", required=True, help="JSONL file the row is appended to")
    e.add_argument("--samples", type=int, default=10_000)
    e.add_argument("--reference-images", type=int, default=0, help="train images of the main reference; 0 = all")
    e.add_argument("--samplers", default="prior,gmm,two_stage")
    e.add_argument("--inception", default=None)
    e.add_argument("--batch", type=int, default=200)
    e.add_argument("--device", default="auto")
    e.add_argument("--note", default="", help="free text for the row (e.g. how the data travelled)")
    tb = sub.add_parser("table")
    tb.add_argument("--results", required=True)
    st = sub.add_parser("search-table", help="fixed-budget rows: each run's timing.json beside its protocol_fid.py rows")
    st.add_argument("--runs", required=True, help="folder of run folders, one per recipe")
    st.add_argument("--results", required=True, help="JSONL of benchmarks/protocol_fid.py, --label = recipe")
    return p.parse_args()


def recipe_config(name: str, extra: list[str]) -> tuple[RunConfig, dict]:
    recipes = yaml.safe_load(RECIPES.read_text())
    if name not in recipes:
        raise SystemExit(f"unknown recipe {name!r}; choose one of: {', '.join(recipes)}")
    r = recipes[name]
    return RunConfig.load(r["config"]).override([*map(str, r.get("set", [])), *extra]), r


def machine(dev: torch.device) -> str:
    if dev.type == "cuda":
        return device_name(dev)
    return f"{device_name(dev)} CPU, {torch.get_num_threads()} threads"


def probe_images_per_s(cfg: RunConfig, data: str, dev: torch.device, warmup: int = 10, steps: int = 60) -> float:
    """The recipe's training rate here and now (other jobs on the machine included)."""
    ds = open_dataset(data, cfg.data.val_fraction)
    images = load_images(ds, cfg, progress=False)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model).to(dev)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = facevae_trainer(cfg, model, images, ds.split_indices("train"), dev, Path(tmp), False)
        return timed(facevae_steps(trainer), dev, warmup, steps, cfg.train.batch_size)["images_per_s"]


def budget_steps(cfg: RunConfig, data: str, dev: torch.device, minutes: float) -> tuple[RunConfig, dict]:
    """Fix the run's length to what `minutes` of training allow, so the LR schedule ends with the budget."""
    rate = probe_images_per_s(cfg, data, dev)
    steps = max(1, int(minutes * 60 * rate / cfg.train.batch_size))
    return cfg.override(["train.epochs=0", f"train.max_steps={steps}"]), {"budget_minutes": minutes,
                                                                           "probe_images_per_s": rate}


def stage_train(args) -> None:
    cfg, recipe = recipe_config(args.recipe, args.sets)
    dev = resolve_device(args.device)
    out = Path(args.out)
    budget = {}
    if args.minutes > 0:
        cfg, budget = budget_steps(cfg, args.data, dev, args.minutes)
    start = time.perf_counter()
    result = train(args.data, out, cfg, device=args.device, progress=False)
    sync(dev)
    trained = time.perf_counter() - start
    loaded = load_model(out, dev)
    model, cfg = loaded.model, loaded.config
    fits = {}
    for name in filter(None, args.samplers.split(",")):
        t = time.perf_counter()
        get_sampler(loaded, name=name, data=args.data, device=dev, progress=False)
        sync(dev)
        fits[name] = round(time.perf_counter() - t, 2)
    timing = {"recipe": args.recipe, "note": recipe.get("note", ""), "overrides": [*recipe.get("set", []), *args.sets],
              "train_seconds": round(trained, 1), "sampler_fit_seconds": fits,
              "budget_seconds": round(time.perf_counter() - start, 1), "steps": result.step,
              "images_per_s": round(result.images_per_s, 1), **budget, "machine": machine(dev), "torch": torch.__version__,
              "parameters": sum(p.numel() for p in model.parameters())}
    (out / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    print(json.dumps(timing))


def features_of_samples(model, sampler, n: int, batch: int, extractor, dev) -> np.ndarray:
    batches = ev.decoded_batches(model, ev.sample_latents(sampler, n, 0, batch), dev)
    return ev.features_stream(batches, extractor, n, "samples", progress=False)[0]


@torch.no_grad()
def stage_eval(args) -> None:
    dev = resolve_device(args.device)
    run = Path(args.run)
    timing = json.loads((run / "timing.json").read_text())
    loaded = load_model(run, dev)
    model, cfg = loaded.model, loaded.config
    model.eval()
    extractor = fid.InceptionFeatures(args.inception, dev)
    ds = open_dataset(args.data, cfg.data.val_fraction)
    images = load_images(ds, cfg, progress=False)
    n_valid = len(ds.split_indices("valid"))
    refs = {"train": ev.reference_stats(ds, images, "train", args.reference_images, cfg, extractor, args.batch, False),
            "valid": ev.reference_stats(ds, images, "valid", 0, cfg, extractor, args.batch, False),
            "train_matched": ev.reference_stats(ds, images, "train", n_valid, cfg, extractor, args.batch, False)}
    fids = {}
    for name in filter(None, args.samplers.split(",")):
        sampler = get_sampler(loaded, name=name, data=args.data, device=dev, progress=False)
        feats = features_of_samples(model, sampler, args.samples, args.batch, extractor, dev)
        fids[name] = {ref: round(ev.fid_to_reference(feats, mu, sigma), 2) for ref, (mu, sigma, _) in refs.items()}
    x8 = ev.read_subset(images, ds.split_indices("valid"))
    recon = reconstruct_uint8(model, x8, dev)
    rec_feats = ev.features_stream((recon[i:i + args.batch] for i in range(0, len(recon), args.batch)),
                                   extractor, len(recon), "reconstructions", progress=False)[0]
    row = {**timing, "samples": args.samples, "fid": fids,
           "reconstruction_fid_valid": round(ev.fid_to_reference(rec_feats, *refs["valid"][:2]), 2),
           "reference_counts": {k: v[2]["count"] for k, v in refs.items()}, "inception": extractor.identity,
           "eval_machine": machine(dev), "data": str(Path(args.data).resolve()), "note": args.note or timing["note"],
           "date": datetime.now(timezone.utc).isoformat(timespec="minutes")}
    with open(args.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


def stage_table(args) -> None:
    rows = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line.strip()]
    samplers = sorted({s for r in rows for s in r["fid"]}, key=lambda s: (s != "prior", s))
    head = ["recipe", *[f"FID {s}: train / valid / matched train" for s in samplers], "recon FID (valid)",
            "samples", "train + fit s", "images/s", "params (M)", "machine"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["recipe"]]
        for s in samplers:
            f = r["fid"].get(s)
            cells.append(f"{f['train']} / {f['valid']} / {f['train_matched']}" if f else "")
        cells += [str(r["reconstruction_fid_valid"]), str(r["samples"]), str(r["budget_seconds"]),
                  str(r["images_per_s"]), f"{r['parameters'] / 1e6:.1f}", r["machine"]]
        print("| " + " | ".join(cells) + " |")


def stage_search_table(args) -> None:
    fids: dict[str, dict] = {}
    for r in map(json.loads, Path(args.results).read_text().splitlines()):
        fids.setdefault(r["model"], {})[r["sampler"]] = r
    samplers = sorted({s for rows in fids.values() for s in rows}, key=lambda s: (s != "prior", s))
    counts = {r["samples"] for rows in fids.values() for r in rows.values()}
    head = ["recipe", "overrides", *[f"FID-{'/'.join(map(str, sorted(counts)))} {s}: train / valid" for s in samplers],
            "steps", "images (k)", "train s", "images/s of train s", "params (M)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, rows in fids.items():
        t = json.loads((Path(args.runs) / name / "timing.json").read_text())
        batch = RunConfig.load(Path(args.runs) / name / "config.yaml").train.batch_size
        cells = [name, " ".join(t["overrides"]) or "-"]
        cells += [f"{rows[s]['fid_train_all']} / {rows[s]['fid_valid_780']}" if s in rows else "" for s in samplers]
        images = t["steps"] * batch
        cells += [str(t["steps"]), f"{images / 1e3:.0f}", str(t["train_seconds"]), f"{images / t['train_seconds']:.0f}",
                  f"{t['parameters'] / 1e6:.1f}"]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    args = parse_args()
    {"train": stage_train, "eval": stage_eval, "table": stage_table,
     "search-table": stage_search_table}[args.stage](args)


if __name__ == "__main__":
    main()
