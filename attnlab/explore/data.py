"""The explorer's data: what the page shows, as plain JSON-ready dicts.

One page shows one or more *panels* (a loaded model each; two with ``compare=``) and a list of
*items* (sentences or images); each item holds one result per panel. Weights are stored as
integers in units of 10^-``decimals`` (four decimals by default: 0.1234 is stored as 1234, which
keeps the page small, and 1e-4 is below what a colour or a table shows; the page divides by
``scale`` = 10^decimals); rows of every matrix are queries, columns keys.

Translation result::

    {"source_tokens": [S], "encoder": [L][H][S][S] | null,
     "hypotheses": [{"text", "tokens": [T], "log_prob", "score",
                     "cross": [L][H][T][S], "decoder": [L][H][T][T] | null,
                     "entropy": {"cross": [L][H], "decoder": [L][H]}}],
     "entropy": {"encoder": [L][H]}}

Vision result::

    {"image": "data:image/png;base64,...", "height", "width", "patch", "grid": [rows, cols],
     "has_cls", "top": [[label, p]] (5), "weights": [L][H][T][T], "rollout": [N], "entropy": {"self": [L][H]}}

Entropy: the mean over query rows of each row's entropy divided by the log of its number of
keys (the causal decoder's row t has t + 1), so 0 = every query puts all weight on one key (a
collapsed head) and 1 = uniform; rows with a single key are skipped.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np

from attnlab.errors import UserError

KIND_LABELS = {"cross": "cross-attention", "encoder": "encoder self-attention", "decoder": "decoder self-attention",
               "self": "self-attention"}


def rounded(array: np.ndarray, decimals: int) -> list:
    """Nested lists of integers: the values in units of 10^-``decimals``, rounded."""
    return np.rint(np.asarray(array, dtype=np.float64) * 10**decimals).astype(np.int64).tolist()


def normalised_entropy(weights: np.ndarray, causal: bool = False) -> np.ndarray:
    """(L, H, R, C) weights -> (L, H): mean over rows of H(row) / log(keys of the row).

    ``causal``: row r has r + 1 keys (decoder self-attention); otherwise every row has C."""
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    rows, cols = w.shape[-2:]
    plogp = np.where(w > 0, w * np.log(np.where(w > 0, w, 1.0)), 0.0)
    entropy = -plogp.sum(-1)  # (L, H, R)
    keys = np.arange(1, rows + 1) if causal else np.full(rows, cols)
    keep = keys > 1
    if not keep.any():
        return np.zeros(w.shape[:2])
    return (entropy[..., keep] / np.log(keys[keep])).mean(-1)  # (L, H)


def entropies(maps: dict[str, np.ndarray | None]) -> dict[str, list]:
    """Normalised entropy (L, H) of each kind of map that is there (decoder maps are causal)."""
    return {kind: np.round(normalised_entropy(w, causal=kind == "decoder"), 4).tolist()
            for kind, w in maps.items() if w is not None}


def translation_result(att: Any, decimals: int) -> dict[str, Any]:
    """A :class:`attnlab.inference.TranslationAttention` as the page's dict."""
    return {
        "source_tokens": att.source_tokens,
        "encoder": None if att.encoder is None else rounded(att.encoder, decimals),
        "hypotheses": [
            {
                "text": h.text, "tokens": h.tokens, "log_prob": round(h.log_prob, 4),
                "score": None if h.score is None else round(h.score, 4),
                "cross": rounded(h.cross, decimals),
                "decoder": None if h.decoder is None else rounded(h.decoder, decimals),
                "entropy": entropies({"cross": h.cross, "decoder": h.decoder}),
            }
            for h in att.hypotheses
        ],
        "entropy": entropies({"encoder": att.encoder}),
    }


def png_data_url(image: np.ndarray) -> str:
    """(C, H, W) in [0, 1] -> a ``data:image/png;base64,...`` URL (grey or RGB)."""
    from PIL import Image

    pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    pil = Image.fromarray(pixels[0], "L") if pixels.shape[0] == 1 else Image.fromarray(pixels.transpose(1, 2, 0), "RGB")
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def vision_result(att: Any, decimals: int) -> dict[str, Any]:
    """An :class:`attnlab.inference.ImageAttention` as the page's dict."""
    _, height, width = att.image.shape
    return {
        "image": png_data_url(att.image), "height": int(height), "width": int(width), "patch": att.patch,
        "grid": list(att.grid), "has_cls": att.has_cls, "top": [[c, round(p, 4)] for c, p in att.top],
        "weights": rounded(att.weights, decimals), "rollout": rounded(att.rollout, decimals),
        "entropy": {"self": np.round(normalised_entropy(att.weights), 4).tolist()},
    }


def panel_info(model: Any) -> dict[str, Any]:
    """What the page says about one loaded model (its header line)."""
    cfg = model.cfg
    info = {"label": model.label, "model": str(cfg.model.name), "attention": str(cfg.attention.score),
            "checkpoint": str(model.path)}
    if model.task == "translation":
        info["languages"] = f"{cfg.data.src_lang}->{cfg.data.tgt_lang}"
    else:
        info["classes"] = len(model.classes)
    return info


def item_result(model: Any, item: Any, n_best: int, beam_size: int | None, decimals: int) -> dict[str, Any]:
    """One panel's result for one input (sentence or image)."""
    if model.task == "translation":
        beam = beam_size or max(int(model.cfg.decode.beam_size), 1)
        return translation_result(model.attention(item, beam_size=beam, n_best=min(n_best, beam)), decimals)
    return vision_result(model.attention(item), decimals)


def item_label(item: Any, index: int) -> str:
    """The item's name in the page's list: the sentence, or the image's file name."""
    from pathlib import Path

    if isinstance(item, str) and not Path(item).suffix.lower() in (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"):
        return item
    if isinstance(item, (str, Path)):
        return Path(item).name
    return f"image {index + 1}"


def page_data(
    models: Sequence[Any], items: Sequence[Any], *, n_best: int = 3, beam_size: int | None = None,
    decimals: int = 4, mode: str = "file", labels: Sequence[str] | None = None, limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The page's whole data for ``models`` (one panel each) on ``items``.

    ``mode``: "file" (explore.html) or "serve" (the page asks the server for new items);
    ``limits``: what the server accepts, shown on the page."""
    if not models:
        raise ValueError("page_data needs at least one model")
    tasks = {m.task for m in models}
    if len(tasks) > 1:
        raise UserError("compare= needs a checkpoint of the same task (translation with translation, vision with vision)")
    return {
        "version": 1,
        "kind": models[0].task,
        "mode": mode,
        "decimals": decimals,
        "scale": 10**decimals,  # weights are integers in units of 1 / scale
        "limits": limits or {},
        "panels": [panel_info(m) for m in models],
        "items": [
            {"input": (labels[i] if labels else item_label(item, i)),
             "results": [item_result(m, item, n_best, beam_size, decimals) for m in models]}
            for i, item in enumerate(items)
        ],
    }
