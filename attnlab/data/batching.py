"""Batches of example indices, and padding of token sequences into tensors.

Translation batches are built by token budget (as in fairseq / "Attention is all you need",
section 5.1): examples of similar length go together, so little compute is spent on padding, and
a batch holds as many sentences as fit in ``max_tokens`` padded tokens. Randomness comes only
from the ``torch.Generator`` passed in, so a run is reproducible and resumable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_CHUNK = 4096  # examples sorted together: enough for tight buckets, few enough to mix


def _order(n: int, generator: torch.Generator | None, shuffle: bool) -> list[int]:
    """``0..n-1``, shuffled with ``generator`` when ``shuffle`` is set."""
    if not shuffle:
        return list(range(n))
    return torch.randperm(n, generator=generator).tolist()


def _shuffled(items: list, generator: torch.Generator | None, shuffle: bool) -> list:
    return [items[i] for i in _order(len(items), generator, shuffle)]


def token_batches(
    lengths: Sequence[int],
    max_tokens: int,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    chunk_size: int = DEFAULT_CHUNK,
) -> list[list[int]]:
    """Group example indices into length-bucketed batches of at most ``max_tokens`` padded tokens.

    ``lengths[i]`` is the padded length example ``i`` needs (for translation, the longer of source
    and target, special tokens included). With ``shuffle``, examples are shuffled, cut into chunks
    of ``chunk_size``, sorted by length inside each chunk, packed greedily so that
    ``len(batch) * max(lengths in batch) <= max_tokens`` (a longer example gets a batch of its own),
    and the batch order is shuffled. Without ``shuffle``, the whole data is one sorted chunk and
    batches come in order of length (fast evaluation). Every index appears exactly once.
    """
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    order = _order(len(lengths), generator, shuffle)
    chunk = chunk_size if shuffle else max(len(order), 1)
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        ranked = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(_pack(ranked, lengths, max_tokens))
    return _shuffled(batches, generator, shuffle)


def _pack(ranked: list[int], lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Greedy packing of indices sorted by ascending length under the padded-token budget."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in ranked:
        width = max(lengths[i], 1)  # sorted ascending, so the newest example is the longest
        if current and (len(current) + 1) * width > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def fixed_batches(
    n: int, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True
) -> list[list[int]]:
    """Indices ``0..n-1`` in batches of ``batch_size`` (the last may be smaller)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = _order(n, generator, shuffle)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def pad_batch(
    seqs: Sequence[Sequence[int]], pad_id: int, bos: int | None = None, eos: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame each sequence with ``bos``/``eos`` (when given) and right-pad to one tensor.

    Returns ``tokens`` (B, T) and ``lengths`` (B,), both int64; ``lengths`` counts bos/eos, and
    ``tokens[b, lengths[b]:] == pad_id``.
    """
    if not seqs:
        raise ValueError("pad_batch needs at least one sequence")
    head = [] if bos is None else [bos]
    tail = [] if eos is None else [eos]
    framed = [head + list(s) + tail for s in seqs]
    lengths = torch.tensor([len(s) for s in framed], dtype=torch.long)  # (B,)
    width = int(lengths.max())
    tokens = torch.tensor([s + [pad_id] * (width - len(s)) for s in framed], dtype=torch.long)
    return tokens.view(len(framed), width), lengths  # (B, T), (B,)
