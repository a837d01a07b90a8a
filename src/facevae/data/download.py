"""Fetch the official CelebA files and unpack them into the original layout.

The result under ROOT is what torchvision and most CelebA code expect::

    ROOT/img_align_celeba/000001.jpg ... 202599.jpg
    ROOT/list_attr_celeba.txt
    ROOT/list_eval_partition.txt
    ROOT/identity_CelebA.txt
    ROOT/list_bbox_celeba.txt, ROOT/list_landmarks_align_celeba.txt  (optional)
    ROOT/img_align_celeba.zip   (kept: its checksum lets a rerun skip everything)

What is fetched is a *manifest*: a list of `RemoteFile` (name, URL, md5 and/or
sha256, whether to unzip). The default one points at the official Google Drive
files (the ids and md5s of torchvision's ``CelebA.file_list``) through Drive's
direct-download endpoint. Drive often refuses busy files ("quota exceeded")
with a web page; that page is detected and the error suggests a mirror:
``--base-url URL`` fetches every file as ``URL/NAME``, and ``--manifest FILE``
(JSON or YAML) replaces the list altogether::

    base_url: https://mirror.example.org/celeba   # optional
    files:                                        # optional: default files
      - {name: img_align_celeba.zip, md5: 00d2c5bc6d35e252742224ab0c1e8fcb, unzip: true}
      - {name: list_attr_celeba.txt, url: https://..., sha256: ...}

Every step can be killed and rerun: downloads go to ``NAME.part`` and resume
with an HTTP Range request, a file only gets its final name once its checksum
matches, and the archive is unpacked into a hidden folder that is renamed into
place only when complete.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

import yaml
from tqdm import tqdm

from facevae.errors import FacevaeError

__all__ = [
    "DEFAULT_MANIFEST",
    "RemoteFile",
    "default_manifest",
    "download_celeba",
    "fetch_file",
    "load_manifest",
    "resolve_manifest",
    "unpack_zip",
]

CHUNK = 1 << 20
# A stalled connection should fail (keeping the .part) rather than hang forever.
TIMEOUT_S = 60.0
USER_AGENT = "facevae-download/0.1 (+python-urllib)"


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file of the data set: where to get it and how to recognise it."""

    name: str
    url: str
    md5: str | None = None
    sha256: str | None = None
    unzip: bool = False
    # Not fetched unless asked for by name (bounding boxes, landmarks).
    optional: bool = False
    # How many files the archive unpacks to, so that a run can trust an
    # unpacked folder whose archive the user has deleted to save space.
    members: int | None = None

    def __post_init__(self) -> None:
        # The name becomes a path under ROOT, so it must not climb out of it.
        if not isinstance(self.name, str) or self.name in ("", ".", "..") or any(c in self.name for c in "/\\"):
            raise FacevaeError(f"file name {self.name!r} must be a plain file name")
        for algo in ("md5", "sha256"):
            if getattr(self, algo) is not None and not isinstance(getattr(self, algo), str):
                raise FacevaeError(f"{self.name}: {algo} must be a hex string")
        if not (self.md5 or self.sha256):
            raise FacevaeError(f"{self.name} needs an md5 or sha256 so the download can be verified")


_GDRIVE = "https://drive.usercontent.google.com/download?export=download&confirm=t&id="

DEFAULT_MANIFEST: tuple[RemoteFile, ...] = (
    RemoteFile("list_attr_celeba.txt", _GDRIVE + "0B7EVK8r0v71pblRyaVFSWGxPY0U",
               md5="75e246fa4810816ffd6ee81facbd244c"),
    RemoteFile("list_eval_partition.txt", _GDRIVE + "0B7EVK8r0v71pY0NSMzRuSXJEVkk",
               md5="d32c9cbf5e040fd4025c592c306e6668"),
    RemoteFile("identity_CelebA.txt", _GDRIVE + "1_ee_0u7vcNLOfNLegJRHmolfH5ICW-XS",
               md5="32bd1bd63d3c78cd57e08160ec5ed1e2"),
    RemoteFile("list_bbox_celeba.txt", _GDRIVE + "0B7EVK8r0v71pbThiMVRxWXZ4dU0",
               md5="00566efa6fedff7a56946cd1c10f1c16", optional=True),
    RemoteFile("list_landmarks_align_celeba.txt", _GDRIVE + "0B7EVK8r0v71pd0FJY3Blby1HUTQ",
               md5="cc24ecafdb5b50baae59b03474781f8c", optional=True),
    RemoteFile("img_align_celeba.zip", _GDRIVE + "0B7EVK8r0v71pZjFTYXZWM3FlRnM",
               md5="00d2c5bc6d35e252742224ab0c1e8fcb", unzip=True, members=202_599),
)


