"""The notebooks: stored without outputs, and each runs end to end at ATTNLAB_NOTEBOOK_SIZE=tiny.

Each notebook is executed with nbclient in a kernel that runs this interpreter (a kernelspec
written for the test, so a system-wide "python3" kernel of another Python cannot be picked up),
with its working directory in notebooks/ and its runs in a temporary folder. A last cell, added
by the test, prints facts from the notebook's own variables (the rows of its results table) as
JSON, so the test checks what the notebook computed, not only that it did not fail.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
KERNEL = "attnlab-test"

# What the added last cell prints, and the variants (sorted names) each notebook must have compared.
FACTS = """
import json
print(json.dumps({"variants": sorted(r.variant for r in rows), "seeds": [r.n_seeds for r in rows],
                  "metric": rows[0].metric_names[0], "values": [r.primary.mean for r in rows]}))
"""
EXPECTED_VARIANTS = {
    "01_rnn_attention_variants.ipynb": [f"attention={s}" for s in ("additive", "dot", "general", "none")],
    "02_transformer_vs_rnn.ipynb": ["model=rnn_attn", "model=transformer"],
    "03_vit_positional_encodings.ipynb": [f"model.posenc={pe}" for pe in ("learned", "none", "sincos2d", "sinusoidal")],
    "04_attention_gym.ipynb": ["attention=dot", "attention=none"],
}


def test_every_notebook_is_checked():
    assert NAMES == sorted(EXPECTED_VARIANTS)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for n, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name} cell {n} keeps outputs; strip them"
    assert "widgets" not in nb.metadata


@pytest.fixture(scope="module")
def kernel(tmp_path_factory) -> dict[str, str]:
    """Environment variables for a kernelspec that runs this interpreter (sys.executable)."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    return {"JUPYTER_PATH": str(root)}


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_at_tiny_size(name, kernel, tmp_path, monkeypatch):
    for key, value in {**kernel, "ATTNLAB_NOTEBOOK_SIZE": "tiny", "ATTNLAB_NOTEBOOK_RUNS": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this environment
    for key in ("ATTNLAB_NOTEBOOK_OVERRIDES", "ATTNLAB_NOTEBOOK_FIGURES", "MPLBACKEND"):  # MPLBACKEND: inline plots
        monkeypatch.delenv(key, raising=False)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(FACTS))
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=240, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError, with the failing cell and traceback, on any error
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    facts = json.loads(printed.strip().splitlines()[-1])
    # one row per variant, named by its distinguishing overrides (in tiny 02 also the per-model toy widths)
    assert len(facts["variants"]) == len(EXPECTED_VARIANTS[name])
    for variant, expected in zip(facts["variants"], EXPECTED_VARIANTS[name]):
        assert variant == expected or variant.startswith(expected + " "), (variant, expected)
    assert all(n >= 1 for n in facts["seeds"]) and all(v is not None for v in facts["values"])
    assert facts["metric"] == {"03": "accuracy", "04": "exact_match"}.get(name[:2], "bleu")
    assert any((tmp_path / "tiny" / name.removesuffix(".ipynb")).iterdir())  # the runs went where they were told
