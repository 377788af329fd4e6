"""The small interface every translator offers to training and to the search (greedy, beam).

Training calls ``forward`` with teacher forcing. The search calls ``encode`` once, then ``step``
once per output position; ``reorder`` keeps the rows of the surviving beam hypotheses. The RNN
and the Transformer implement it, so one search serves both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn


@dataclass
class Memory:
    """The encoded source: states (B, S, D), key mask (B, 1, S) (True = real token), and any
    model-specific precomputation (e.g. projected keys) in ``extra``."""

    states: Tensor
    mask: Tensor
    extra: dict[str, Tensor]

    def select(self, index: Tensor) -> "Memory":
        """Rows ``index`` of the batch (beam search)."""
        return Memory(
            self.states.index_select(0, index),
            self.mask.index_select(0, index),
            {k: v.index_select(0, index) for k, v in self.extra.items()},
        )


class Seq2Seq(nn.Module):
    """Base class of the translators; token ids: pad 0, bos 1, eos 2 (see attnlab.data.tokenizer)."""

    pad_id, bos_id, eos_id = 0, 1, 2

    #: Whether ``attention_weights`` (the models' common protocol) returns attention of the
    #: model's own layers and heads beyond the one the search uses: ``"encoder"``, ``"cross"``
    #: and ``"decoder"``, one (B, H, ., .) tensor per layer (the Transformer). False where its
    #: ``cross`` is the search's one attention as one layer and one head and there is nothing else
    #: (the RNN). Pictures and the gym draw and score every layer and head only where it is True.
    layered_attention: bool = False

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: src (B, S), src_lengths (B,), tgt_in (B, T) starting with bos ->
        logits (B, T, V) for the next token at each position."""
        raise NotImplementedError

    def encode(self, src: Tensor, src_lengths: Tensor) -> Memory:
        raise NotImplementedError

    def init_state(self, memory: Memory) -> Any:
        """The decoder state before the first step (for the Transformer: an empty cache)."""
        raise NotImplementedError

    def step(
        self, tokens: Tensor, state: Any, memory: Memory, need_weights: bool = False
    ) -> tuple[Tensor, Any, Tensor | None]:
        """One decoding step: tokens (B,) just emitted -> log-probabilities (B, V) of the next
        token, the new state, and the cross-attention weights (B, S) when asked for."""
        raise NotImplementedError

    def reorder(self, state: Any, index: Tensor) -> Any:
        """The state of rows ``index`` (beam search)."""
        raise NotImplementedError
