"""Evaluate a trained model on one split: FID, likelihood, reconstruction and latent health.

    metrics = evaluate("runs/celeba64", "data/celeba", "runs/celeba64/eval", EvalOptions(fid_samples=10_000))

writes into the output folder metrics.json (every figure with its protocol),
picture grids, latent plots and index.html (the report). FID uses NVIDIA's
Inception (`facevae.metrics.fid`). Its reference statistics are read from a
committed file (`pretrained/fid`, or --fid-reference-stats) when that file's
protocol matches this evaluation's data and preprocessing, else computed and cached
per (data root, file list, split, size, crop, count, Inception weights, device
type, dtype).

FID protocol:
* samples: `fid_samples` faces from each sampler (seeded), decoded and rounded to
  8 bits as a PNG would be, against `min(fid_samples, |reference split|)` real
  images of the reference split (train by default; a fixed seed-0 subset when
  the split is larger), or `fid_reference_images` of them (0: all, as the
  mini-CelebA protocol of docs/results.md asks);
* reconstructions: up to `fid_samples` images of the evaluated split against
  the same originals, reconstructed from their posterior means.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from facevae.config import RunConfig
from facevae.data import FaceDataset, load_images, open_dataset
from facevae.errors import FacevaeError
from facevae.io import atomic_write, atomic_write_text, user_cache
from facevae.metrics import fid
from facevae.metrics.reference import INCEPTION, RESIZE, files_digest, mismatches, reference_protocol
from facevae.metrics.stderr import identity_clusters
from facevae.models.vae import VAE
from facevae.phase import fit_line, phase
from facevae.modelfiles.checkpoint import Checkpoint
from facevae.runfolder import EVAL_METRICS
from facevae.tasks.generate import ModelLike, as_model
from facevae.viz.grid import to_uint8

REFERENCE_SEED = 0  # the real-image subsets never depend on the evaluation seed, so cached stats are shared
GRID_IMAGES = 64


@dataclass(frozen=True)
class EvalOptions:
    split: str = "valid"
    fid_samples: int = 10_000  # per sampler; 0 = no FID
    fid_reference_split: str = "train"
    fid_reference_images: int | None = None  # None: as many as fid_samples; 0: the whole split
    fid_reference_stats: str | None = None  # a committed reference file that must match, instead of the automatic one
    iw_samples: int = 64  # k of the IWAE bound; 0 = no likelihood
    likelihood_images: int = 0  # 0 = the whole split
    samplers: tuple[str, ...] = ("prior", "gaussian", "gmm", "two_stage", "diffusion", "shifted")
    components: int = 10  # GMM components
    fit_images: int = 0  # training images whose latents fit the samplers; 0 = all (the stored sampler when there is one)
    inception: str | None = None
    device: str = "auto"
    seed: int = 0
    batch_size: int = 100
    progress: bool = True


# ----------------------------------------------------------------------------- images

def subset(indices: np.ndarray, count: int, seed: int = REFERENCE_SEED) -> np.ndarray:
    """`count` of `indices` (all when count is 0 or too large), a seeded subset in file order."""
    if count <= 0 or count >= len(indices):
        return indices
    pick = np.random.default_rng(seed).choice(len(indices), size=count, replace=False)
    return indices[np.sort(pick)]


def read_subset(images: np.ndarray, indices: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images[indices]))


@torch.no_grad()
def decoded_batches(model: VAE, latents: Iterator[torch.Tensor], device: torch.device) -> Iterator[torch.Tensor]:
    """uint8 images (rounded exactly as a saved PNG) for each latent batch."""
    for z in latents:
        yield to_uint8(model.decode(z.to(device)))


def sample_latents(sampler, n: int, seed: int, batch_size: int) -> Iterator[torch.Tensor]:
    """n codes in batches, one seeded CPU generator: the same stream on every device."""
    g = torch.Generator().manual_seed(seed)
    for start in range(0, n, batch_size):
        yield sampler.sample(min(batch_size, n - start), g)


def noise_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Uniform 8-bit noise, the far end of any FID scale."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


# ----------------------------------------------------------------------------- FID

def resumable_features(work: Path, n: int, images_of: Callable[[int, int], torch.Tensor],
                       extractor: fid.InceptionFeatures, chunk: int = 500) -> tuple[np.ndarray, float]:
    """Features of images_of(start, stop) over [0, n), saved per chunk under `work` so a killed run continues.

    Returns (features N x 2048, seconds spent featurising in this call). For the CPU jobs
    that take an hour (reference statistics, FID-10k); evaluate itself keeps features in memory.
    """
    work.mkdir(parents=True, exist_ok=True)
    spent = 0.0
    for start in range(0, n, chunk):
        part, stop = work / f"features-{start:06d}.npy", min(n, start + chunk)
        if part.exists() and len(np.load(part, mmap_mode="r")) == stop - start:
            continue
        t = time.perf_counter()
        feats = fid.features_of(images_of(start, stop), extractor, progress=False)
        atomic_write(part, lambda tmp: _save_npy(tmp, feats))
        spent += time.perf_counter() - t
        print(f"{work.name}: {stop}/{n} ({(stop - start) / (time.perf_counter() - t):.2f} img/s)", flush=True)
    return np.concatenate([np.load(work / f"features-{s:06d}.npy") for s in range(0, n, chunk)]), spent


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a handle, because np.save appends .npy to a temp name without it
        np.save(f, array)


def features_stream(batches: Iterator[torch.Tensor], extractor: fid.InceptionFeatures, total: int, desc: str,
                    progress: bool, keep: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """(features N x 2048, the first `keep` images) of a stream of uint8 batches."""
    feats, kept = [], []
    with tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for images in batches:
            feats.append(fid.features_of(images, extractor, progress=False))
            if sum(len(k) for k in kept) < keep:
                kept.append(images[:keep - sum(len(k) for k in kept)])
            bar.update(len(images))
    first = torch.cat(kept) if kept else torch.empty(0, dtype=torch.uint8)
    return np.concatenate(feats), first


def fid_to_reference(features: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray) -> float:
    """FID of a feature set against reference statistics, exact and fast for fewer than 2048 rows.

    With B = centred features / sqrt(n - 1), the sample covariance is B^T B and the
    nonzero eigenvalues of sigma_ref B^T B are those of the n x n matrix
    B sigma_ref B^T, so Tr sqrt(sigma_ref sigma) is the sum of their square roots:
    an n x n eigenproblem instead of 2048 x 2048 ones (seconds instead of a minute
    on two CPU cores for a few hundred samples).
    """
    x = np.asarray(features, dtype=np.float64)
    n = len(x)
    if n < 2 or n - 1 >= x.shape[1]:  # full rank: the low-rank route saves nothing
        return fid.frechet_distance(*fid.stats_of(x), mu_ref, sigma_ref)
    mu = x.mean(axis=0)
    b = (x - mu) / np.sqrt(n - 1)
    m = b @ sigma_ref @ b.T
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    diff = mu - mu_ref
    return max(0.0, float(diff @ diff + np.sum(b * b) + np.trace(sigma_ref) - 2.0 * np.sqrt(np.clip(eig, 0, None)).sum()))


FID_NOTE = ("facevae resizes outside the network (pytorch-fid style); NVIDIA's StyleGAN2-ADA file resizes inside "
            "it, which moves FID by 0.5-0.7%: compare figures only between pipelines with the same resize")


def reference_key(ds: FaceDataset, split: str, cfg: RunConfig, idx: np.ndarray, selection: str,
                  extractor_fields: dict) -> dict:
    """Everything the cached statistics depend on: a deleted or renamed image changes `files_sha1`."""
    return {"kind": "facevae-split", "root": os.path.realpath(ds.root), "split": split,
            "files_sha1": files_digest(ds.filenames, idx),
            "image_size": cfg.model.image_size, "crop": cfg.data.crop, "draft": cfg.data.draft,
            "count": len(idx), "selection": selection, **extractor_fields}


def _reference_indices(ds: FaceDataset, split: str, count: int) -> tuple[np.ndarray, str]:
    every = ds.split_indices(split)
    idx = subset(every, count)
    return idx, "all" if len(idx) == len(every) else f"random subset, seed {REFERENCE_SEED}"


def wanted_protocol(ds: FaceDataset, split: str, count: int, cfg: RunConfig, identity: str) -> dict:
    """The reference protocol this evaluation needs, in the form committed reference files carry."""
    idx, _ = _reference_indices(ds, split, count)
    return reference_protocol(ds, idx, split, cfg.model.image_size, cfg.data.crop, cfg.data.draft, identity)


def committed_reference(wanted: dict, explicit: str | os.PathLike | None = None,
                        directory: Path | None = None) -> Path | None:
    """The committed statistics to use: `explicit` when it matches (else FacevaeError), or a matching shipped file."""
    if explicit is not None:
        stored = fid.reference_protocol_of(explicit)
        if stored is None or stored.get("format") != fid.REFERENCE_FORMAT:
            raise FacevaeError(f"--fid-reference-stats {explicit} is not a readable FID reference file: give one "
                               "written by tools/fid_reference.py")
        bad = mismatches(stored, wanted)
        if bad:
            hint = "; --fid-reference-images 0 asks for the whole split" if any(b.startswith("count") for b in bad) else ""
            raise FacevaeError(f"--fid-reference-stats {explicit} does not match this evaluation (stored vs wanted: "
                               f"{'; '.join(bad)}){hint}: drop the option to compute this evaluation's reference")
        return Path(explicit)
    shipped = directory or fid.committed_reference_dir()
    for path in sorted(shipped.glob("*.npz")) if shipped.is_dir() else ():
        stored = fid.reference_protocol_of(path)
        if stored is not None and not mismatches(stored, wanted):
            return path
    return None


def reference_stats(ds: FaceDataset, images: np.ndarray, split: str, count: int, cfg: RunConfig,
                    extractor: fid.InceptionFeatures, batch_size: int = 100, progress: bool = True,
                    committed: Path | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(mu, sigma, record) of `count` real images of a split.

    From the `committed` file when given (see `committed_reference`), else computed once and cached.
    """
    idx, selection = _reference_indices(ds, split, count)
    record = {"split": split, "count": len(idx), "selection": selection}
    if committed is not None:
        mu, sigma, protocol = fid.load_reference(committed)
        return mu, sigma, {**record, "source": "committed", "file": str(committed), "protocol": protocol}
    key = reference_key(ds, split, cfg, idx, selection, extractor.cache_fields())

    def compute() -> np.ndarray:
        batches = (read_subset(images, idx[i:i + batch_size]) for i in range(0, len(idx), batch_size))
        return features_stream(batches, extractor, len(idx), f"FID reference ({split})", progress)[0]

    mu, sigma = fid.cached_stats(key, compute)
    return mu, sigma, {**record, "source": "computed", "cache": str(fid.stats_cache_path(key)), "key": key}


