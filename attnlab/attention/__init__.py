"""The shared attention core: scores, positions, masks, attend() and multi-head attention.

One spec (:class:`attnlab.config.AttentionConfig`, the ``attention`` config group) describes the
attention of every model; :mod:`attnlab.attention.factory` is its only reader.

Legend of dimension letters, used by every shape comment in this package:

    B        batch
    H        query heads                     Hk   key/value heads (attention.kv_heads; H for MHA)
    Tq, Tk   query and key/value lengths     T    one length for both (self-attention)
    D        model width                     Dh   width of one head, D / H
    Dq, Dk, Dv   query, key and value widths of a score (Dh inside multi-head attention)
    A        hidden width of the additive score
    R, C     rows and columns of a patch grid (ViT); N = R * C patches
"""

from attnlab.attention.attend import BACKENDS, attend, masked_softmax
from attnlab.attention.factory import as_spec, check_spec, make_position_for, make_score_for
from attnlab.attention.masks import causal_mask, padding_mask
from attnlab.attention.multihead import MultiHeadAttention, reorder_cache
from attnlab.attention.positions import POSITIONS, SEQUENCE, Layout
from attnlab.attention.scores import SCORES, Score, make_score

__all__ = [
    "BACKENDS",
    "POSITIONS",
    "SCORES",
    "SEQUENCE",
    "Layout",
    "MultiHeadAttention",
    "Score",
    "as_spec",
    "attend",
    "causal_mask",
    "check_spec",
    "make_position_for",
    "make_score",
    "make_score_for",
    "masked_softmax",
    "padding_mask",
    "reorder_cache",
]