# ---------------------------------------------------------------- manifest


def with_base_url(entries: Sequence[RemoteFile], base_url: str) -> list[RemoteFile]:
    """The same files, each fetched from ``BASE_URL/NAME``."""
    return [dataclasses.replace(e, url=_join_url(base_url, e.name)) for e in entries]


def _join_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{urllib.parse.quote(name)}"


def default_manifest(base_url: str | None = None) -> list[RemoteFile]:
    """The official CelebA files, optionally from a mirror at `base_url`."""
    entries = list(DEFAULT_MANIFEST)
    return with_base_url(entries, base_url) if base_url else entries


_ENTRY_KEYS = {f.name for f in dataclasses.fields(RemoteFile)}


def load_manifest(path: str | Path, base_url: str | None = None) -> list[RemoteFile]:
    """Read a JSON or YAML manifest; `base_url`, when given, overrides every URL."""
    path = Path(path).expanduser()
    data = _read_structured(path)
    if isinstance(data, list):
        data = {"files": data}
    if not isinstance(data, dict) or set(data) - {"base_url", "files"}:
        raise FacevaeError(f"{path}: a manifest is a list of files or a mapping with keys "
                           "'base_url' and 'files'")
    base = base_url or data.get("base_url")
    if "files" not in data:
        return default_manifest(base)
    if not isinstance(data["files"], list) or not data["files"]:
        raise FacevaeError(f"{path}: 'files' must be a non-empty list")
    entries = [_parse_entry(raw, base, path) for raw in data["files"]]
    return with_base_url(entries, base_url) if base_url else entries