# ----------------------------------------------------------------------------- samplers

def training_latents(ckpt: Checkpoint, ds: FaceDataset, images: np.ndarray, count: int,
                     device: torch.device) -> torch.Tensor:
    """Posterior means of `count` training images (all when 0), cached under FACEVAE_CACHE/eval."""
    from facevae.data.encode import cached_latents

    cfg = ckpt.config
    idx = subset(ds.split_indices("train"), count)
    key = json.dumps({"weights": ckpt.digest, "root": os.path.realpath(ds.root), "n": len(idx),
                      "size": cfg.model.image_size, "crop": cfg.data.crop, "draft": cfg.data.draft,
                      "seed": REFERENCE_SEED}, sort_keys=True)
    path = user_cache("eval") / f"latents-{hashlib.sha256(key.encode()).hexdigest()[:24]}.safetensors"
    means, _ = cached_latents(ckpt.model, read_subset(images, idx), path, key, device)
    return means


def fitted_samplers(ckpt: Checkpoint, data, ds: FaceDataset, images: np.ndarray, opts: EvalOptions,
                    device: torch.device) -> dict[str, tuple[Any, str]]:
    """name -> (fitted sampler, where it came from)."""
    from facevae.sampling import build_sampler
    from facevae.modelfiles.samplers import fit_options, get_sampler

    cfg = ckpt.config
    out: dict[str, tuple[Any, str]] = {}
    latents = None
    for name in opts.samplers:
        s = build_sampler(name, cfg.model.latent_dim, **fit_options(name, opts.components))
        if not s.fits_latents:
            out[name] = (s.fit(torch.empty(0, cfg.model.latent_dim, device=device)), s.description)
            continue
        if opts.fit_images == 0:  # the stored fit (made on the whole training split on first use)
            stored = get_sampler(ckpt, name=name, components=opts.components, data=data, device=device,
                                 progress=opts.progress)
            out[name] = (stored, "fitted on the whole training split, stored beside the checkpoint "
                                 "(facevae.modelfiles.samplers)")
            continue
        if latents is None:
            latents = training_latents(ckpt, ds, images, opts.fit_images, device)
        with phase(fit_line(s, len(latents)), opts.progress):
            s.fit(latents.to(device))
        out[name] = (s, f"fitted on the posterior means of {len(latents)} training images")
    return out


