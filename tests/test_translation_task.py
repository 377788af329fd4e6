"""The translation task end to end on a tiny config: train, evaluate, translate, CLI, determinism."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from PIL import Image

from attnlab.__main__ import config_dir
from attnlab.data.pairs import Tokenizers
from attnlab.errors import UserError
from attnlab.runlog import read_metrics
from attnlab.tasks import translation
from attnlab.viz import translation_attention

TINY = [
    "data.max_train_pairs=400",
    "data.max_eval_sentences=12",
    "data.vocab_size=400",
    "model.emb_dim=16",
    "model.hidden_dim=32",
    "model.attn_dim=16",
    "trainer.epochs=2",
    "trainer.max_minutes=0",
    "trainer.max_tokens=1500",
    "trainer.warmup_steps=0",
    "trainer.num_threads=1",
    "trainer.progress=false",
    "decode.beam_size=2",
    "decode.valid_sentences=8",
    "viz.num_examples=2",
]


# The same tiny run with a one- and two-layer Transformer.
TINY_TRANSFORMER = [o for o in TINY if not o.startswith("model.")] + [
    "model=transformer", "model.d_model=32", "model.heads=2", "model.enc_layers=1", "model.dec_layers=2",
    "model.d_ff=64",
]


def make(*overrides: str):
    with initialize_config_dir(config_dir=str(Path(config_dir())), version_base="1.3"):
        return compose(config_name="config", overrides=[*TINY, *overrides])


def cli(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": ""}
    return subprocess.run([sys.executable, "-m", "attnlab", *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """One tiny training run through the command line (``python -m attnlab``) in a subprocess."""
    run_dir = tmp_path_factory.mktemp("train") / "run"
    out = cli(*TINY, f"hydra.run.dir={run_dir}", cwd=run_dir.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_cli_training_writes_the_run_folder_contract(trained):
    run_dir, results = trained
    for name in ("results.json", "metrics.jsonl", "hypotheses.txt", "tokenizer.model",
                 "checkpoints/best.pt", "checkpoints/last.pt", "attention/test_000.png", "attention/test_001.png"):
        assert (run_dir / name).is_file(), name
    saved = json.loads((run_dir / "results.json").read_text())
    for key in ("bleu", "chrf", "sacrebleu_signature", "train_seconds", "epochs", "steps", "test_sentences",
                "decode", "num_params", "peak_rss_mb"):
        assert key in saved, key
    assert saved["test_sentences"] == 12 and saved["decode"]["beam_size"] == 2
    assert saved["epochs"] == pytest.approx(2.0) and saved["steps"] > 0
    assert "nrefs" in saved["sacrebleu_signature"]
    health = saved["attention_health"]  # over every output step of the test decoding
    assert 0 < health["max_weight"] <= 1 and 0 <= health["eos_share"] <= 1 and health["entropy"] >= 0
    assert health["rows"] >= 12  # at least one step (the final </s>) per test sentence
    assert list(health["layers"]) == ["layer1"] and list(health["layers"]["layer1"]) == ["head1", "mean"]  # one attention
    assert health["layers"]["layer1"]["mean"]["max_weight"] == pytest.approx(health["max_weight"], rel=1e-4)
    assert len((run_dir / "hypotheses.txt").read_text(encoding="utf-8").split("\n")) == 12 + 1
    records = read_metrics(run_dir / "metrics.jsonl")
    valid = [r for r in records if r["kind"] == "valid"]
    assert len(valid) == 2 and {"loss", "bleu", "chrf"} <= set(valid[0])
    assert valid[1]["loss"] < valid[0]["loss"]


def test_cli_transformer_run_draws_every_layer_and_head(tmp_path):
    run_dir = tmp_path / "run"
    out = cli(*TINY_TRANSFORMER, "attention=general", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["model"], results["attention"], results["test_sentences"]) == ("transformer", "general", 12)
    health = results["attention_health"]  # the search's last layer's mean of heads, and every layer and head
    assert list(health["layers"]) == ["layer1", "layer2"]  # model.dec_layers=2, model.heads=2
    for layer in health["layers"].values():
        assert list(layer) == ["head1", "head2", "mean"]
        for values in layer.values():
            assert 0 <= values["entropy_norm"] <= 1 and 0 < values["max_weight"] <= 1 and values["entropy"] >= 0
            assert 0 <= values["eos_share"] <= 1 and 0 <= values["eos_weight"] <= 1
    assert health["layers"]["layer2"]["mean"]["entropy"] == pytest.approx(health["entropy"], rel=1e-4)
    assert "the head most on </s> is layer" in out.stderr + out.stdout
    for kind in ("", "_cross", "_encoder", "_decoder"):  # viz.layer_grids=1: the first sentence only
        with Image.open(run_dir / "attention" / f"test_000{kind}.png") as image:
            assert image.format == "PNG"
    assert (run_dir / "attention" / "test_001.png").is_file()
    assert not (run_dir / "attention" / "test_001_cross.png").exists()


def test_every_layer_grid_has_the_layers_heads_and_tokens_of_its_kind(tmp_path, monkeypatch):
    from attnlab.models.transformer import Transformer

    drawn = {}

    def record(weights, rows, cols, path, *args):
        drawn[path.name] = ([tuple(w.shape) for w in weights], len(rows), len(cols))
        return path

    monkeypatch.setattr(translation_attention, "plot_attention_grid", record)
    torch.manual_seed(0)
    model = Transformer(20, 20, d_model=16, heads=2, enc_layers=1, dec_layers=3, d_ff=32).eval()
    src_ids, out_ids = [5, 6, 7, 8], [9, 10]  # S = 4 + eos, T = 2 + eos
    src, tgt = ["a", "b", "c", "d", "</s>"], ["x", "y", "</s>"]
    maps = translation_attention._every_layer(model, src_ids, out_ids, torch.device("cpu"))
    translation_attention._draw_every_layer(maps, src, tgt, "t", tmp_path / "test_000")
    assert drawn == {
        "test_000_encoder.png": ([(2, 5, 5)] * 1, 5, 5),
        "test_000_cross.png": ([(2, 3, 5)] * 3, 3, 5),
        "test_000_decoder.png": ([(2, 3, 3)] * 3, 3, 3),
    }


def results_config_width(run_dir: Path) -> int:
    return yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["model"]["hidden_dim"]


def test_evaluate_from_the_checkpoint_alone_gives_the_same_bleu(trained, tmp_path):
    run_dir, results = trained
    # other sizes on the command line: the checkpoint's own config must win
    cfg = make("mode=evaluate", f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}", "model.hidden_dim=64")
    again = translation.run(cfg, tmp_path)
    assert again["bleu"] == pytest.approx(results["bleu"]) and again["chrf"] == pytest.approx(results["chrf"])
    assert (tmp_path / "results.json").is_file() and (tmp_path / "attention" / "test_000.png").is_file()
    scored = json.loads((tmp_path / "results.json").read_text())["evaluated_config"]  # what the report groups by
    assert scored["model"]["hidden_dim"] == results_config_width(run_dir) and scored["mode"] == "evaluate"


def test_a_checkpoint_of_another_model_is_refused(trained, tmp_path):
    run_dir, _ = trained
    with initialize_config_dir(config_dir=str(Path(config_dir())), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "model=transformer", "mode=evaluate", f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}"])
    with pytest.raises(UserError, match="model 'rnn_attn', not 'transformer'"):
        translation.run(cfg, tmp_path)


def test_translate_keeps_empty_lines_and_line_count(trained, tmp_path):
    run_dir, _ = trained
    source = tmp_path / "in.de"
    source.write_text("Ich bin müde.\n\n   \nWo ist Tom?\n", encoding="utf-8")
    out = tmp_path / "out.en"
    cfg = make("mode=translate", f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}", f"input={source}",
               f"output={out}")
    results = translation.run(cfg, tmp_path / "run")
    lines = out.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 5 and lines[1] == lines[2] == lines[4] == ""
    assert lines[0] and lines[3]
    assert results["empty_lines"] == 2 and results["lines"] == 4


def test_an_export_folder_translates_as_its_checkpoint(trained, tmp_path):
    from attnlab.checkpoint import export_checkpoint, load_checkpoint

    run_dir, _ = trained
    folder = export_checkpoint(load_checkpoint(run_dir / "checkpoints" / "best.pt"), tmp_path / "export")
    assert (folder / "tokenizer.model").is_file() and (folder / "model.safetensors").is_file()
    source = tmp_path / "in.de"
    source.write_text("Ich bin müde.\nWo ist Tom?\n", encoding="utf-8")
    outputs = []
    for name, checkpoint in (("pt", run_dir / "checkpoints" / "best.pt"), ("folder", folder)):
        cfg = make("mode=translate", f"checkpoint={checkpoint}", f"input={source}", f"output={tmp_path / name}")
        translation.run(cfg, tmp_path / f"run_{name}")
        outputs.append((tmp_path / name).read_text(encoding="utf-8"))
    assert outputs[0] == outputs[1] and outputs[0].strip()


def test_translate_n_best_samples_are_seeded_tsv(trained, tmp_path):
    run_dir, _ = trained
    source = tmp_path / "in.de"
    source.write_text("Ich bin müde.\n\nWo ist Tom?\n", encoding="utf-8")
    texts = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        cfg = make("mode=translate", f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}", f"input={source}",
                   f"output={tmp_path / name}", "decode.sampling=true", "decode.n_best=3", "decode.top_p=0.9",
                   f"decode.sample_seed={seed}")
        translation.run(cfg, tmp_path / f"run_{name}")
        texts.append((tmp_path / name).read_text(encoding="utf-8"))
    rows = [line.split("\t") for line in texts[0].split("\n")[:-1]]  # a tiny model samples odd bytes: kept one a line
    assert all(len(r) == 4 for r in rows)
    assert [(r[0], r[1]) for r in rows] == [("1", "1"), ("1", "2"), ("1", "3"), ("3", "1"), ("3", "2"), ("3", "3")]
    assert all(float(r[2]) < 0 for r in rows)
    assert texts[0] == texts[1] and texts[0] != texts[2]  # same seed, same samples


def test_translate_n_best_of_the_beam(trained, tmp_path):
    run_dir, _ = trained
    source = tmp_path / "in.de"
    source.write_text("Ich bin müde.\nWo ist Tom?\n", encoding="utf-8")
    cfg = make("mode=translate", f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}", f"input={source}",
               f"output={tmp_path / 'nbest'}", "decode.beam_size=3", "decode.n_best=3")
    translation.run(cfg, tmp_path / "run")
    rows = [line.split("\t") for line in (tmp_path / "nbest").read_text(encoding="utf-8").split("\n")[:-1]]
    assert [(r[0], r[1]) for r in rows] == [(str(i), str(k)) for i in (1, 2) for k in (1, 2, 3)]
    one_best = make("mode=translate", f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}", f"input={source}",
                    f"output={tmp_path / 'best'}", "decode.beam_size=3")
    translation.run(one_best, tmp_path / "run1")
    assert [r[3] for r in rows if r[1] == "1"] == (tmp_path / "best").read_text(encoding="utf-8").splitlines()


def test_translate_with_a_missing_input_file_is_a_user_error(trained, tmp_path):
    run_dir, _ = trained
    cfg = make("mode=translate", f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}", f"input={tmp_path / 'no.txt'}")
    with pytest.raises(UserError, match="does not exist"):
        translation.run(cfg, tmp_path)


def test_two_identical_runs_give_identical_results(trained, tmp_path):
    """The CLI run and an in-process run of the same config (seed 0, CPU) agree exactly."""
    run_dir, first = trained
    second = translation.run(make(), tmp_path)
    for key in ("bleu", "chrf", "steps", "best_valid_bleu", "num_params"):
        assert second[key] == first[key], key
    losses = lambda d: [r["loss"] for r in read_metrics(d / "metrics.jsonl")]
    assert losses(tmp_path) == losses(run_dir)
    assert (tmp_path / "hypotheses.txt").read_text() == (run_dir / "hypotheses.txt").read_text()


# ----------------------------------------------------------------------------- CLI


def test_cli_translates_stdin_to_stdout_keeping_empty_lines(trained, tmp_path):
    run_dir, _ = trained
    out = cli("mode=translate", f"checkpoint={run_dir / 'checkpoints' / 'best.pt'}", "trainer.num_threads=1",
              f"hydra.run.dir={tmp_path / 't'}", cwd=tmp_path, stdin="Ich bin müde.\n\nDanke!\n")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split("\n")  # logs go to stderr, translations alone to stdout
    assert len(lines) == 4 and lines[0] and lines[1] == "" and lines[2] and lines[3] == ""
    assert "1 empty input lines" in out.stderr


def test_cli_missing_checkpoint_is_one_line_error(tmp_path):
    out = cli("mode=evaluate", f"checkpoint={tmp_path / 'nope.pt'}", f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert out.returncode == 2
    assert "error: checkpoint" in out.stderr and "does not exist" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("shared", [True, False])
def test_tokenizers_travel_in_checkpoints_shared_or_not(shared, tmp_path):
    from attnlab.data.text import Split

    cfg = make(f"data.shared_vocab={str(shared).lower()}")
    train = Split(["Ich bin müde.", "Wo ist Tom?", "Danke schön!"] * 20, [["I'm tired."], ["Where's Tom?"], ["Thanks!"]] * 20)
    toks = Tokenizers.train(train, cfg)
    assert toks.shared is shared
    again = Tokenizers.from_extra(toks.to_extra(), "x.pt")
    assert again.shared is shared
    assert again.src.encode("Wo ist Tom?") == toks.src.encode("Wo ist Tom?")
    assert again.tgt.decode(again.tgt.encode("Where's Tom?")) == "Where's Tom?"
    toks.save(tmp_path)
    names = ["tokenizer.model"] if shared else ["tokenizer.src.model", "tokenizer.tgt.model"]
    assert sorted(p.name for p in tmp_path.glob("*.model")) == names
    with pytest.raises(UserError, match="carries no tokenizer"):
        Tokenizers.from_extra({}, "x.pt")
