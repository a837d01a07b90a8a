"""Models in the Hugging Face Hub layout: a folder with `config.json` and `model.safetensors`.

This is the layout `huggingface_hub`'s `PyTorchModelHubMixin` writes and the Hub
shows, written here without the mixin so that facevae's core needs no extra
dependency (`huggingface_hub` is imported only to download a repo id). The
weights file also carries the config in its metadata, like a run's
`model.safetensors`, so every command that takes `--ckpt` reads the folder as is.
"""
from __future__ import annotations

import json
import os
import re
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path

import torch

from facevae.config import RunConfig
from facevae.errors import FacevaeError
from facevae.io import atomic_write_text
from facevae.models.vae import VAE
from facevae.modelfiles.checkpoint import (CHECKPOINT, CONFIG_JSON, WEIGHTS, Checkpoint, config_json,
                                          is_bundled_name, load_model, save_weights, weights_digest)
from facevae.modelfiles.decoders import resave_sharp_decoder
from facevae.runfolder import SHARP_DECODER, RunFolder

CARD = "README.md"
BUNDLED_METRICS = "metrics.json"  # <name>.metrics.json beside a bundled model's weights: what was measured on it
EVALUATED = ("fid", "likelihood", "reconstruction")  # sections of evaluate's metrics.json a card quotes


def save_pretrained(model: VAE, cfg: RunConfig, folder: str | Path) -> Path:
    """Write `config.json` and `model.safetensors` (float32 weights) into `folder`; returns it."""
    folder = Path(folder).expanduser()
    check_export_dir(folder)
    save_weights(folder / WEIGHTS, cfg, model.state_dict())
    atomic_write_text(folder / CONFIG_JSON, config_json(cfg))
    return folder


def from_pretrained(dir_or_repo_id: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """The model (a Checkpoint: .model, .config) from a local folder or, when no such folder exists, a Hub repo id."""
    return load_model(resolve_source(dir_or_repo_id), device)


# what the Hub accepts as a repo id: "owner/name", letters, digits, '-', '_' and '.'
HUB_ID = re.compile(r"[A-Za-z0-9][\w-]*/[\w.-]+")


def resolve_source(source: str | Path | None) -> str | Path | None:
    """What `load_model` reads for a model source: an existing path or a bundled name as is, a Hub id downloaded."""
    text = str(source or "")
    if is_bundled_name(source) or Path(text).expanduser().exists() or not HUB_ID.fullmatch(text) \
            or text.endswith(".safetensors"):
        return source  # load_model says what is wrong with a path that is not there
    return _download(text)


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise FacevaeError(f"{repo_id} is no local folder, and downloading it from the Hub needs "
                           "huggingface_hub: pip install huggingface_hub") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=[CONFIG_JSON, WEIGHTS, CARD, SHARP_DECODER]))
    except Exception as e:  # the Hub client raises many kinds (network, auth, bad id); all mean "not reachable"
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") else ""
        raise FacevaeError(f"{repo_id} is no local path, and fetching it from the Hugging Face Hub failed{offline} "
                           f"({type(e).__name__}): check the path, or the repo id and the network") from None


