"""The explorer page in a real browser (headless system Chromium via Playwright), opened from a
file with every network request blocked: no console errors, and the weights the page displays
are the model's tensors (within 1e-3) for the token, patch, layer and head the user picks."""

from __future__ import annotations

import numpy as np
import pytest

import attnlab
from attnlab.explore.data import normalised_entropy

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCE = "Wo ist der Bahnhof?"
TOL = 1e-3


def open_page(browser, url: str):
    """A page at ``url`` with non-file requests aborted; returns (page, console errors, blocked urls)."""
    page = browser.new_page(viewport={"width": 1300, "height": 900}, accept_downloads=True)
    errors: list[str] = []
    blocked: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    return page, errors, blocked


def shown(page, panel: int = 0) -> np.ndarray:
    """The weights in the panel's table, as the page displays them."""
    return np.array(page.eval_on_selector_all(
        f"#panel-{panel} table.weights td.w", "cells => cells.map(c => Number(c.dataset.weight))"))


def check_exports(page) -> None:
    svg = page.evaluate("window.attnlabExport.svg(0)")
    assert svg.startswith("<?xml") and "<svg" in svg and 'xmlns="http://www.w3.org/2000/svg"' in svg
    png = page.evaluate("window.attnlabExport.png(0, 1)")
    assert png.startswith("data:image/png;base64,") and len(png) > 1000
    with page.expect_download() as download:
        page.click("#panel-0 button.export-svg")
    assert download.value.suggested_filename.endswith(".svg")


@pytest.fixture(scope="module")
def pages(tiny_runs, tmp_path_factory):
    """explore.html of each tiny model (written through the Python API) and the loaded models."""
    folder = tmp_path_factory.mktemp("pages")
    out = {}
    for name in ("rnn_attn", "transformer", "vit"):
        model = attnlab.load(tiny_runs[name] / "checkpoints" / "best.pt")
        if name == "vit":
            from attnlab.data.digits import load_digits

            item = load_digits().images[7] / 16.0
        else:
            item = SENTENCE
        path = model.explore([item]).save(folder / f"{name}.html")
        out[name] = (model, item, path.as_uri())
    return out


def test_transformer_page_shows_the_weights_of_the_clicked_token_layer_head_and_kind(browser, pages):
    model, sentence, url = pages["transformer"]
    att = model.attention(sentence, beam_size=3, n_best=3)
    page, errors, blocked = open_page(browser, url)
    L = att.best.cross.shape[0]
    t = min(2, len(att.best.tokens) - 1)

    page.click(f'#panel-0 .row-token[data-row="{t}"]')  # default view: cross-attention, last layer, mean of heads
    np.testing.assert_allclose(shown(page), att.best.cross[L - 1].mean(0)[t], atol=TOL)
    page.select_option("#panel-0 select.layer", value="0")
    page.select_option("#panel-0 select.head", value="1")
    np.testing.assert_allclose(shown(page), att.best.cross[0, 1, t], atol=TOL)
    page.hover('#panel-0 .row-token[data-row="0"]')  # hover previews another output token
    np.testing.assert_allclose(shown(page), att.best.cross[0, 1, 0], atol=TOL)

    page.select_option("#panel-0 select.kind", value="encoder")
    page.click('#panel-0 .row-token[data-row="1"]')
    np.testing.assert_allclose(shown(page), att.encoder[0, 1, 1], atol=TOL)
    page.select_option("#panel-0 select.kind", value="decoder")
    page.select_option("#panel-0 select.layer", value="1")
    page.select_option("#panel-0 select.head", value="0")
    page.click(f'#panel-0 .row-token[data-row="{t}"]')
    np.testing.assert_allclose(shown(page), att.best.decoder[1, 0, t], atol=TOL)

    page.click('#panel-0 .hyps tr[data-hyp="2"]')  # the third hypothesis of the beam
    page.select_option("#panel-0 select.kind", value="cross")
    page.click('#panel-0 .row-token[data-row="0"]')
    np.testing.assert_allclose(shown(page), att.hypotheses[2].cross[1, 0, 0], atol=TOL)

    page.click('#panel-0 .entropy td.cell[data-layer="0"][data-head="1"]')  # a head picked from the entropy table
    assert page.input_value("#panel-0 select.layer") == "0" and page.input_value("#panel-0 select.head") == "1"
    entropy = page.eval_on_selector_all("#panel-0 .entropy td.cell", "cells => cells.map(c => Number(c.dataset.entropy))")
    assert len(entropy) == L * att.best.cross.shape[1] and all(0 <= e <= 1 for e in entropy)
    np.testing.assert_allclose(entropy, normalised_entropy(att.hypotheses[2].cross).ravel(), atol=1e-4)  # the shown one
    assert page.eval_on_selector_all(  # collapsed heads are marked, and only those
        "#panel-0 .entropy td.cell", "cs => cs.every(c => c.classList.contains('collapsed') === (Number(c.dataset.entropy) < 0.1))")

    check_exports(page)
    assert errors == [] and blocked == []
    page.close()


