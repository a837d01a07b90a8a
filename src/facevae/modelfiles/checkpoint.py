"""Checkpoints as single safetensors files, written atomically, never unpickled.

A run folder holds:
  config.yaml              the run's configuration
  checkpoint.safetensors   model (+ EMA) weights, optimizer and trainer state
  model.safetensors        the weights later commands use (EMA when present)
Each file is written to a temp name and renamed, so a kill at any moment leaves
the previous file loadable. Nested state (optimizer dicts, RNG states) is split
into tensors and a JSON skeleton kept in the safetensors metadata.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, load_file, safe_open, save_file

from facevae.config import RunConfig
from facevae.errors import FacevaeError, did_you_mean
from facevae.io import atomic_write
from facevae.modelfiles.device import memory_of
from facevae.models.size import check_fits
from facevae.models.vae import VAE, build_model

# the run-folder names live in facevae.runfolder; re-exported here, where most modules import them
from facevae.runfolder import CHECKPOINT, CONFIG, WEIGHTS  # noqa: E402
from facevae.modelfiles import BUNDLED, BUNDLED_NAMES  # noqa: E402,F401  (re-exported)
CONFIG_JSON = "config.json"  # a Hugging Face Hub folder's config (see modelfiles.pretrained)
MODEL_TYPE = "facevae"


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "s") -> Any:
    """Replace tensors in a nested structure by references; return a JSON-able skeleton."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        # pairs, not a JSON object, so integer keys (optimizer state) survive
        return {"__dict__": [[k, flatten(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    return obj


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__dict__" in skeleton:
            return {k: unflatten(v, tensors) for k, v in skeleton["__dict__"]}
        if "__list__" in skeleton:
            return [unflatten(v, tensors) for v in skeleton["__list__"]]
    return skeleton


def first_nonfinite(named: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating tensor holding a NaN or inf, or None.

    One flag per tensor is computed on the tensors' device and read once, so on CUDA the
    check costs a single host sync, at checkpoint time only.
    """
    floats = {k: v for k, v in named.items() if v.is_floating_point()}
    if not floats:
        return None
    device = next(iter(floats.values())).device  # optimizer step counts may sit on the CPU
    ok = torch.stack([v.detach().isfinite().all().to(device) for v in floats.values()])
    if bool(ok.all()):
        return None
    return next(k for k, good in zip(floats, ok.tolist()) if not good)


def _save_file(tensors: dict[str, torch.Tensor], path: Path, meta: dict[str, str]) -> None:
    try:
        save_file(tensors, str(path), metadata=meta)
    except SafetensorError as e:  # safetensors reports a failed write (a full disk) as its own error
        raise OSError(str(e)[:120]) from None


def save_checkpoint(run_dir: Path, cfg: RunConfig, model_state: dict, state: dict, ema_state: dict | None = None) -> None:
    """Write the full training checkpoint, then the weights file for inference."""
    tensors: dict[str, torch.Tensor] = {}
    meta = {
        "config": cfg.to_yaml(),
        "model": json.dumps(flatten(model_state, tensors, "model")),
        "state": json.dumps(flatten(state, tensors, "state")),
    }
    if ema_state is not None:
        meta["ema"] = json.dumps(flatten(ema_state, tensors, "ema"))
    atomic_write(run_dir / CHECKPOINT, lambda tmp: _save_file(tensors, tmp, meta))
    save_weights(run_dir / WEIGHTS, cfg, ema_state if ema_state is not None else model_state,
                 {"step": str(state.get("step", 0))})


def save_state(path: Path, cfg: RunConfig, state: dict) -> None:
    """Any nested training state (module and optimizer dicts, counters) as one safetensors file, atomically."""
    tensors: dict[str, torch.Tensor] = {}
    meta = {"config": cfg.to_yaml(), "state": json.dumps(flatten(state, tensors, "state"))}
    atomic_write(Path(path), lambda tmp: _save_file(tensors, tmp, meta))


def load_state(path: Path) -> tuple[RunConfig, dict]:
    """(config, state) of a `save_state` file."""
    tensors, meta = _open(Path(path))
    if "config" not in meta or "state" not in meta:
        raise FacevaeError(f"{path} is not a facevae state file: delete it to start afresh")
    return RunConfig.from_yaml(meta["config"]), unflatten(json.loads(meta["state"]), tensors)


def save_weights(path: Path, cfg: RunConfig, model_state: dict, extra: dict[str, str] | None = None,
                 dtype: torch.dtype | None = None) -> None:
    tensors = {k: (v.to(dtype) if dtype and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in model_state.items()}
    meta = {"config": cfg.to_yaml(), "format": "facevae-weights-1", **(extra or {})}
    atomic_write(Path(path), lambda tmp: _save_file(tensors, tmp, meta))


def _open(path: Path, tensors: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; tensors=False reads the header alone."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return (load_file(str(path)) if tensors else {}), meta
    except (SafetensorError, OSError, ValueError) as e:
        raise FacevaeError(f"{path} is not a readable facevae checkpoint ({str(e)[:80]}): pick another --ckpt") from None


def load_checkpoint(run_dir: Path) -> tuple[RunConfig, dict, dict, dict | None]:
    """(config, model state, trainer state, EMA state or None) of a run folder."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise FacevaeError(f"no checkpoint in {run_dir}: nothing to resume; drop --resume to start afresh")
    tensors, meta = _open(path)
    if "config" not in meta or "model" not in meta:
        raise FacevaeError(f"{path} is not a facevae training checkpoint: pick the run folder that wrote it")
    cfg = RunConfig.from_yaml(meta["config"])
    model_state = unflatten(json.loads(meta["model"]), tensors)
    state = unflatten(json.loads(meta["state"]), tensors)
    ema = unflatten(json.loads(meta["ema"]), tensors) if "ema" in meta else None
    return cfg, model_state, state, ema


def bundled_weights(name: str = BUNDLED) -> Path:
    """The weights file of a model shipped inside the package, by its name."""
    if name not in BUNDLED_NAMES:
        raise FacevaeError(f"no bundled model is called {name!r}{did_you_mean(name, BUNDLED_NAMES)}; "
                           f"the bundled models are: {', '.join(BUNDLED_NAMES)}")
    return Path(str(resources.files("facevae") / "pretrained" / f"{name}.safetensors"))


def installed_bundle(name: str = BUNDLED) -> Path:
    """`bundled_weights`, checked to be on disk: a listed model missing from this install says so."""
    path = bundled_weights(name)
    if not path.is_file():
        raise FacevaeError(f"the bundled model {name} is missing from this install: reinstall facevae or pass --ckpt RUN")
    return path


def is_bundled_name(ckpt: str | Path | None) -> bool:
    """Whether `ckpt` names a bundled model rather than a path (an existing path always wins)."""
    return ckpt is None or str(ckpt) == "" or (str(ckpt) in BUNDLED_NAMES and not Path(str(ckpt)).exists())


def resolve_weights(ckpt: str | Path | None) -> Path:
    """A run folder, a weights file, a bundled name, or None for the default bundled model -> the weights file."""
    if is_bundled_name(ckpt):
        return installed_bundle(str(ckpt or BUNDLED))
    path = Path(ckpt).expanduser()
    if path.is_dir():
        path = path / WEIGHTS
        if not path.is_file():
            raise FacevaeError(f"{ckpt} holds no {WEIGHTS}: is it a facevae run folder that finished a checkpoint?")
        return path
    if not path.exists():
        raise FacevaeError(f"checkpoint {ckpt} does not exist: pass a run folder, a .safetensors file or a bundled "
                           f"name ({', '.join(BUNDLED_NAMES)})")
    return path


def read_config(ckpt: str | Path | None = None) -> RunConfig:
    """The config of a run folder, a weights file, a Hub folder or the bundled model, without loading the weights."""
    path = resolve_weights(ckpt)
    return _config_of(path, _open(path, tensors=False)[1])


@dataclass(frozen=True)
class Checkpoint:
    """A loaded model with everything derived from where it came from, resolved once.

    `digest` is the SHA-1 of exactly the bytes the weights were loaded from, so the
    artefacts keyed by it (fitted samplers, attribute vectors, cached latents) match
    the model in memory even while a training run replaces the file.
    """

    model: VAE  # eval mode, float32
    config: RunConfig
    weights: Path  # the weights file read
    run_dir: Path | None  # the folder derived artefacts are kept in; None for the bundled model
    digest: str
    is_bundled: bool
    step: int | None  # the training step the weights file records, when it does
    source: str  # what was asked for: "bundled <name>" or the --ckpt path as given

    @property
    def weights_id(self) -> str:
        """Short form of the digest, in the names of files derived from these weights."""
        return self.digest[:12]


def load_model(ckpt: str | Path | None = None, device: str | torch.device = "cpu") -> Checkpoint:
    """The model and its config from a run folder, a weights file, a Hub folder or (None) the bundled model."""
    path = resolve_weights(ckpt)
    try:
        data = path.read_bytes()
        tensors, meta = load(data), _metadata(data)
    except (SafetensorError, OSError, ValueError) as e:
        raise FacevaeError(f"{path} is not a readable facevae checkpoint ({str(e)[:80]}): pick another --ckpt") from None
    cfg = _config_of(path, meta)
    bad = first_nonfinite(tensors)
    if bad is not None:
        raise FacevaeError(f"weights in {path} are not finite ({bad} holds NaN or inf): the run diverged; "
                           "pick an earlier checkpoint or retrain with a lower train.lr")
    check_fits(cfg.model, memory_of(torch.device("cpu"))[0])  # the model is built on the CPU first
    model = build_model(cfg.model)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    except RuntimeError:
        raise FacevaeError(f"weights in {path} do not match the model its config describes: the file is damaged") from None
    bundled = path.resolve().parent == bundled_weights().resolve().parent
    step = meta.get("step")
    return Checkpoint(model.to(device).eval(), cfg, path, None if bundled else path.parent,
                      weights_digest(data), bundled, int(step) if step is not None else None,
                      f"bundled {path.stem}" if bundled else str(ckpt))


def weights_digest(data: bytes) -> str:
    """What pairs a weights file with the files made for it (sharp decoders, sampler fits): the SHA-1 of its bytes."""
    return hashlib.sha1(data).hexdigest()


def _metadata(data: bytes) -> dict[str, str]:
    """The metadata of safetensors bytes: an 8-byte little-endian header length, then a JSON header."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + size]).get("__metadata__") or {}


def _config_of(path: Path, meta: dict[str, str]) -> RunConfig:
    """The config in the weights' metadata, else in a Hub folder's config.json beside them."""
    if "config" in meta:
        return RunConfig.from_yaml(meta["config"])
    if (path.parent / CONFIG_JSON).is_file():
        return read_config_json(path.parent / CONFIG_JSON)
    raise FacevaeError(f"{path} carries no facevae config: it was not written by facevae; pick another --ckpt")


def config_json(cfg: RunConfig) -> str:
    return json.dumps({"model_type": MODEL_TYPE, **cfg.to_dict()}, indent=2) + "\n"


def read_config_json(path: Path) -> RunConfig:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise FacevaeError(f"{path} is not a readable config.json ({type(e).__name__}): pick another --ckpt") from None
    if not isinstance(raw, dict) or raw.pop("model_type", None) != MODEL_TYPE:
        raise FacevaeError(f"{path} does not describe a facevae model (model_type {MODEL_TYPE!r}): pick another --ckpt")
    return RunConfig.from_dict(raw)