def _read_structured(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FacevaeError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise FacevaeError(f"{path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
                           f"{_one_line(exc)}") from exc


def _parse_entry(raw: object, base_url: str | None, path: Path) -> RemoteFile:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise FacevaeError(f"{path}: every file needs at least a 'name' (got {raw!r})")
    name = raw["name"]
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise FacevaeError(f"{path}: unknown key(s) {sorted(unknown)} for {name}; "
                           f"allowed: {sorted(_ENTRY_KEYS)}")
    url = raw.get("url") or (_join_url(base_url, name) if base_url else None)
    if not url:
        raise FacevaeError(f"{path}: no URL for {name}; add 'url' to it, 'base_url' to the manifest, "
                           "or pass --base-url")
    fields = {**raw, "url": url, "unzip": bool(raw.get("unzip", name.lower().endswith(".zip")))}
    try:
        return RemoteFile(**fields)
    except FacevaeError as exc:
        raise FacevaeError(f"{path}: {exc}") from None


def resolve_manifest(manifest: str | Path | Sequence[RemoteFile] | None = None,
                     base_url: str | None = None) -> list[RemoteFile]:
    """The entries `download_celeba` would consider, before picking by name."""
    if manifest is None:
        return default_manifest(base_url)
    if isinstance(manifest, (str, Path)):
        return load_manifest(manifest, base_url)
    entries = list(manifest)
    return with_base_url(entries, base_url) if base_url else entries


def _select(entries: list[RemoteFile], files: Sequence[str] | None) -> list[RemoteFile]:
    if files is None:
        return [e for e in entries if not e.optional]
    by_name = {e.name: e for e in entries}
    missing = [f for f in files if f not in by_name]
    if missing:
        raise FacevaeError(f"unknown file(s) {missing}; the manifest has: {', '.join(by_name)}")
    return [by_name[f] for f in dict.fromkeys(files)]


# ---------------------------------------------------------------- download


def fetch_file(entry: RemoteFile, root: Path, *, progress: bool = True) -> bool:
    """Make ROOT/NAME a verified copy of `entry`; False when it already was one."""
    final = Path(root) / entry.name
    if final.is_file() and _checksum_problem(final, entry) is None:
        return False
    part = final.with_name(final.name + ".part")
    _download(entry, part, progress)
    problem = _checksum_problem(part, entry)
    if problem:
        part.unlink()
        raise FacevaeError(f"{entry.name} from {entry.url} is corrupt ({problem}); the download was "
                           "deleted: rerun to fetch it again, or fix its URL/checksum in the manifest")
    os.replace(part, final)
    return True


def _download(entry: RemoteFile, part: Path, progress: bool) -> None:
    """Fill `part` with the whole remote file, resuming what is already there."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        with _open(entry.url, offset) as response:
            start = _write_offset(response, offset, entry, part)
            _stream(response, part, start, entry.name, progress)
    except urllib.error.HTTPError as exc:
        # 416 on a resume: the .part is already whole (killed before the rename).
        if exc.code == 416 and offset:
            exc.close()
            return
        raise _network_error(entry, part, f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise _network_error(entry, part, _one_line(reason) or type(exc).__name__) from exc


def _open(url: str, offset: int) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)


def _write_offset(response: http.client.HTTPResponse, offset: int, entry: RemoteFile, part: Path) -> int:
    """Where the response body goes in `part`: 0 unless the server honoured our Range."""
    if "text/html" in response.headers.get("Content-Type", "") and not entry.name.endswith((".html", ".htm")):
        raise FacevaeError(f"{entry.url} answered with a web page instead of {entry.name} (Google Drive "
                           "quota or a login page?): pass --base-url of a mirror, or download it by hand "
                           f"into {part.parent}")
    if response.status != 206:
        return 0  # a plain 200 is the whole file: start over
    start = _content_range_start(response.headers.get("Content-Range", ""))
    if start != offset:
        raise FacevaeError(f"{entry.url} resumed at the wrong byte ({start}, wanted {offset}): "
                           f"delete {part} and rerun")
    return offset


def _content_range_start(header: str) -> int | None:
    # "bytes 100-999/1000"
    unit, _, spec = header.strip().partition(" ")
    first = spec.partition("-")[0]
    return int(first) if unit == "bytes" and first.isdigit() else None


def _stream(response: http.client.HTTPResponse, part: Path, start: int, name: str, progress: bool) -> None:
    length = response.headers.get("Content-Length")
    total = start + int(length) if length and length.isdigit() else None
    with open(part, "ab" if start else "wb") as out, tqdm(
        total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
        desc=name, disable=not progress, leave=False,
    ) as bar:
        while chunk := response.read(CHUNK):
            out.write(chunk)
            bar.update(len(chunk))
    # http.client returns a short body without complaint when the peer hangs up.
    if total is not None and part.stat().st_size < total:
        raise OSError(f"connection closed after {part.stat().st_size} of {total} bytes")


def _network_error(entry: RemoteFile, part: Path, reason: str) -> FacevaeError:
    kept = f"; rerun to resume from {part.name}" if part.exists() and part.stat().st_size else "; rerun to retry"
    return FacevaeError(f"downloading {entry.name} from {entry.url} failed ({reason}){kept}, "
                        "or pass --base-url of a mirror")


def _checksum_problem(path: Path, entry: RemoteFile) -> str | None:
    """None when `path` matches every checksum `entry` gives, else what differs."""
    wanted = {algo: value.lower() for algo, value in (("md5", entry.md5), ("sha256", entry.sha256)) if value}
    hashers = {algo: hashlib.new(algo) for algo in wanted}
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for h in hashers.values():
                h.update(chunk)
    for algo, value in wanted.items():
        got = hashers[algo].hexdigest()
        if got != value:
            return f"{algo} {got}, expected {value}"
    return None


def _one_line(obj: object) -> str:
    return " ".join(str(obj).split())


# ---------------------------------------------------------------- unpack


def unpack_zip(archive: Path, root: Path, *, progress: bool = True) -> Path:
    """Unpack ROOT/NAME.zip into ROOT/NAME (its top folder, if any, becomes NAME).

    Skipped when ROOT/NAME already holds every member at its size. Otherwise the
    archive goes into a hidden sibling folder that replaces ROOT/NAME only once
    complete, so an interrupted run never leaves a folder that looks finished.
    """
    archive, root = Path(archive), Path(root)
    target = root / _folder_name(archive.name)
    try:
        with zipfile.ZipFile(archive) as zf:
            plan = _extraction_plan(zf, target.name, archive)
            if _holds_all(target, plan):
                return target
            staging = root / f".{target.name}.unpacking"
            shutil.rmtree(staging, ignore_errors=True)  # left by a killed run
            staging.mkdir()
            _extract(zf, plan, staging, f"unpacking {archive.name}", progress)
    except zipfile.BadZipFile as exc:
        raise FacevaeError(f"{archive} is not a valid zip ({_one_line(exc)}): delete it and rerun") from exc
    _swap_in(staging, target)
    return target


def _folder_name(archive_name: str) -> str:
    return archive_name[:-4] if archive_name.lower().endswith(".zip") else archive_name + ".d"


def _extraction_plan(zf: zipfile.ZipFile, folder: str, archive: Path) -> list[tuple[zipfile.ZipInfo, str]]:
    """(member, path inside the target folder) for every file; refuses unsafe names."""
    members = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    for info in members:
        if not _is_safe_member(info.filename):
            raise FacevaeError(f"{archive} holds an unsafe path {info.filename!r} (escapes the target "
                               "folder); refusing to unpack it: delete the archive and get it from the "
                               "official source")
    names = [i.filename.replace("\\", "/") for i in members]
    prefix = folder + "/"
    if names and all(n.startswith(prefix) for n in names):
        names = [n[len(prefix):] for n in names]
    return list(zip(members, names))


def _is_safe_member(name: str) -> bool:
    posix = PurePosixPath(name.replace("\\", "/"))
    win = PureWindowsPath(name)
    return bool(name) and not posix.is_absolute() and not win.drive and not win.root \
        and ".." not in posix.parts


def _holds_all(target: Path, plan: list[tuple[zipfile.ZipInfo, str]]) -> bool:
    if not target.is_dir():
        return False
    for info, rel in plan:
        try:
            if (target / rel).stat().st_size != info.file_size:
                return False
        except OSError:
            return False
    return True


def _extract(zf: zipfile.ZipFile, plan: list[tuple[zipfile.ZipInfo, str]], staging: Path,
             label: str, progress: bool) -> None:
    made: set[Path] = {staging}
    for info, rel in tqdm(plan, desc=label, unit="file", disable=not progress, leave=False):
        dest = staging / rel
        if dest.parent not in made:
            dest.parent.mkdir(parents=True, exist_ok=True)
            made.add(dest.parent)
        with zf.open(info) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)


def _swap_in(staging: Path, target: Path) -> None:
    # An incomplete folder (a manual unzip cut short) is moved aside, not merged
    # into, so that a half-written JPEG from it can never survive.
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(target)


def _unpacked_without_archive(root: Path, entry: RemoteFile) -> bool:
    """The archive was deleted after unpacking and its folder still looks whole."""
    if (root / entry.name).exists() or (root / (entry.name + ".part")).exists():
        return False
    folder = root / _folder_name(entry.name)
    if not folder.is_dir():
        return False
    # Our own unpacking is atomic, so without a count the folder's existence suffices.
    return entry.members is None or sum(1 for e in os.scandir(folder) if e.is_file()) >= entry.members


# ---------------------------------------------------------------- entry point


def download_celeba(
    root: Path,
    *,
    base_url: str | None = None,
    manifest: str | Path | Sequence[RemoteFile] | None = None,
    files: Sequence[str] | None = None,
    progress: bool = True,
) -> Path:
    """Download, verify and unpack CelebA into `root`; returns `root`.

    `manifest` is a JSON/YAML file or a list of `RemoteFile` (default: the
    official files); `base_url` fetches every file from ``BASE_URL/NAME``
    instead; `files` picks entries by name (default: all but the optional ones).
    Files already present with the right checksum are not fetched again.
    """
    root = Path(root).expanduser()
    entries = _select(resolve_manifest(manifest, base_url), files)
    root.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        if entry.unzip and _unpacked_without_archive(root, entry):
            continue
        fetch_file(entry, root, progress=progress)
        if entry.unzip:
            unpack_zip(root / entry.name, root, progress=progress)
    return root
