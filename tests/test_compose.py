"""Overrides to a checked config before any work: did you mean, +key refused, checkpoint modes
taking the checkpoint's task and model, resume checked first, and one-line errors (exit 2) with no
run folder left behind on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from attnlab import compose
from attnlab.checkpoint import save_checkpoint
from attnlab.errors import UserError


def error(*overrides: str) -> str:
    with pytest.raises(UserError) as err:
        compose.prepare(list(overrides))
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "override,expected",
    [
        ("trainer.epoch=3", "unknown key trainer.epoch (did you mean trainer.epochs?)"),
        ("model.hiden_dim=3", "unknown key model.hiden_dim (did you mean model.hidden_dim?)"),
        ("attention=scaled_dott", "unknown attention=scaled_dott (did you mean scaled_dot?)"),
        ("model=transfomer", "unknown model=transfomer (did you mean transformer?)"),
        ("+trainer.epoch=3", "+trainer.epoch=3: attnlab's config is typed, so keys cannot be added (did you mean trainer.epochs?)"),
        ("++data.vocab=3", "keys cannot be added (did you mean data.vocab_size?)"),
        ("+trainer.epochs=3", "trainer.epochs exists; override it without the +: trainer.epochs=3"),
    ],
)
def test_typos_get_a_suggestion_and_added_keys_are_refused(override, expected):
    assert expected in error(override)


def test_unknown_options_never_list_the_schemas():
    message = error("attention=cosin")
    assert "valid: additive, alibi, cosine, default, dot" in message and "base_" not in message


def test_keys_of_the_chosen_model_are_known():
    compose.prepare(["task=vision", "model.patch_size=4"])  # a vit key, valid once task=vision is chosen
    assert "did you mean" not in error("model.patch_size=4")  # not a key of the RNN


def write_checkpoint(path: Path, task: str, model: str) -> Path:
    save_checkpoint(path, {"model": {}, "config": {"task": {"name": task}, "model": {"name": model}}})
    return path


def test_checkpoint_modes_take_task_and_model_from_the_checkpoint(tmp_path):
    ckpt = write_checkpoint(tmp_path / "vit.pt", "vision", "vit")
    overrides, cfg = compose.prepare(["mode=evaluate", f"checkpoint={ckpt}"])
    assert (cfg.task.name, cfg.model.name, cfg.data.name) == ("vision", "vit", "digits")
    assert overrides[:2] == ["task=vision", "model=vit"]
    # naming the same task is fine; another one is an error that says how to fix it
    compose.prepare(["task=vision", "mode=evaluate", f"checkpoint={ckpt}"])
    message = error("task=translation", "mode=evaluate", f"checkpoint={ckpt}")
    assert "holds a task 'vision', not 'translation'; drop task=translation" in message
    # training ignores checkpoint= for this (it is not read)
    assert compose.prepare([f"checkpoint={ckpt}"])[1].task.name == "translation"


def test_translation_checkpoints_also_give_their_data(tmp_path):
    ckpt = tmp_path / "files.pt"
    save_checkpoint(ckpt, {"model": {}, "config": {"task": {"name": "translation"}, "model": {"name": "transformer"},
                                                   "data": {"name": "files", "path": str(tmp_path / "corpus")}}})
    cfg = compose.prepare(["mode=translate", f"checkpoint={ckpt}"])[1]
    assert (cfg.model.name, cfg.data.name, cfg.data.path) == ("transformer", "files", str(tmp_path / "corpus"))
    other = compose.prepare(["mode=translate", f"checkpoint={ckpt}", "data=multi30k"])[1]  # the command line wins
    assert other.data.name == "multi30k" and other.data.test_split == "test_2016_flickr"


def test_a_missing_checkpoint_fails_before_composition(tmp_path):
    assert "does not exist" in error("mode=translate", f"checkpoint={tmp_path / 'nope.pt'}")


def test_resume_needs_last_pt_in_the_run_folder(tmp_path):
    with pytest.raises(UserError, match="resume=true but .*last.pt does not exist"):
        compose.prepare(["resume=true"], tmp_path)
    with pytest.raises(UserError, match="needs the run folder"):
        compose.prepare(["resume=true"])
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    compose.prepare(["resume=true"], tmp_path)


# ------------------------------------------------------------------ the command line


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYDRA_FULL_ERROR": ""}
    return subprocess.run([sys.executable, "-m", "attnlab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["task=vision", "model=rnn_attn"], "error: model=rnn_attn does not fit task=vision"),
        (["trainer.epoch=3"], "error: unknown key trainer.epoch (did you mean trainer.epochs?)"),
        (["+trainer.epoch=3"], "error: +trainer.epoch=3: attnlab's config is typed, so keys cannot be added"),
        (["model.cell=rnn"], "error: Error merging override model.cell=rnn; Invalid value 'rnn', expected one of [gru, lstm]"),
        (["resume=true"], "error: resume=true but"),
        (["hydra.run.dirr=x"], "error: "),
    ],
)
def test_cli_rejects_with_one_line_exit_2_and_no_folder(tmp_path, args, expected):
    out = cli(*args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), out.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "outputs").exists()


def test_cli_sweep_with_a_typo_is_one_line_exit_2(tmp_path):
    out = cli("-m", "attention=dot,general", "trainer.epoch=1", f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == "error: unknown key trainer.epoch (did you mean trainer.epochs?); " + compose.FULL_CONFIG_HINT
    assert not (tmp_path / "s").exists()


def test_help_page(tmp_path):
    out = cli("--help", cwd=tmp_path)
    assert out.returncode == 0
    text = out.stdout
    for part in ("Modes", "evaluate", "Examples:", "python -m attnlab -m", "--cfg job", "task: translation, vision",
                 "trainer.epochs=10", "passes over the training data", "scaled_dot", "Bahdanau"):
        assert part in text, part
    assert "base_" not in text and "== Config ==" not in text  # no schema names, no Hydra banner or config dump
    assert all(len(line) <= 160 for line in text.splitlines())