def check_export_dir(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise FacevaeError(f"--out {folder} is a file: choose a folder for the exported model")
    if (folder / CHECKPOINT).exists():
        raise FacevaeError(f"--out {folder} holds a training run: choose another folder for the exported model")


def carry_sharp_decoder(ckpt: Checkpoint, folder: Path, sharp: bool = True) -> bool:
    """Give an exported folder the sharp decoder `ckpt` draws with by default (unless `sharp` is False),
    paired with the exported weights; True where it did.

    A sharp decoder left there by an earlier export belongs to the weights just replaced, so it goes.
    """
    carried = sharp and resave_sharp_decoder(ckpt, folder / SHARP_DECODER,
                                             weights_digest((folder / WEIGHTS).read_bytes()))
    if not carried:
        (folder / SHARP_DECODER).unlink(missing_ok=True)
    return carried


def export(ckpt: str | Path | None, out: str | Path) -> Path:
    """A run (or the bundled model) as a Hub folder with a model card; returns the folder."""
    out = Path(out).expanduser()
    check_export_dir(out)
    loaded = load_model(resolve_source(ckpt))
    save_pretrained(loaded.model, loaded.config, out)
    sharp = carry_sharp_decoder(loaded, out)
    atomic_write_text(out / CARD, model_card(loaded.model, loaded.config, loaded.run_dir,
                                             bundled=loaded if loaded.is_bundled else None, sharp=sharp))
    return out


def model_card(model: VAE, cfg: RunConfig, run_dir: Path | None, bundled: Checkpoint | None = None,
               sharp: bool = False) -> str:
    """README.md for the Hub: front matter, then training data, config, metrics and licence.

    The metrics come from the run folder, or for the bundled model (`bundled`) from the
    measurements shipped beside its weights.
    """
    m = cfg.model
    params = sum(p.numel() for p in model.parameters())
    lines = [
        "---", "library_name: facevae", "license: other", "license_name: celeba-non-commercial-research",
        "datasets:", "- celeba", "tags:", "- vae", "- faces", "- image-generation", "---", "",
        f"# facevae {m.kind.upper()} ({m.image_size}x{m.image_size}, {m.latent_dim}-dim latent)", "",
        f"A {'variational autoencoder' if m.kind == 'vae' else 'plain autoencoder'} for faces trained with "
        f"{_facevae_link()}, {params:,} parameters.", "",
        "```bash", "facevae sample --ckpt THIS_FOLDER --n 64 --out faces.png", "```", "",
        *([f"`{SHARP_DECODER}` is a decoder fine-tuned for sharper faces on the same latents, with the "
           "encoder frozen; it draws by default, and `--decoder likelihood` draws with the model's own.", ""]
          if sharp else []),
        "## Training data", "",
        f"CelebA aligned faces (train partition), center crop {cfg.data.crop}, resized to "
        f"{m.image_size}x{m.image_size}{', random horizontal flips' if cfg.data.flip else ''}.", "",
        "## Config", "", "```yaml", cfg.to_yaml().rstrip(), "```", "",
        "## Metrics", "", *(_bundled_metric_lines(bundled) if bundled else _metric_lines(run_dir)), "",
        "## Licence", "",
        "CelebA is licensed for non-commercial research purposes only; so are these weights, "
        "which were trained on it. The facevae code is MIT-licensed.", "",
    ]
    return "\n".join(lines)


def _facevae_link() -> str:
    """facevae, linked to the project's page when its metadata ([project.urls] in pyproject.toml) names one."""
    url = _project_url()
    return f"[facevae]({url})" if url else "facevae"


def _project_url() -> str | None:
    try:
        urls = metadata("facevae").get_all("Project-URL") or []  # "Label, https://..." per [project.urls] entry
    except PackageNotFoundError:  # run from a source tree that was never installed
        return None
    return urls[0].split(",", 1)[-1].strip() if urls else None


def _bundled_metric_lines(ckpt: Checkpoint) -> list[str]:
    """The measurements shipped beside a bundled model's weights (<name>.metrics.json), if taken on these weights."""
    path = ckpt.weights.with_name(f"{ckpt.weights.stem}.{BUNDLED_METRICS}")
    try:
        shipped = json.loads(path.read_text())
    except (OSError, ValueError):
        shipped = {}
    if shipped.get("weights_id") != ckpt.weights_id:  # measured on other weights: quoting them would mislead
        return ["No metrics were recorded with this model."]
    lines = [f"Measured on these weights (`{ckpt.weights_id}`); {shipped['source']}:", ""]
    return lines + [f"- {r['name']}: {r['value']:.2f} ({r['protocol']})" for r in shipped["metrics"]]


def _metric_lines(run_dir: Path | None) -> list[str]:
    rows = _last_epoch_row(RunFolder(run_dir).metrics) if run_dir else {}
    lines = [f"- {k}: {v:.4g}" for k, v in rows.items() if k.startswith("val_") and isinstance(v, (int, float))]
    if rows:
        lines.insert(0, f"Validation losses (nats per image) at step {rows.get('step', '?')}:")
    fid = _evaluated(run_dir)
    lines += [f"- {k}: {v:.4g}" for k, v in fid.items()]
    return lines or ["No metrics were recorded with this model."]


def _last_epoch_row(path: Path) -> dict:
    if not path.is_file():
        return {}
    last: dict = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if any(k.startswith("val_") for k in row):
            last = row
    return last


def _evaluated(run_dir: Path | None) -> dict[str, float]:
    """Top-level numbers of `facevae evaluate --out RUN/eval`, when it was run there."""
    path = RunFolder(run_dir).eval_metrics if run_dir else None
    if path is None or not path.is_file():
        return {}
    try:
        metrics = json.loads(path.read_text())
    except ValueError:
        return {}
    wanted = {k: metrics[k] for k in EVALUATED if isinstance(metrics.get(k), dict)}
    return {f"evaluate {k}": v for k, v in _numbers(wanted).items()}


def _numbers(tree: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_numbers(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[prefix + k] = v
    return out