def check_samplers(names: tuple[str, ...]) -> None:
    from facevae.sampling.registry import sampler_class

    if len(set(names)) != len(names):
        raise FacevaeError(f"--samplers lists a sampler twice: {','.join(names)}")
    for name in names:
        sampler_class(name)


# ----------------------------------------------------------------------------- the run

@dataclass
class _Clock:
    seconds: dict[str, float] = field(default_factory=dict)
    progress: bool = False  # a line per phase on stderr

    def time(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            with phase(f"evaluate: {name}", self.progress):
                return fn()
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 2)


def _check_options(opts: EvalOptions) -> None:
    if opts.fid_reference_images is not None and opts.fid_reference_images < 0:
        raise FacevaeError(f"fid-reference-images must be >= 0 (0 = the whole split), got {opts.fid_reference_images}")
    for name in ("fid_samples", "iw_samples", "likelihood_images", "fit_images"):
        if getattr(opts, name) < 0:
            raise FacevaeError(f"{name.replace('_', '-')} must be >= 0, got {getattr(opts, name)}")
    if opts.fid_samples == 1:
        raise FacevaeError("--fid-samples must be 0 (no FID) or at least 2: FID needs a covariance")
    if not opts.samplers:
        from facevae.sampling.registry import SAMPLERS

        raise FacevaeError(f"--samplers is empty: name at least one of {', '.join(SAMPLERS)}")
    check_samplers(tuple(opts.samplers))


