"""attnlab.load: a checkpoint as a Translator or Classifier; translate, predict, attention, explore."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import attnlab
from attnlab.data.batching import pad_batch
from attnlab.errors import UserError
from attnlab.inference import Classifier, Translation, Translator
from attnlab.decode.translate import translate_sentences

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCES = ["Ich habe Hunger.", "Das ist gut."]


def best(runs, name):
    return runs[name] / "checkpoints" / "best.pt"


@pytest.mark.parametrize("name,kind", [("rnn_attn", Translator), ("transformer", Translator), ("vit", Classifier)])
def test_load_gives_the_checkpoints_kind_of_model(tiny_runs, name, kind):
    model = attnlab.load(best(tiny_runs, name))
    assert isinstance(model, kind)
    assert model.cfg.model.name == name and not model.model.training
    assert name in model.label


@pytest.mark.parametrize("name", ["rnn_attn", "transformer", "vit"])
def test_load_reads_the_checkpoint_once(tiny_runs, name, monkeypatch):
    reads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: reads.append(kwargs) or real_load(*args, **kwargs))
    model = attnlab.load(best(tiny_runs, name))
    assert len(reads) == 1 and reads[0]["weights_only"] is True  # config and weights from one safe read
    assert model.cfg.model.name == name


def test_load_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        attnlab.load(bad)
    with pytest.raises(UserError, match="does not exist"):
        attnlab.load(tmp_path / "missing.pt")


@pytest.mark.parametrize("name", ["rnn_attn", "transformer"])
def test_translate_one_string_or_a_list_and_n_best_best_first(tiny_runs, name):
    tr = attnlab.load(best(tiny_runs, name))
    texts = tr.translate(SENTENCES)
    assert isinstance(texts, list) and len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert tr.translate(SENTENCES[0]) == texts[0]
    n_best = tr.translate(SENTENCES, beam_size=3, n_best=3)
    for hyps, text in zip(n_best, tr.translate(SENTENCES, beam_size=3)):
        assert len(hyps) == 3 and all(isinstance(h, Translation) for h in hyps)
        assert hyps[0].text == text  # the first of the n best is the beam's answer
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    with pytest.raises(UserError, match="n_best=4"):
        tr.translate(SENTENCES, beam_size=3, n_best=4)
    with pytest.raises(UserError, match="empty"):
        tr.translate(["  "])


def test_rnn_attention_is_the_searchs_alpha(tiny_runs):
    tr = attnlab.load(best(tiny_runs, "rnn_attn"))
    att = tr.attention(SENTENCES[0], beam_size=1)
    hyp = translate_sentences(tr.model, tr.toks, [SENTENCES[0]], tr._decode_cfg(1), tr.device, need_weights=True)[0]
    assert att.best.cross.shape == (1, 1, len(hyp.tokens) + 1, len(att.source_tokens))
    assert att.encoder is None and att.best.decoder is None
    np.testing.assert_allclose(att.best.cross[0, 0], hyp.attention.numpy(), atol=1e-5)
    np.testing.assert_allclose(att.best.cross.sum(-1), 1.0, atol=1e-5)


def test_transformer_attention_is_every_layer_and_head_of_attention_weights(tiny_runs):
    tr = attnlab.load(best(tiny_runs, "transformer"))
    att = tr.attention(SENTENCES[1], beam_size=3, n_best=2)
    assert len(att.hypotheses) == 2
    ids, hyps = tr.search(SENTENCES[1], beam_size=3, n_best=2)
    src, src_len = pad_batch([ids], 0, eos=2)
    for h, hyp in zip(att.hypotheses, hyps):
        maps = tr.model.attention_weights(src, src_len, torch.tensor([[1, *hyp.tokens]]))
        np.testing.assert_allclose(h.cross, torch.stack([w[0] for w in maps["cross"]]).numpy(), atol=1e-6)
        np.testing.assert_allclose(h.decoder, torch.stack([w[0] for w in maps["decoder"]]).numpy(), atol=1e-6)
    L, H = tr.cfg.model.dec_layers, tr.cfg.model.heads
    T, S = len(att.best.tokens), len(att.source_tokens)
    assert att.best.cross.shape == (L, H, T, S) and att.best.decoder.shape == (L, H, T, T)
    assert att.encoder.shape == (tr.cfg.model.enc_layers, H, S, S)
    assert np.allclose(np.triu(att.best.decoder, k=1), 0)  # causal: no weight on later tokens


def image_of(digit: int) -> np.ndarray:
    from attnlab.data.digits import load_digits

    return load_digits().images[digit] / 16.0  # (8, 8) in [0, 1]


def test_classifier_predicts_from_arrays_tensors_and_files_alike(tiny_runs, tmp_path):
    from PIL import Image

    clf = attnlab.load(best(tiny_runs, "vit"))
    array = image_of(3)
    path = tmp_path / "three.png"
    Image.fromarray((array * 255).round().astype(np.uint8), "L").save(path)
    a, b, c = clf.predict([array, torch.tensor(array)[None].float(), path])
    assert a.label == b.label == c.label and len(a.top) == 5
    assert a.probability == pytest.approx(b.probability, abs=1e-6)
    assert c.probability == pytest.approx(a.probability, abs=1e-2)  # the PNG rounds pixels to 1/255
    assert [p for _, p in a.top] == sorted((p for _, p in a.top), reverse=True)
    big = np.kron(array, np.ones((4, 4)))  # (32, 32): resized to the training size
    assert clf.image_tensor(big).shape == (1, 8, 8)
    with pytest.raises(UserError, match="does not exist"):
        clf.predict(tmp_path / "missing.png")


def test_classifier_attention_is_the_vits_weights(tiny_runs):
    clf = attnlab.load(best(tiny_runs, "vit"))
    att = clf.attention(image_of(5))
    x = torch.tensor(image_of(5), dtype=torch.float32)[None, None]  # (1, 1, 8, 8)
    with torch.no_grad():
        weights = torch.stack([w[0] for w in clf.model.attention_weights(x)]).numpy()
    np.testing.assert_allclose(att.weights, weights, atol=1e-6)
    assert att.grid == (4, 4) and att.patch == 2 and att.has_cls
    assert att.weights.shape == (2, 2, 17, 17) and att.rollout.shape == (16,)
    assert 0 < att.rollout.sum() <= 1 + 1e-5  # the CLS row of a row-stochastic matrix, without its own column


@pytest.mark.parametrize("name,item", [("transformer", "Ich habe Hunger."), ("vit", None)])
def test_explore_shows_inline_in_jupyter_as_a_self_contained_page(tiny_runs, name, item, tmp_path):
    model = attnlab.load(best(tiny_runs, name))
    view = model.explore(item if item is not None else image_of(1))
    html = view._repr_html_()
    assert html.startswith("<iframe srcdoc=") and "&lt;script" in html
    page = view.html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched from a network
    assert "<link" not in page and "@import" not in page
    data = json.loads(re.search(r'<script id="attnlab-data" type="application/json">(.*?)</script>', page, re.S).group(1))
    assert data["kind"] == model.task and len(data["items"]) == 1
    assert view.save(tmp_path / "page.html").read_text(encoding="utf-8") == page


@pytest.mark.parametrize("name", ["transformer", "vit"])
def test_an_exported_folder_loads_like_its_checkpoint(tiny_runs, tmp_path, name):
    from attnlab.api import run

    run(["mode=export", f"checkpoint={best(tiny_runs, name)}", f"output={tmp_path / 'export'}"], run_dir=tmp_path / "run")
    exported, original = attnlab.load(tmp_path / "export"), attnlab.load(best(tiny_runs, name))
    if name == "vit":
        assert exported.predict(image_of(2)) == original.predict(image_of(2))
    else:
        assert exported.translate(SENTENCES, beam_size=3, n_best=2) == original.translate(SENTENCES, beam_size=3, n_best=2)
