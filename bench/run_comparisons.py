"""Make the full-size comparisons of docs/comparisons.md: execute the notebooks at full size.

    python bench/run_comparisons.py                    # all three notebooks, figures into docs/figures/
    python bench/run_comparisons.py --only 03          # one notebook
    python bench/run_comparisons.py --size tiny --figures check-figures   # check the script in a minute

Each notebook runs in a fresh kernel of this interpreter with

    ATTNLAB_NOTEBOOK_SIZE=full
    ATTNLAB_NOTEBOOK_RUNS=notebooks/runs               (runs in notebooks/runs/full/<notebook>/)
    ATTNLAB_NOTEBOOK_OVERRIDES="trainer.num_threads=1 trainer.progress=false"
    ATTNLAB_NOTEBOOK_FIGURES=docs/figures
    ATTNLAB_NOTEBOOK_JOBS=2                            (two runs at a time, --jobs)
    OMP_NUM_THREADS=1                                  (one thread per run)

so the figures in docs/figures/ are exactly the notebooks' figures, and the training runs are
the notebooks' own (finished runs are reused, as the notebooks do: delete notebooks/runs/full to
start over). The executed notebooks, with their outputs (tables included), are written next to
the runs as notebooks/runs/<size>/<notebook>.ipynb; the tables are also printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
THREADS = 1


def kernelspec(folder: Path) -> str:
    """A kernelspec running this interpreter (not whichever "python3" Jupyter finds first)."""
    spec = folder / "kernels" / "attnlab-bench"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "attnlab-bench", "language": "python"}))
    os.environ["JUPYTER_PATH"] = str(folder)
    return spec.name


def execute(path: Path, kernel: str, out: Path) -> float:
    """Run one notebook (cwd = notebooks/), save it with its outputs to ``out``; wall seconds."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        NotebookClient(nb, kernel_name=kernel, timeout=None, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    finally:
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out)
    return time.perf_counter() - start


def tables(path: Path) -> list[str]:
    """The markdown tables an executed notebook displayed."""
    nb = nbformat.read(path, as_version=4)
    return [o.data["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "display_data" and "text/markdown" in o.get("data", {})]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=[], help="notebook name prefixes, e.g. 01 03")
    parser.add_argument("--size", default="full", choices=["tiny", "full"])
    parser.add_argument("--runs", default=str(NOTEBOOKS / "runs"), help="ATTNLAB_NOTEBOOK_RUNS")
    parser.add_argument("--figures", default=str(ROOT / "docs" / "figures"), help="ATTNLAB_NOTEBOOK_FIGURES")
    parser.add_argument("--jobs", type=int, default=2, help="ATTNLAB_NOTEBOOK_JOBS: runs trained at once")
    args = parser.parse_args(argv)
    os.environ.update(
        ATTNLAB_NOTEBOOK_SIZE=args.size,
        ATTNLAB_NOTEBOOK_RUNS=str(Path(args.runs).resolve()),
        ATTNLAB_NOTEBOOK_OVERRIDES=f"trainer.num_threads={THREADS} trainer.progress=false",
        ATTNLAB_NOTEBOOK_FIGURES=str(Path(args.figures).resolve()),
        ATTNLAB_NOTEBOOK_JOBS=str(args.jobs),
        OMP_NUM_THREADS=str(THREADS),
    )
    paths = [p for p in sorted(NOTEBOOKS.glob("*.ipynb")) if not args.only or p.name.startswith(tuple(args.only))]
    with tempfile.TemporaryDirectory() as jupyter:
        kernel = kernelspec(Path(jupyter))
        for path in paths:
            out = Path(args.runs) / args.size / path.name
            seconds = execute(path, kernel, out)
            print(f"## {path.stem}: {seconds / 60:.1f} min (executed copy: {out})\n")
            for table in tables(out):
                print(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
