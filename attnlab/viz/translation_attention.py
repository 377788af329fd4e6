"""Draw and save the attention of a translator's translations: heatmaps, every layer's grids, raw .npz."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from attnlab.config import DecodeConfig
from attnlab.data.batching import pad_batch
from attnlab.data.pairs import BOS_PIECE, EOS_PIECE, Tokenizers
from attnlab.decode.translate import translate_sentences
from attnlab.models.seq2seq import Seq2Seq
from attnlab.viz.text import plot_attention, plot_attention_grid

log = logging.getLogger("attnlab.translation")


def draw_attention(
    model: Seq2Seq,
    toks: Tokenizers,
    sentences: Sequence[str],
    cfg: DecodeConfig,
    device: torch.device,
    folder: Path,
    layer_grids: int = 1,
) -> list[Path]:
    """Heatmaps of the attention of the chosen translations of ``sentences``: ``test_NNN.png``
    (the attention that the search used: the RNN's, or the Transformer's last cross-attention
    averaged over heads) and, for the first ``layer_grids`` sentences and a model with
    ``layered_attention`` (the Transformer), grids of every layer and head: ``test_NNN_cross.png``,
    ``test_NNN_encoder.png``, ``test_NNN_decoder.png``. The raw weights of every sentence go to
    ``test_NNN.npz`` beside them (see :func:`save_weights`)."""
    hyps = translate_sentences(model, toks, sentences, cfg, device, need_weights=True)
    paths = []
    for n, (sentence, hyp) in enumerate(zip(sentences, hyps)):
        if hyp.attention is None:
            log.info("this model returns no attention weights (attention=none?): no heatmaps")
            return []
        src_ids = toks.src.encode(sentence)
        src = [toks.src.id_to_piece(i) for i in src_ids] + [EOS_PIECE]
        tgt = [toks.tgt.id_to_piece(i) for i in hyp.tokens] + [EOS_PIECE]
        title = f"{sentence}\n-> {toks.tgt.decode(hyp.tokens)}"
        paths.append(plot_attention(hyp.attention, src, tgt, folder / f"test_{n:03d}.png", title))
        maps = _every_layer(model, src_ids, hyp.tokens, device) if model.layered_attention else {}
        save_weights(folder / f"test_{n:03d}.npz", src, tgt, hyp.attention, maps)
        if n < layer_grids and maps:
            paths += _draw_every_layer(maps, src, tgt, title, folder / f"test_{n:03d}")
    return paths


def save_weights(path: Path, src: list[str], tgt: list[str], search: Tensor, maps: dict[str, list[Tensor]]) -> Path:
    """The raw attention of one example as ``.npz`` (numpy arrays; ``numpy.load`` reads it without
    pickle): ``source_tokens`` (S,) and ``output_tokens`` (T,) ending in ``</s>``, ``attention``
    (T, S) the weights the search used, and for a model with every layer's maps ``cross``
    (layers, heads, T, S), ``encoder`` (layers, heads, S, S), ``decoder`` (layers, heads, T, T)."""
    import numpy as np

    arrays = {kind: torch.stack([w[0] for w in layers]).float().cpu().numpy() for kind, layers in maps.items()}
    np.savez_compressed(path, source_tokens=np.array(src), output_tokens=np.array(tgt),
                        attention=search.float().cpu().numpy(), **arrays)
    return path


# The axes of each kind of map of Transformer.attention_weights: (rows, columns).
_MAP_AXES = {"cross": ("output", "source"), "encoder": ("source", "source"), "decoder": ("output", "output so far")}


def _every_layer(model: Seq2Seq, src_ids: list[int], out_ids: list[int], device: torch.device) -> dict[str, list[Tensor]]:
    """The model's ``attention_weights`` teacher-forced on its own translation (row t of a decoder
    map is the step that predicts output token t): kind -> one (1, H, R, C) tensor per layer."""
    src_t, src_len = pad_batch([src_ids], Seq2Seq.pad_id, eos=Seq2Seq.eos_id)  # (1, S), ending in eos
    tgt_in = torch.tensor([[Seq2Seq.bos_id, *out_ids]])  # (1, T): bos + the translation
    return model.attention_weights(src_t.to(device), src_len.to(device), tgt_in.to(device))


def _draw_every_layer(
    maps: dict[str, list[Tensor]], src: list[str], tgt: list[str], title: str, stem: Path
) -> list[Path]:
    """``<stem>_cross.png``, ``_encoder.png``, ``_decoder.png``: every layer and head of ``maps``
    (:func:`_every_layer`)."""
    tokens = {"source": src, "output": tgt, "output so far": [BOS_PIECE, *tgt[:-1]]}
    paths = []
    for kind, layers in maps.items():
        rows, cols = _MAP_AXES[kind]
        heads = [w[0] for w in layers]  # per layer: (1, H, R, C) -> (H, R, C)
        path = stem.with_name(f"{stem.name}_{kind}.png")
        paths.append(plot_attention_grid(heads, tokens[rows], tokens[cols], path, f"{kind} attention: {title}", rows, cols))
    return paths

