"""Tests for attnlab.data.download: cache, checksums, offline errors, safe extraction."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from attnlab.data.download import RemoteFile, cache_root, fetch, safe_extract
from attnlab.errors import UserError

CONTENT = b"hello attention\n"
SHA = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a URL fails the test."""

    def forbidden(*args, **kwargs):
        pytest.fail(f"unexpected network access: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path / "env"))
    assert cache_root(str(tmp_path / "arg")) == tmp_path / "arg"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("ATTNLAB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "attnlab"


def test_prefilled_cache_needs_no_network(tmp_path, no_network):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "a.txt").write_bytes(CONTENT)
    f = RemoteFile("a.txt", "https://example.invalid/a.txt", SHA)
    assert fetch(f, "ds", str(tmp_path)) == tmp_path / "ds" / "a.txt"


def test_cache_from_environment(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path))
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "a.txt").write_bytes(CONTENT)
    got = fetch(RemoteFile("a.txt", "https://example.invalid/a", SHA), "ds")
    assert got.read_bytes() == CONTENT


def test_cached_checksum_mismatch_names_both_hashes(tmp_path, no_network):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "a.txt").write_bytes(b"something else")
    bad = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(UserError) as e:
        fetch(RemoteFile("a.txt", "https://example.invalid/a", SHA), "ds", str(tmp_path))
    assert SHA in str(e.value) and bad in str(e.value) and "delete it" in str(e.value)


def test_offline_error_names_url_and_manual_path(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    url = "https://example.invalid/data/a.txt"
    with pytest.raises(UserError) as e:
        fetch(RemoteFile("a.txt", url, SHA), "ds", str(tmp_path))
    msg = str(e.value)
    assert url in msg and str(tmp_path / "ds" / "a.txt") in msg and "\n" not in msg
    assert list((tmp_path / "ds").iterdir()) == []  # no .part left behind


def test_file_url_download(tmp_path):
    src = tmp_path / "remote" / "a.txt"
    src.parent.mkdir()
    src.write_bytes(CONTENT)
    got = fetch(RemoteFile("a.txt", src.as_uri(), SHA), "ds", str(tmp_path / "cache"))
    assert got == tmp_path / "cache" / "ds" / "a.txt" and got.read_bytes() == CONTENT
    assert [p.name for p in got.parent.iterdir()] == ["a.txt"]
    src.unlink()  # second call is served from the cache
    assert fetch(RemoteFile("a.txt", src.as_uri(), SHA), "ds", str(tmp_path / "cache")) == got


def test_bad_download_is_not_kept(tmp_path):
    src = tmp_path / "a.txt"
    src.write_bytes(b"tampered")
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match=SHA):
        fetch(RemoteFile("a.txt", src.as_uri(), SHA), "ds", str(cache))
    assert list((cache / "ds").iterdir()) == []


def _tar_with(tmp_path: Path, name: str, **info) -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        member = tarfile.TarInfo(name)
        for key, value in info.items():
            setattr(member, key, value)
        data = b"" if info else b"pwned"
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    "name, info",
    [
        ("../escape.txt", {}),
        ("/tmp/absolute.txt", {}),
        ("link", {"type": tarfile.SYMTYPE, "linkname": "../../etc/passwd"}),
    ],
)
def test_tar_traversal_refused(tmp_path, name, info):
    archive = _tar_with(tmp_path, name, **info)
    dest = tmp_path / "out"
    with pytest.raises(UserError, match="refusing"):
        safe_extract(archive, dest)
    assert not (tmp_path / "escape.txt").exists() and list(dest.iterdir()) == []


def test_zip_traversal_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("ok.txt", "fine")
        z.writestr("../escape.txt", "pwned")
    with pytest.raises(UserError, match="escape.txt"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_safe_extract_good_archives(tmp_path):
    tgz = tmp_path / "good.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        info = tarfile.TarInfo("dir/a.bin")
        info.size = len(CONTENT)
        tar.addfile(info, io.BytesIO(CONTENT))
    assert (safe_extract(tgz, tmp_path / "t") / "dir" / "a.bin").read_bytes() == CONTENT
    zpath = tmp_path / "good.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("dir/b.txt", CONTENT)
    assert (safe_extract(zpath, tmp_path / "z") / "dir" / "b.txt").read_bytes() == CONTENT
    (tmp_path / "plain.txt").write_text("not an archive")
    with pytest.raises(UserError, match="neither a tar nor a zip"):
        safe_extract(tmp_path / "plain.txt", tmp_path / "p")
