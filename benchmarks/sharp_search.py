"""The sharp-decoder search at a fixed CPU budget (issue 24): fine-tune rows, score them, tabulate.

    python benchmarks/sharp_search.py run --row adv --minutes 20 --data ../shared/celeba_mini
    python benchmarks/sharp_search.py score --row adv --data ../shared/celeba_mini --results docs/results_sharp.jsonl
    python benchmarks/sharp_search.py score --row bundled ...      # the bundled model as it ships
    python benchmarks/sharp_search.py table --results docs/results_sharp.jsonl

probe: seconds per step of every row (or of --rows) on this machine while it is idle (median of 8
       steps on random codes), into runs/sharp/rates.json.
run:   the row of benchmarks/sharp_recipes.yaml fine-tuned from the bundled model into runs/sharp/ROW
       for --minutes of training at the probed rate: max_steps = minutes x 60 / (s per step), so a
       row that shares the machine with other work still gets the steps an idle machine gives in
       that time (the frozen encoder's one-off encoding is not counted). Rerunning a killed row
       resumes it.
score: FID-N (--samples, default 2,000; seeded) of the row's reconstructions of N train images and
       of N GMM samples, each against the committed statistics of all 24,012 train images and
       against the 780 valid images; PSNR and SSIM of the 780 valid reconstructions; and one
       picture: 16 valid faces above their reconstructions, then 16 GMM samples, all through
       the row's decoder. One JSON row is appended to --results.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

import facevae
from facevae.data import load_images, open_dataset
from facevae.metrics import fid
from facevae.metrics.recon import recon_metrics
from facevae.runfolder import SHARP_DECODER, TRAIN_LATENTS
from facevae.tasks import evaluate as ev
from facevae.viz.grid import pairs_grid, save_image, to_uint8, make_grid

RECIPES = Path(__file__).with_name("sharp_recipes.yaml")
ROOT = Path("runs/sharp")
CHUNK = 500
REFERENCE = fid.committed_reference_dir() / "celeba_mini-train-c148-64px.npz"


def recipes() -> dict:
    return yaml.safe_load(RECIPES.read_text())


def row_config(name: str):
    return facevae.load(device="cpu", decoder="likelihood").config.override(list(recipes()[name]["set"]))


def probe(a) -> None:
    import copy

    from sharp_step import seconds_per_step  # beside this script
    from facevae.modelfiles.decoders import build_decoder

    vae = facevae.load(device="cpu", decoder="likelihood")
    path = ROOT / "rates.json"
    rates = json.loads(path.read_text()) if path.is_file() else {}
    for name in a.rows.split(",") if a.rows else recipes():
        cfg = row_config(name)
        decoder = build_decoder(cfg) if cfg.sharp.decoder_widths else copy.deepcopy(vae.model.decoder)
        rates[name] = round(seconds_per_step(cfg, decoder, 8, cfg.train.batch_size), 4)
        print(name, rates[name], flush=True)
    ROOT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rates, indent=1))


def run(a) -> None:
    from facevae.training.finetune import finetune_decoder

    rate = json.loads((ROOT / "rates.json").read_text())[a.row]
    steps = int(a.minutes * 60 / rate)
    out = ROOT / a.row
    resume = (out / "sharp_checkpoint.safetensors").is_file()
    shared = next(iter(sorted(ROOT.glob(f"*/{TRAIN_LATENTS}"))), None)
    if shared is not None and not (out / TRAIN_LATENTS).exists():  # one source, one encoding for every row
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared, out / TRAIN_LATENTS)
    cfg = row_config(a.row)
    # the wall-clock cap only guards against a probe far off: the step count is the budget
    result = finetune_decoder(out if resume else None, a.data, out, cfg, minutes=3 * a.minutes, max_steps=steps,
                              resume=resume, device="cpu")
    print(json.dumps({"row": a.row, "steps": result.step, "probed_s_per_step": rate,
                      "minutes": round(result.seconds / 60, 2), "last": result.last}))


def score(a) -> None:
    vae = facevae.load(None if a.row == "bundled" else ROOT / a.row, device="cpu",
                       decoder="likelihood" if a.row == "bundled" else "sharp")
    mu_ref, sigma_ref, protocol = fid.load_reference(REFERENCE)
    extractor = fid.InceptionFeatures(device="cpu")
    ds = open_dataset(a.data, vae.config.data.val_fraction)
    images = load_images(ds, vae.config, progress=False)
    work = ROOT / "scores"
    valid_idx = ds.split_indices("valid")
    valid_feats, _ = ev.resumable_features(work / "valid", len(valid_idx),
                                           lambda s, e: ev.read_subset(images, valid_idx[s:e]), extractor, CHUNK)
    mu_valid, sigma_valid = fid.stats_of(valid_feats)
    train_idx = ev.subset(ds.split_indices("train"), a.samples, a.seed)
    z = vae.sample_latents(a.samples, sampler="gmm", seed=a.seed)
    decoded = {
        "reconstructions": lambda s, e: to_uint8(vae.reconstruct(ev.read_subset(images, train_idx[s:e]).float() / 255)),
        "gmm": lambda s, e: to_uint8(vae.decode(z[s:e])),
    }
    row = {"row": a.row, "note": recipes().get(a.row, {}).get("note", "the bundled model, likelihood decoder"),
           "set": recipes().get(a.row, {}).get("set", []), "weights_sha1": vae.weights_id, "samples": a.samples,
           "seed": a.seed, "reference": {"file": REFERENCE.name, "count": protocol["count"]}}
    # features are cached per decoder file, sample count and seed: a row trained further is scored afresh
    sharp = ROOT / a.row / SHARP_DECODER
    key = hashlib.sha1(sharp.read_bytes()).hexdigest()[:10] if sharp.is_file() else vae.weights_id
    for name, images_of in decoded.items():
        feats, _ = ev.resumable_features(work / a.row / f"{name}-{key}-n{a.samples}-s{a.seed}", a.samples, images_of,
                                         extractor, CHUNK)
        row[f"fid_{name}_train_all"] = round(ev.fid_to_reference(feats, mu_ref, sigma_ref), 2)
        row[f"fid_{name}_valid_780"] = round(ev.fid_to_reference(feats, mu_valid, sigma_valid), 2)
    valid = ev.read_subset(images, valid_idx)
    recons = to_uint8(vae.reconstruct(valid.float() / 255))
    m = recon_metrics(valid, recons)
    row.update(psnr_valid_db=round(m["psnr_db"], 2), ssim_valid=round(m["ssim"], 4))
    row.update(decoder_step=_steps(ROOT / a.row), steps_minutes=_training_time(ROOT / a.row),
               date=datetime.now(timezone.utc).isoformat(timespec="minutes"),
               machine=f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}")
    picture = Path(a.pictures) / f"sharp_{a.row}.png"
    save_image(_picture(valid[:16], recons[:16], to_uint8(vae.decode(z[:16]))), picture)
    row["picture"] = str(picture)
    print(json.dumps(row), flush=True)
    with open(a.results, "a") as f:
        f.write(json.dumps(row) + "\n")


def _training_time(run_dir: Path) -> dict | None:
    """(steps, minutes of training) from the row's last log line, when it has one."""
    log = run_dir / "metrics.jsonl"
    if not log.is_file():
        return None
    last = json.loads(log.read_text().splitlines()[-1])
    return {"steps": last["step"], "minutes": round(last["seconds"] / 60, 1)}


