"""Decoding: the searches (greedy, beam, sampling) and translating sentences with them."""

from attnlab.decode.search import (
    Hypothesis,
    beam_search,
    beam_search_n_best,
    filter_logits,
    greedy_search,
    length_penalty,
    max_lengths,
    n_best_batch,
    sample_n,
    sampling_generator,
    translate_batch,
)

__all__ = [
    "Hypothesis",
    "beam_search",
    "beam_search_n_best",
    "filter_logits",
    "greedy_search",
    "length_penalty",
    "max_lengths",
    "n_best_batch",
    "sample_n",
    "sampling_generator",
    "translate_batch",
]
