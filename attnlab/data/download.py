"""Download, cache and checksum the files that datasets need.

Every remote file is described by a :class:`RemoteFile` (name, URL, sha256). :func:`fetch` keeps
it under ``<cache root>/<subdir>/<name>``: a cached file whose checksum matches is used without
any network access; otherwise the file is downloaded to a temporary ``.part`` file in the same
folder, checked, and renamed into place atomically, so an interrupted or corrupt download is never
mistaken for a good file. When the network is unavailable, the error names the URL and the exact
path where the file can be put by hand.

:func:`safe_extract` unpacks tar or zip archives, refusing members that would land outside the
target folder (absolute paths, ``..``, links pointing outside).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from attnlab import progress
from attnlab.errors import UserError

log = logging.getLogger(__name__)

CACHE_ENV = "ATTNLAB_CACHE"
TIMEOUT_S = 60.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A file on the web with its expected sha256 (lowercase hex)."""

    name: str  # file name inside the cache sub-folder
    url: str
    sha256: str


def cache_root(cache_dir: str | None = None) -> Path:
    """The download cache: ``cache_dir``, else ``$ATTNLAB_CACHE``, else ``~/.cache/attnlab``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "attnlab"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(file: RemoteFile, subdir: str, cache_dir: str | None = None) -> Path:
    """Return the local path of ``file``, downloading it into the cache first if needed.

    Raises :class:`UserError` when the download fails (with the URL and the path to fill by hand)
    or when a cached or downloaded file does not have the expected sha256.
    """
    path = cache_root(cache_dir) / subdir / file.name
    if path.exists():
        _check_sha256(path, file, what="cached file")
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot create the cache folder {path.parent} ({e}); "
            f"set data.cache_dir or ${CACHE_ENV} to a writable folder"
        ) from None
    log.info("downloading %s -> %s", file.url, path)
    part = _download_part(file, path)
    try:
        _check_sha256(part, file, what="downloaded file")
    except UserError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, path)
    return path


def _download_part(file: RemoteFile, path: Path) -> Path:
    """Download ``file.url`` to a fresh ``<name>.*.part`` file beside ``path``; return it."""
    fd, tmp = tempfile.mkstemp(prefix=f"{file.name}.", suffix=".part", dir=path.parent)
    part = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(file.url, timeout=TIMEOUT_S) as r:
            size = int(r.headers.get("Content-Length") or 0) or None
            with progress.bar(desc=file.name, total=size, unit="B", unit_scale=True, unit_divisor=1024) as shown:
                for chunk in iter(lambda: r.read(_CHUNK), b""):
                    out.write(chunk)
                    shown.update(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        part.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise UserError(
            f"could not download {file.url} ({reason}); if you are offline, download it "
            f"elsewhere and put it at {path}"
        ) from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return part


def _check_sha256(path: Path, file: RemoteFile, what: str) -> None:
    actual = sha256_of(path)
    if actual != file.sha256.lower():
        hint = "delete it to download it again" if what == "cached file" else "try again later"
        raise UserError(
            f"{what} {path} has sha256 {actual} but {file.url} should have sha256 "
            f"{file.sha256}: the file is corrupt or a different version; {hint}"
        )


# ----------------------------------------------------------------------------- archives


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract a tar (any compression) or zip ``archive`` into ``dest``; return ``dest``.

    Every member is checked first: one that would be written outside ``dest`` (absolute path,
    ``..``, a link whose target leaves ``dest``) or a special file (device, fifo) makes the whole
    extraction fail with :class:`UserError` before anything is written.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise UserError(f"archive {archive} does not exist")
    dest.mkdir(parents=True, exist_ok=True)
    if tarfile.is_tarfile(archive):
        _extract_tar(archive, dest)
    elif zipfile.is_zipfile(archive):
        _extract_zip(archive, dest)
    else:
        raise UserError(
            f"{archive} is neither a tar nor a zip archive; delete it and download it again"
        )
    return dest


def _inside(dest: Path, member: str, base: PurePosixPath = PurePosixPath()) -> bool:
    """True when ``member`` (relative to ``base`` inside ``dest``) stays inside ``dest``."""
    if PurePosixPath(member).is_absolute() or Path(member).is_absolute():
        return False
    root = dest.resolve()
    target = (root / base / member).resolve()
    return target == root or root in target.parents


def _refuse(archive: Path, member: str, why: str) -> UserError:
    return UserError(f"archive {archive} has member '{member}' {why}; refusing to extract it")


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            if not _inside(dest, m.name):
                raise _refuse(archive, m.name, "outside the target folder")
            if m.issym() and not _inside(dest, m.linkname, PurePosixPath(m.name).parent):
                raise _refuse(archive, m.name, f"linking outside the target folder ({m.linkname})")
            if m.islnk() and not _inside(dest, m.linkname):
                raise _refuse(archive, m.name, f"linking outside the target folder ({m.linkname})")
            if m.ischr() or m.isblk() or m.isfifo():
                raise _refuse(archive, m.name, "that is a device or fifo")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.10.12: a second line of defence
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - old Pythons; members were checked above
            tar.extractall(dest)


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        for name in z.namelist():
            if not _inside(dest, name.replace("\\", "/")):
                raise _refuse(archive, name, "outside the target folder")
        z.extractall(dest)
