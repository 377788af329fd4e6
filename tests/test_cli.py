"""The command line in a subprocess: help, and clear one-line errors without tracebacks."""

import os
import subprocess
import sys

import pytest


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": ""}
    return subprocess.run(
        [sys.executable, "-m", "attnlab", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def test_help_lists_the_groups(tmp_path):
    out = run_cli("--help", cwd=tmp_path)
    assert out.returncode == 0
    for line in ("task: ", "model: ", "attention: ", "data: "):
        assert line in out.stdout
    assert "rnn_attn" in out.stdout and "additive" in out.stdout and "vision" in out.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["task=translation", "model=vit"], "error: model=vit does not fit task=translation"),
        (["task=vision", "model=rnn_attn"], "error: model=rnn_attn does not fit task=vision"),
        (["model=transformer", "attention=none"], "error: attention=none works only with model=rnn_attn"),
    ],
)
def test_invalid_pair_is_one_line_nonzero_no_traceback(tmp_path, args, message):
    out = run_cli(*args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in out.stderr + out.stdout
    assert not (tmp_path / "outputs").exists()  # nothing written to the working directory


def test_unknown_option_lists_valid_choices(tmp_path):
    out = run_cli("attention=cosin", cwd=tmp_path)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "scaled_dot" in out.stderr and "additive" in out.stderr