def _picture(valid: torch.Tensor, recons: torch.Tensor, samples: torch.Tensor):
    """Two rows of 8 valid faces above their reconstructions, then 16 GMM samples."""
    top = pairs_grid(valid.float() / 255, recons.float() / 255, per_row=8)
    bottom = make_grid(samples, nrow=8)
    import numpy as np

    return np.concatenate([top, bottom[2:]], axis=0)


def table(a) -> None:
    rows = [json.loads(line) for line in Path(a.results).read_text().splitlines() if line.strip()]
    rates = json.loads((ROOT / "rates.json").read_text()) if (ROOT / "rates.json").is_file() else {}
    print("| row | steps (idle-rate minutes) | FID-2k recon vs train / valid | FID-2k GMM vs train / valid | "
          "PSNR valid (dB) | SSIM valid |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        # the step scored; older rows read the decoder file, so score a row before training it further
        steps = r.get("decoder_step") or _steps(ROOT / r["row"])
        spent = f"{steps} ({steps * rates[r['row']] / 60:.1f} min at {rates[r['row']]} s/step)" if steps else "-"
        print(f"| {r['row']} | {spent} | {r['fid_reconstructions_train_all']} / {r['fid_reconstructions_valid_780']} | "
              f"{r['fid_gmm_train_all']} / {r['fid_gmm_valid_780']} | {r['psnr_valid_db']} | {r['ssim_valid']} |")


def _steps(run_dir: Path) -> int | None:
    """The step the row's sharp decoder was saved at."""
    path = run_dir / SHARP_DECODER
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return int(f.metadata()["step"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--rows", default="", help="comma-separated rows to (re)probe; the others keep their rates")
    r = sub.add_parser("run")
    r.add_argument("--row", required=True, choices=sorted(recipes()))
    r.add_argument("--minutes", type=float, required=True)
    r.add_argument("--data", required=True)
    s = sub.add_parser("score")
    s.add_argument("--row", required=True, choices=["bundled", *sorted(recipes())])
    s.add_argument("--data", required=True)
    s.add_argument("--samples", type=int, default=2000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--results", required=True)
    s.add_argument("--pictures", default="docs/images")
    t = sub.add_parser("table")
    t.add_argument("--results", required=True)
    a = ap.parse_args()
    {"probe": probe, "run": run, "score": score, "table": table}[a.verb](a)


if __name__ == "__main__":
    main()
