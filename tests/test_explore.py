"""mode=explore: the page file, its data (equal to the model's tensors), the raw npz of training runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import attnlab
from attnlab.api import run
from attnlab.errors import UserError
from attnlab.explore.data import normalised_entropy, page_data
from attnlab.explore.page import embed_json, render_page

pytestmark = pytest.mark.usefixtures("one_thread")

TEN = ["Ich habe Hunger.", "Das ist gut.", "Wo ist der Bahnhof?", "Ich liebe dich.", "Er schläft.",
       "Wir gehen nach Hause.", "Sie liest ein Buch.", "Es regnet heute.", "Tom ist müde.", "Das Wasser ist kalt."]


def page_json(html: str) -> dict:
    match = re.search(r'<script id="attnlab-data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def best(runs, name) -> Path:
    return runs[name] / "checkpoints" / "best.pt"


def test_cli_writes_one_self_contained_page_for_a_file_of_sentences_compared_with_another_checkpoint(tiny_runs, tmp_path):
    """The command of the README, in a subprocess, without task=/model=: the checkpoint says them."""
    sentences = tmp_path / "ten.txt"
    sentences.write_text("\n".join(TEN) + "\n\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    env = {**os.environ, "HYDRA_FULL_ERROR": ""}
    out = subprocess.run(
        [sys.executable, "-m", "attnlab", "mode=explore", f"checkpoint={best(tiny_runs, 'transformer')}",
         f"input={sentences}", f"compare={best(tiny_runs, 'rnn_attn')}", "trainer.num_threads=1",
         f"hydra.run.dir={run_dir}"], cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    page = run_dir / "explore.html"
    assert out.stdout.strip().splitlines()[-1] == str(page)
    html = page.read_text(encoding="utf-8")
    assert page.stat().st_size < 3_000_000  # ten sentences, two models, three hypotheses each
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html) and "<link" not in html
    data = page_json(html)
    assert data["kind"] == "translation" and [p["model"] for p in data["panels"]] == ["transformer", "rnn_attn"]
    assert [item["input"] for item in data["items"]] == TEN
    first = data["items"][0]["results"]
    assert len(first[0]["hypotheses"]) == 3  # decode.beam_size=3 of the checkpoint, explore.n_best=3
    assert first[0]["encoder"] is not None and first[1]["encoder"] is None  # the RNN has no self-attention
    results = json.loads((run_dir / "results.json").read_text())
    assert results["inputs"] == 10 and results["page_bytes"] == page.stat().st_size


def test_page_weights_are_the_models_tensors_in_units_of_1e_minus_4(tiny_runs):
    tr = attnlab.load(best(tiny_runs, "transformer"))
    data = page_data([tr], ["Wo ist der Bahnhof?"], n_best=2)
    shown = data["items"][0]["results"][0]
    att = tr.attention("Wo ist der Bahnhof?", n_best=2)
    assert shown["source_tokens"] == att.source_tokens
    for h_shown, h in zip(shown["hypotheses"], att.hypotheses):
        assert h_shown["tokens"] == h.tokens
        np.testing.assert_allclose(np.array(h_shown["cross"]) / 1e4, h.cross, atol=5.1e-5)
        np.testing.assert_allclose(np.array(h_shown["decoder"]) / 1e4, h.decoder, atol=5.1e-5)
    np.testing.assert_allclose(np.array(shown["encoder"]) / 1e4, att.encoder, atol=5.1e-5)
    assert data["scale"] == 10_000 and np.array(shown["encoder"]).dtype.kind == "i"  # 0.1234 is stored as 1234


@pytest.mark.parametrize("name", ["rnn_attn", "vit"])
def test_explore_mode_in_process_for_the_other_models(tiny_runs, tmp_path, name):
    if name == "vit":
        from PIL import Image
        from attnlab.data.digits import load_digits

        folder = tmp_path / "digits"
        folder.mkdir()
        for i, image in enumerate(load_digits().images[:3]):
            Image.fromarray((image * 255 / 16).astype(np.uint8), "L").save(folder / f"digit_{i}.png")
        source = str(folder)
    else:
        source = "Ich habe Hunger."
    out = tmp_path / "page.html"
    results = run(["mode=explore", f"checkpoint={best(tiny_runs, name)}", f"input={source}", f"output={out}",
                   "trainer.num_threads=1"], run_dir=tmp_path / "run")
    data = page_json(out.read_text(encoding="utf-8"))
    assert results["page"] == str(out)
    if name == "vit":
        assert [i["input"] for i in data["items"]] == ["digit_0.png", "digit_1.png", "digit_2.png"]
        shown = data["items"][0]["results"][0]
        assert shown["image"].startswith("data:image/png;base64,") and shown["grid"] == [4, 4]
        assert len(shown["top"]) == 5 and np.array(shown["weights"]).shape == (2, 2, 17, 17)
    else:
        assert data["items"][0]["input"] == "Ich habe Hunger."


def test_explore_errors_are_one_line(tiny_runs, tmp_path):
    with pytest.raises(UserError, match="needs input="):
        run(["mode=explore", f"checkpoint={best(tiny_runs, 'vit')}"], run_dir=tmp_path / "a")
    with pytest.raises(UserError, match="same task"):
        run(["mode=explore", f"checkpoint={best(tiny_runs, 'vit')}", f"compare={best(tiny_runs, 'rnn_attn')}",
             f"input={tmp_path}"], run_dir=tmp_path / "b")
    with pytest.raises(UserError, match="compare= is for mode=explore"):
        run(["mode=evaluate", f"checkpoint={best(tiny_runs, 'rnn_attn')}", f"compare={best(tiny_runs, 'rnn_attn')}"],
            run_dir=tmp_path / "c")


def test_entropy_is_zero_for_one_hot_rows_and_one_for_uniform_rows():
    one_hot = np.zeros((1, 2, 3, 4))
    one_hot[..., 0] = 1.0
    uniform = np.full((1, 1, 3, 4), 0.25)
    assert np.allclose(normalised_entropy(one_hot), 0.0)
    assert np.allclose(normalised_entropy(uniform), 1.0)
    causal = np.tril(np.ones((3, 3)))
    causal = (causal / causal.sum(-1, keepdims=True))[None, None]  # uniform over each row's t + 1 keys
    assert np.allclose(normalised_entropy(causal, causal=True), 1.0)


def test_embedded_json_cannot_end_its_script_element():
    html = render_page({"kind": "translation", "items": [{"input": "</script><script>alert(1)</script>"}], "panels": []})
    assert "</script><script>alert" not in html
    assert json.loads(embed_json({"a": "</script>"}))["a"] == "</script>"


def test_training_runs_save_the_raw_attention_as_npz(tiny_runs):
    tr = attnlab.load(best(tiny_runs, "transformer"))
    saved = np.load(tiny_runs["transformer"] / "attention" / "test_000.npz")  # no pickle needed
    T, S = len(saved["output_tokens"]), len(saved["source_tokens"])
    assert saved["attention"].shape == (T, S) and saved["cross"].shape == (2, 2, T, S)
    assert saved["encoder"].shape == (1, 2, S, S) and saved["decoder"].shape == (2, 2, T, T)
    np.testing.assert_allclose(saved["cross"][-1].mean(0), saved["attention"], atol=1e-5)  # the search's: last layer, mean
    rnn = np.load(tiny_runs["rnn_attn"] / "attention" / "test_000.npz")
    np.testing.assert_allclose(rnn["attention"].sum(-1), 1.0, atol=1e-5)
    assert str(rnn["source_tokens"][-1]) == "</s>"

    vit = attnlab.load(best(tiny_runs, "vit"))
    images = np.load(tiny_runs["vit"] / "attention" / "attention.npz")
    with torch.no_grad():
        weights = vit.model.attention_weights(torch.from_numpy(images["images"]), torch.from_numpy(images["sizes"]))
    np.testing.assert_allclose(images["weights"], torch.stack(weights, dim=1).numpy(), atol=1e-6)
    assert images["weights"].shape[:3] == (2, 2, 2) and list(images["classes"]) == vit.classes
    assert tr.cfg.model.name == "transformer"


@pytest.mark.parametrize("name", ["transformer", "rnn_attn", "vit"])
def test_a_page_from_the_saved_npz_shows_the_saved_weights(tiny_runs, name):
    from attnlab.explore.saved import explore_saved, saved_page_data

    folder = tiny_runs[name] / "attention"
    data = saved_page_data(folder)
    assert data["kind"] == ("vision" if name == "vit" else "translation")
    if name == "vit":
        saved = np.load(folder / "attention.npz")
        assert len(data["items"]) == 2
        np.testing.assert_allclose(np.array(data["items"][1]["results"][0]["weights"]) / 1e4, saved["weights"][1], atol=5.1e-5)
    else:
        saved = np.load(folder / "test_000.npz")
        shown = data["items"][0]["results"][0]
        assert shown["source_tokens"] == [str(t) for t in saved["source_tokens"]]
        expected = saved["cross"] if name == "transformer" else saved["attention"][None, None]
        np.testing.assert_allclose(np.array(shown["hypotheses"][0]["cross"]) / 1e4, expected, atol=5.1e-5)
    assert "attnlab-data" in explore_saved(folder).html
    with pytest.raises(UserError, match="no saved attention"):
        saved_page_data(tiny_runs[name] / "checkpoints")
