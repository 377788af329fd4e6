"""The shared attention core: score functions, masks, attend() and multi-head attention."""

from attnlab.attention.attend import attend, masked_softmax
from attnlab.attention.masks import causal_mask, padding_mask
from attnlab.attention.multihead import MultiHeadAttention, reorder_cache
from attnlab.attention.scores import SCORES, Score, make_score

__all__ = [
    "SCORES",
    "MultiHeadAttention",
    "Score",
    "attend",
    "causal_mask",
    "make_score",
    "masked_softmax",
    "padding_mask",
    "reorder_cache",
]
