"""Screenshots of the attention explorer for the README (docs/figures/explore_*.png).

    python bench/explore_screenshots.py RNN_RUN TRANSFORMER_RUN VIT_RUN [--out docs/figures]

Each RUN is a training run folder (its checkpoints/best.pt is loaded): the RNN a German-English
translator, the Transformer one of the attention gym's ``data=synthetic data.kind=reverse``
(its cross-attention is a clean anti-diagonal after a few hundred steps), the ViT a digits model. The pages are written with
:func:`attnlab.inference.Loaded.explore`, opened in headless system Chromium (Playwright, network
blocked) and one view of each is clicked into place and captured. bench/explore_screenshots.sh
trains the runs used for the README.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

import attnlab

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SENTENCES = ["Ich habe Hunger.", "Wo ist der Bahnhof?", "Das Wasser ist kalt."]
SEQUENCES = ["a b c d e f g h", "k e b d a q", "s t a r t"]  # the reverse gym's symbols


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rnn")
    parser.add_argument("transformer")
    parser.add_argument("vit")
    parser.add_argument("--out", default="docs/figures")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="explore_"))

    from attnlab.data.digits import load_digits

    pages = {}
    for name, run, items in (("rnn", args.rnn, SENTENCES), ("transformer", args.transformer, SEQUENCES),
                             ("vit", args.vit, [load_digits().images[i] / 16.0 for i in (1, 5, 8)])):
        model = attnlab.load(Path(run) / "checkpoints" / "best.pt")
        pages[name] = model.explore(items).save(work / f"{name}.html").as_uri()

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 900, "height": 900}, device_scale_factor=1)
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort())

        page.goto(pages["rnn"])
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("#item", value="1")
        page.click('#panel-0 .row-token[data-row="2"]')
        page.locator("#panel-0").screenshot(path=str(out / "explore_rnn.png"))

        page.goto(pages["transformer"])
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("#panel-0 select.layer", value="1")
        page.click('#panel-0 .row-token[data-row="2"]')
        page.locator("#panel-0").screenshot(path=str(out / "explore_transformer.png"))

        page.goto(pages["vit"])
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("#panel-0 select.view", value="patch")
        page.hover('#panel-0 rect.patch[data-patch="6"]')
        page.locator("#panel-0").screenshot(path=str(out / "explore_vit.png"))
        browser.close()
    print("\n".join(str(out / f"explore_{n}.png") for n in ("rnn", "transformer", "vit")))


if __name__ == "__main__":
    main()
