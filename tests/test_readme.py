"""The README's Python API example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_example_runs(tmp_path, monkeypatch, capsys, one_thread):
    if not README.is_file():
        pytest.skip("not a source checkout")
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- tested by tests/test_readme.py -->\n```python\n(.*?)```", text, re.S)
    assert match, "the tested example is missing from README.md"
    monkeypatch.chdir(tmp_path)
    exec(compile(match.group(1), "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    accuracy = float(re.search(r"test accuracy (\d\.\d{3})", out).group(1))
    assert accuracy > 0.25  # 80 steps on 256 images beat chance (0.1) (seen: 0.45)
    assert "Prediction(label=" in out and "(1, 2, 17, 17)" in out  # the CLS token and 4x4 patches of 2x2 pixels
    assert (tmp_path / "runs" / "tiny-vit-export" / "model.safetensors").is_file()