def evaluate(model: ModelLike, data: str | Path, out: str | Path, opts: EvalOptions = EvalOptions()) -> dict:
    """Run every evaluation, write metrics.json, pictures and index.html into `out`; return the metrics."""
    from facevae.data.encode import encode_images
    from facevae.metrics.latent_health import latent_health
    from facevae.metrics.recon import reconstruct_uint8, recon_metrics
    from facevae.viz import report

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FacevaeError(f"--out {out} is a file: give a folder for metrics.json and the report")
    _check_options(opts)
    vae = as_model(model, opts.device)
    loaded, dev = vae.checkpoint, vae.device
    model, cfg = loaded.model, loaded.config
    extractor = fid.InceptionFeatures(opts.inception, dev) if opts.fid_samples else None  # fail before any work
    clock = _Clock(progress=opts.progress)
    ds = open_dataset(data, cfg.data.val_fraction)
    eval_idx = ds.split_indices(opts.split)
    if extractor is not None:
        opts = _protocol_default(ds, cfg, extractor, opts)
    committed = _committed_references(ds, cfg, extractor, opts) if extractor is not None else {}
    warning = cpu_time_warning(opts, dev, committed.get("samples") is not None)
    if warning and opts.progress:  # after the checks: a bad input gets its one error line alone
        print(warning, file=sys.stderr, flush=True)
    images = load_images(ds, cfg, progress=opts.progress)
    x8 = read_subset(images, eval_idx)

    # pictures, reconstructions and FID through the decoder the user draws with; bits/dim through the likelihood's
    drawing = model if vae.sharp_decoder is None else model.with_decoder(vae.sharp_decoder)
    means, logvars = clock.time("encode", lambda: encode_images(model, x8, dev))
    recons = clock.time("reconstruct", lambda: reconstruct_uint8(drawing, x8, dev))
    likelihood = clock.time("likelihood", lambda: _likelihood(model, cfg, ds, images, eval_idx, x8, opts, dev))
    samplers = clock.time("fit_samplers",
                          lambda: fitted_samplers(loaded, data, ds, images, opts, dev))
    grids: dict[str, torch.Tensor] = {}
    fid_result: dict[str, Any] = {"skipped": "--fid-samples 0"}
    if extractor is not None:
        fid_result = clock.time("fid", lambda: _fid_all(drawing, ds, images, eval_idx, recons, samplers, cfg,
                                                        extractor, opts, dev, grids, committed))
    _complete_grids(grids, drawing, samplers, opts.seed, dev)

    latent = latent_health(means, logvars, deterministic=not model.is_vae)
    out.mkdir(parents=True, exist_ok=True)
    files = report.write_pictures(out, x8, recons, grids, means, latent, ds, eval_idx)
    metrics = {
        "protocol": {**_protocol(loaded, ds, opts, len(eval_idx), dev), "step": loaded.step,
                     "decoder": vae.decoder},
        "model": {"kind": cfg.model.kind, "latent_dim": cfg.model.latent_dim, "image_size": cfg.model.image_size,
                  "block": cfg.model.block, "recon_loss": cfg.loss.recon, "sigma": cfg.loss.sigma,
                  "learned_sigma": cfg.model.learned_sigma, "beta": cfg.loss.beta},
        "fid": fid_result,
        "likelihood": likelihood,
        "reconstruction": {**recon_metrics(x8, recons, clusters=identity_clusters(ds.identity, eval_idx)),
                           "split": opts.split},
        "latent": latent,
        "samplers": {name: {"source": src, "options": s.options()} for name, (s, src) in samplers.items()},
        "timings_s": clock.seconds,
        "files": files,
    }
    metrics = _jsonable(metrics)
    atomic_write_text(out / EVAL_METRICS, json.dumps(metrics, indent=1) + "\n")  # the model card reads RUN/eval/
    report.render_report(metrics, out)
    return metrics


