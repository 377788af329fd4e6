"""The explorer page from the raw weights a training run saved (``attention/*.npz``), without
loading or rerunning its model.

    from attnlab.explore.saved import explore_saved
    explore_saved("outputs/.../attention").save("saved.html")     # or one test_NNN.npz / attention.npz

Translation runs write one ``test_NNN.npz`` per example sentence (the search's weights, and for
the Transformer every layer's maps); vision runs write ``attention.npz`` with every example image
(see README, "What a run writes"). The page shows what was saved: the chosen translation only (no
n-best list, no scores), and for vision the saved class probabilities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnlab.errors import UserError
from attnlab.explore.data import entropies, normalised_entropy, png_data_url, rounded


def _translation_item(npz: Any, decimals: int) -> dict[str, Any]:
    src, out = [str(t) for t in npz["source_tokens"]], [str(t) for t in npz["output_tokens"]]
    cross = npz["cross"] if "cross" in npz.files else npz["attention"][None, None]  # (T, S) -> (1, 1, T, S)
    decoder = npz["decoder"] if "decoder" in npz.files else None
    encoder = npz["encoder"] if "encoder" in npz.files else None
    text = "".join(out[:-1]).replace("\u2581", " ").strip()  # SentencePiece marks word starts with U+2581
    result = {
        "source_tokens": src,
        "encoder": None if encoder is None else rounded(encoder, decimals),
        "hypotheses": [{"text": text, "tokens": out, "log_prob": None, "score": None, "cross": rounded(cross, decimals),
                        "decoder": None if decoder is None else rounded(decoder, decimals),
                        "entropy": entropies({"cross": cross, "decoder": decoder})}],
        "entropy": entropies({"encoder": encoder}),
    }
    source = "".join(src[:-1]).replace("\u2581", " ").strip()
    return {"input": source, "results": [result]}


def _vision_items(npz: Any, decimals: int) -> list[dict[str, Any]]:
    from attnlab.viz.rollout import patch_relevance, rollout

    weights = torch.from_numpy(npz["weights"])  # (B, L, H, T, T)
    rows, cols = (int(v) for v in npz["grid"])
    patch, has_cls = int(npz["patch_size"]), bool(npz["has_cls"])
    classes = [str(c) for c in npz["classes"]]
    items = []
    for i in range(weights.shape[0]):
        h, w = (int(v) for v in npz["sizes"][i])
        r = torch.arange(rows).repeat_interleave(cols) * patch < h  # (N,): patch rows inside the image
        c = torch.arange(cols).repeat(rows) * patch < w
        real = (r & c)[None]  # (1, N)
        layers = list(weights[i].unsqueeze(1).unbind(0))  # L x (1, H, T, T)
        rolled = patch_relevance(rollout(layers), has_cls, real)[0]  # (N,)
        probs = npz["probs"][i]
        top = np.argsort(-probs)[:5]
        items.append({"input": f"example {i} (label {classes[int(npz['labels'][i])]})", "results": [{
            "image": png_data_url(npz["images"][i][:, :h, :w]), "height": h, "width": w, "patch": patch,
            "grid": [rows, cols], "has_cls": has_cls, "top": [[classes[k], round(float(probs[k]), 4)] for k in top],
            "weights": rounded(weights[i].numpy(), decimals), "rollout": rounded(rolled.numpy(), decimals),
            "entropy": {"self": np.round(normalised_entropy(weights[i].numpy()), 4).tolist()},
        }]})
    return items


def saved_page_data(path: str | Path, decimals: int = 4) -> dict[str, Any]:
    """The page data of a run's ``attention/`` folder or of one of its npz files."""
    path = Path(path).expanduser()
    files = sorted(path.glob("*.npz")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise UserError(f"{path} holds no saved attention (*.npz); pass a run's attention/ folder or one of its npz files")
    items: list[dict[str, Any]] = []
    kinds = set()
    for f in files:
        with np.load(f) as npz:  # plain arrays: no pickle
            if "source_tokens" in npz.files:
                kinds.add("translation")
                items.append(_translation_item(npz, decimals))
            elif "weights" in npz.files and "grid" in npz.files:
                kinds.add("vision")
                items += _vision_items(npz, decimals)
            else:
                raise UserError(f"{f} is not an attention file written by an attnlab run")
    if len(kinds) > 1:
        raise UserError(f"{path} mixes translation and vision attention files")
    label = f"saved weights ({'/'.join(files[0].parts[-3:-1])})"
    return {"version": 1, "kind": kinds.pop(), "mode": "file", "decimals": decimals, "scale": 10**decimals, "limits": {},
            "panels": [{"label": label, "model": "", "attention": "", "checkpoint": ""}], "items": items}


def explore_saved(path: str | Path, decimals: int = 4) -> Any:
    """The explorer page (:class:`attnlab.inference.ExplorerView`) of saved weights."""
    from attnlab.explore.page import render_page
    from attnlab.inference import ExplorerView

    return ExplorerView(render_page(saved_page_data(path, decimals)))
