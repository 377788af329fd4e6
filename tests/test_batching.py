"""Tests for attnlab.data.batching: token-budget batches, fixed batches, padding."""

from __future__ import annotations

import random

import pytest
import torch

from attnlab.data.batching import fixed_batches, pad_batch, token_batches

LENGTHS = [random.Random(0).randint(1, 60) for _ in range(3000)] + [500]  # one over the budget


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _flat(batches: list[list[int]]) -> list[int]:
    return sorted(i for b in batches for i in b)


@pytest.mark.parametrize("shuffle", [True, False])
def test_token_batches_cover_every_index_once_within_budget(shuffle):
    batches = token_batches(LENGTHS, 400, _gen(), shuffle=shuffle, chunk_size=512)
    assert _flat(batches) == list(range(len(LENGTHS)))
    for b in batches:
        assert b, "empty batch"
        assert len(b) * max(LENGTHS[i] for i in b) <= 400 or len(b) == 1
    assert [len(LENGTHS) - 1] in batches  # the 500-token example gets a batch of its own


def test_token_batches_are_bucketed_and_dense():
    batches = token_batches(LENGTHS, max_tokens=400, generator=_gen(), shuffle=True, chunk_size=512)
    padded = sum(len(b) * max(LENGTHS[i] for i in b) for b in batches)
    assert padded < 1.15 * sum(LENGTHS)  # sorting inside chunks keeps padding low
    assert len(batches) < 1.2 * sum(LENGTHS) / 400 + 10  # batches are nearly full


def test_token_batches_deterministic_and_shuffled():
    a = token_batches(LENGTHS, 400, _gen(1), True)
    assert a == token_batches(LENGTHS, 400, _gen(1), True)
    assert a != token_batches(LENGTHS, 400, _gen(2), True)
    g = _gen(1)
    first, second = token_batches(LENGTHS, 400, g, True), token_batches(LENGTHS, 400, g, True)
    assert first == a and second != first  # the generator state advances between epochs


def test_token_batches_unshuffled_are_sorted_by_length():
    batches = token_batches(LENGTHS, 400, None, shuffle=False)
    widths = [max(LENGTHS[i] for i in b) for b in batches]
    assert widths == sorted(widths)
    assert token_batches([], 100, None, True) == []
    with pytest.raises(ValueError):
        token_batches(LENGTHS, 0, None, True)


def test_fixed_batches():
    batches = fixed_batches(10, 4, _gen(), shuffle=True)
    assert [len(b) for b in batches] == [4, 4, 2] and _flat(batches) == list(range(10))
    assert batches == fixed_batches(10, 4, _gen(), shuffle=True)
    assert fixed_batches(5, 2, None, shuffle=False) == [[0, 1], [2, 3], [4]]


def test_pad_batch():
    tokens, lengths = pad_batch([[5, 6, 7], [8]], pad_id=0, bos=1, eos=2)
    assert tokens.dtype == torch.long and lengths.dtype == torch.long
    assert tokens.tolist() == [[1, 5, 6, 7, 2], [1, 8, 2, 0, 0]]
    assert lengths.tolist() == [5, 3]
    tokens, lengths = pad_batch([[5], [], [6, 7]], pad_id=9, bos=None, eos=None)
    assert tokens.tolist() == [[5, 9], [9, 9], [6, 7]] and lengths.tolist() == [1, 0, 2]
    tokens, lengths = pad_batch([[4, 4]], pad_id=0, bos=None, eos=2)
    assert tokens.shape == (1, 3) and tokens.tolist() == [[4, 4, 2]]