def _likelihood(model: VAE, cfg: RunConfig, ds: FaceDataset, images: np.ndarray, eval_idx: np.ndarray,
                x8: torch.Tensor, opts: EvalOptions, dev: torch.device) -> dict:
    from facevae.metrics.likelihood import likelihood_bounds

    if not model.is_vae:
        return {"skipped": "a deterministic autoencoder has no posterior q(z|x): no likelihood bound"}
    if opts.iw_samples == 0:
        return {"skipped": "--iw-samples 0"}
    lidx = eval_idx if opts.likelihood_images == 0 else subset(eval_idx, opts.likelihood_images)
    lx = x8 if opts.likelihood_images == 0 else read_subset(images, lidx)
    res = likelihood_bounds(model, lx, cfg.loss, k=opts.iw_samples, seed=opts.seed, device=dev,
                            progress=opts.progress)
    selection = "all" if len(lx) == len(eval_idx) else f"random subset, seed {REFERENCE_SEED}"
    return {**res.summary(identity_clusters(ds.identity, lidx)), "split": opts.split, "selection": selection,
            "seed": opts.seed}


def _complete_grids(grids: dict[str, torch.Tensor], model: VAE, samplers: dict, seed: int, dev: torch.device) -> None:
    """A full 8x8 grid per sampler (FID runs with fewer than 64 samples leave short ones)."""
    for name, (s, _) in samplers.items():
        if len(grids.get(name, ())) < GRID_IMAGES:
            grids[name] = next(decoded_batches(model, sample_latents(s, GRID_IMAGES, seed, GRID_IMAGES), dev))