def test_rnn_page_shows_alpha_of_each_output_token(browser, pages):
    model, sentence, url = pages["rnn_attn"]
    att = model.attention(sentence, beam_size=3, n_best=3)
    page, errors, blocked = open_page(browser, url)
    assert page.eval_on_selector_all("#panel-0 select.kind option", "o => o.map(x => x.value)") == ["cross"]
    for t in range(len(att.best.tokens)):
        page.click(f'#panel-0 .row-token[data-row="{t}"]')
        np.testing.assert_allclose(shown(page), att.best.cross[0, 0, t], atol=TOL)
    rows = page.eval_on_selector_all("#panel-0 .hyps tr[data-hyp]", "r => r.length")
    assert rows == 3
    assert errors == [] and blocked == []
    page.close()


def test_vision_page_hover_shows_the_patchs_attention_row(browser, pages):
    model, image, url = pages["vit"]
    att = model.attention(image)  # weights (L, H, 1 + N, 1 + N), CLS first
    page, errors, blocked = open_page(browser, url)
    L = att.weights.shape[0]
    np.testing.assert_allclose(shown(page), att.weights[L - 1].mean(0)[0], atol=TOL)  # opens on the CLS map

    page.select_option("#panel-0 select.view", value="patch")
    page.hover('#panel-0 rect.patch[data-patch="5"]')
    np.testing.assert_allclose(shown(page), att.weights[L - 1].mean(0)[1 + 5], atol=TOL)
    page.select_option("#panel-0 select.layer", value="0")
    page.select_option("#panel-0 select.head", value="1")
    page.hover('#panel-0 rect.patch[data-patch="10"]')
    np.testing.assert_allclose(shown(page), att.weights[0, 1, 1 + 10], atol=TOL)

    page.select_option("#panel-0 select.view", value="rollout")
    np.testing.assert_allclose(shown(page), att.rollout, atol=TOL)
    top = page.eval_on_selector_all("#panel-0 table.top5 tr td:first-child", "c => c.map(x => x.textContent)")
    assert top == [label for label, _ in att.top]
    check_exports(page)
    assert errors == [] and blocked == []
    page.close()


def test_compare_shows_two_checkpoints_side_by_side_each_with_its_own_weights(browser, pages, tmp_path):
    transformer, sentence, _ = pages["transformer"]
    rnn = pages["rnn_attn"][0]
    path = transformer.explore([sentence], compare=rnn).save(tmp_path / "compare.html")
    page, errors, blocked = open_page(browser, path.as_uri())
    assert page.eval_on_selector_all("section.panel", "s => s.length") == 2
    a, b = transformer.attention(sentence, beam_size=3, n_best=3), rnn.attention(sentence, beam_size=3, n_best=3)
    page.click('#panel-1 .row-token[data-row="1"]')
    np.testing.assert_allclose(shown(page, 1), b.best.cross[0, 0, 1], atol=TOL)
    page.click('#panel-0 .row-token[data-row="0"]')
    np.testing.assert_allclose(shown(page, 0), a.best.cross[-1].mean(0)[0], atol=TOL)
    np.testing.assert_allclose(shown(page, 1), b.best.cross[0, 0, 1], atol=TOL)  # panel 1 kept its own choice
    assert errors == [] and blocked == []
    page.close()


@pytest.mark.parametrize("name", ["transformer", "vit"])
def test_the_page_of_saved_npz_weights_works_in_the_browser(browser, tiny_runs, tmp_path, name):
    from attnlab.explore.saved import explore_saved

    folder = tiny_runs[name] / "attention"
    path = explore_saved(folder).save(tmp_path / "saved.html")
    page, errors, blocked = open_page(browser, path.as_uri())
    if name == "vit":
        saved = np.load(folder / "attention.npz")["weights"][0]  # (L, H, T, T) of the first image
        page.select_option("#panel-0 select.view", value="patch")
        page.hover('#panel-0 rect.patch[data-patch="3"]')
        np.testing.assert_allclose(shown(page), saved[-1].mean(0)[1 + 3], atol=TOL)
    else:
        saved = np.load(folder / "test_000.npz")["cross"]  # (L, H, T, S)
        page.click('#panel-0 .row-token[data-row="1"]')
        np.testing.assert_allclose(shown(page), saved[-1].mean(0)[1], atol=TOL)
    assert errors == [] and blocked == []
    page.close()
