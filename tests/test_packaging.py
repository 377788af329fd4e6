"""Packaging: one version source, a licence, typing marker, metadata, no scikit-learn, and the
terms of every dataset attnlab can load written down."""

from __future__ import annotations

from pathlib import Path

import pytest

import attnlab

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")


@pytest.fixture(scope="module")
def project() -> dict:
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("not a source checkout")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_one_version_source(project):
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["hatch"]["version"]["path"] == "attnlab/__init__.py"
    assert attnlab.__version__.count(".") == 2


def test_licence_metadata_and_typing_marker(project):
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert (Path(attnlab.__file__).parent / "py.typed").is_file()
    meta = project["project"]
    assert "License :: OSI Approved :: MIT License" in meta["classifiers"] and meta["keywords"]
    assert not any(d.startswith(("scikit-learn", "scipy")) for d in meta["dependencies"])
    assert any(d.startswith("tensorboard") for d in meta["optional-dependencies"]["dev"])
    assert (ROOT / "CHANGELOG.md").is_file()


def test_every_dataset_has_its_terms_written_down():
    notes = (ROOT / "docs" / "datasets.md").read_text(encoding="utf-8")
    options = sorted(p.stem for p in (ROOT / "conf" / "data").glob("*.yaml"))
    assert options and all(f"`{name}`" in notes for name in options), options