def _protocol(ckpt: Checkpoint, ds: FaceDataset, opts: EvalOptions, split_images: int, dev: torch.device) -> dict:
    cfg = ckpt.config
    return {
        "checkpoint": ckpt.source, "weights": str(ckpt.weights),
        "weights_sha1": ckpt.digest,
        "data": os.path.realpath(ds.root), "split": opts.split, "split_images": split_images,
        "image_size": cfg.model.image_size, "crop": cfg.data.crop, "dims": 3 * cfg.model.image_size ** 2,
        "device": str(dev), "seed": opts.seed, "options": asdict(opts),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _sample_reference_count(opts: EvalOptions) -> int:
    return opts.fid_samples if opts.fid_reference_images is None else opts.fid_reference_images


# NVIDIA's folded Inception on a 2-core CPU, busy to idle (docs/evaluation.md: 11-12 images/s idle)
CPU_INCEPTION_IMAGES_PER_S = (4.0, 12.0)
QUICK_FLAGS = "--fid-samples 200 --samplers prior,gmm --iw-samples 8 --likelihood-images 256"


def cpu_time_warning(opts: EvalOptions, dev: torch.device, reference_shipped: bool = False) -> str | None:
    """A warning when FID on the CPU would take more than about 10 minutes, with the flags that make it quick."""
    if not opts.fid_samples or dev.type != "cpu":
        return None
    # samples of each sampler, the reconstructions, and the reference unless its statistics ship
    images = opts.fid_samples * (len(opts.samplers) + (1 if reference_shipped else 2))
    slow, fast = (images / rate / 60 for rate in CPU_INCEPTION_IMAGES_PER_S)
    if fast < 10:
        return None
    return (f"warning: FID here sends about {images:,} images through Inception on the CPU: {fast:,.0f} to "
            f"{slow:,.0f} minutes (4 to 12 images/s on 2 cores). Quicker: {QUICK_FLAGS} (a quick FID, not "
            "comparable with FID-10k), or --device cuda")


def _protocol_default(ds: FaceDataset, cfg: RunConfig, extractor: fid.InceptionFeatures,
                      opts: EvalOptions) -> EvalOptions:
    """Without --fid-reference-images, the whole reference split when shipped statistics cover it.

    The protocol scores samples against every image of the split; a shipped file makes that
    free, while computing it for the full CelebA (162,770 images) would cost hours on a CPU.
    A file given with --fid-reference-stats says itself how many images it covers.
    """
    if opts.fid_reference_images is not None:
        return opts
    split = ds.split_indices(opts.fid_reference_split, flag="--fid-reference")
    if opts.fid_reference_stats is not None:
        # its own count, so that a refusal names only what really differs (image size, crop, ...)
        count = (fid.reference_protocol_of(opts.fid_reference_stats) or {}).get("count")
        if not isinstance(count, int):
            return opts  # unreadable: committed_reference says so
        return replace(opts, fid_reference_images=0 if count == len(split) else count)
    whole = wanted_protocol(ds, opts.fid_reference_split, 0, cfg, extractor.identity)
    return replace(opts, fid_reference_images=0) if committed_reference(whole) is not None else opts


def _committed_references(ds: FaceDataset, cfg: RunConfig, extractor: fid.InceptionFeatures,
                          opts: EvalOptions) -> dict[str, Path | None]:
    """Committed statistics for the sample reference and the reconstructions' originals, checked before any work."""
    ds.split_indices(opts.fid_reference_split, flag="--fid-reference")
    sample = wanted_protocol(ds, opts.fid_reference_split, _sample_reference_count(opts), cfg, extractor.identity)
    originals = wanted_protocol(ds, opts.split, opts.fid_samples, cfg, extractor.identity)
    return {"samples": committed_reference(sample, opts.fid_reference_stats),
            "originals": committed_reference(originals)}


def _fid_all(model, ds, images, eval_idx, recons, samplers, cfg, extractor, opts: EvalOptions, dev,
             grids: dict[str, torch.Tensor], committed: dict[str, Path | None]) -> dict:
    """FID of each sampler's samples against the reference split, and of reconstructions against originals."""
    n, bs = opts.fid_samples, opts.batch_size
    mu_ref, sigma_ref, ref = reference_stats(ds, images, opts.fid_reference_split, _sample_reference_count(opts),
                                             cfg, extractor, bs, opts.progress, committed.get("samples"))
    result: dict[str, Any] = {"inception": extractor.identity, "inception_network": INCEPTION, "resize": RESIZE,
                              "note": FID_NOTE, "features": extractor.cache_fields(), "reference": ref, "samplers": {}}
    for name, (s, source) in samplers.items():
        batches = decoded_batches(model, sample_latents(s, n, opts.seed, bs), dev)
        feats, grids[name] = features_stream(batches, extractor, n, f"FID {name} samples", opts.progress, GRID_IMAGES)
        result["samplers"][name] = {"fid": fid_to_reference(feats, mu_ref, sigma_ref),
                                    "count": n, "reference_count": ref["count"],
                                    "reference_split": ref["split"], "seed": opts.seed, "sampler_source": source}
    # reconstructions against their own originals (a seeded subset of the split when it is larger than n)
    pick = subset(np.arange(len(eval_idx)), n)
    mu_o, sigma_o, orig = reference_stats(ds, images, opts.split, n, cfg, extractor, bs, opts.progress,
                                          committed.get("originals"))
    feats_r, _ = features_stream((recons[pick[i:i + bs]] for i in range(0, len(pick), bs)), extractor, len(pick),
                                 "FID reconstructions", opts.progress)
    result["reconstructions"] = {"fid": fid_to_reference(feats_r, mu_o, sigma_o),
                                 "count": len(pick), "reference_count": orig["count"],
                                 "reference_split": opts.split, "reference": orig}
    return result


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, (np.floating, np.integer)):
        return _jsonable(obj.item())
    if isinstance(obj, Path):
        return str(obj)
    return obj
