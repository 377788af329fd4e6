"""Boolean attention masks. Convention (as torch's SDPA): ``True`` = this key may be attended to.

Masks broadcast against scores of shape (..., Tq, Tk), so a padding mask is (B, 1, Tk) and a
causal mask is (Tq, Tk). Combine masks with ``&``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def padding_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """(B,) lengths -> (B, 1, T) mask, True at real (non-padding) key positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    positions = torch.arange(max_len, device=lengths.device)
    return (positions.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1)  # (B, T) -> (B, 1, T)


def causal_mask(q_len: int, k_len: int | None = None, device: torch.device | None = None) -> Tensor:
    """(Tq, Tk) mask where query i sees keys up to its own position (no look-ahead).

    Aligned bottom-right: when Tq < Tk (incremental decoding with cached keys) the queries are
    the last Tq positions, so the last query sees every key.
    """
    k_len = q_len if k_len is None else k_len
    q_pos = torch.arange(q_len, device=device).unsqueeze(1) + (k_len - q_len)  # (Tq, 1)
    k_pos = torch.arange(k_len, device=device).unsqueeze(0)  # (1, Tk)
    return k_pos <= q_pos
