"""Positions inside attention (``attention.position``), for text and for patch grids.

Unlike :mod:`attnlab.layers.positional` (codes added to the embeddings once, ``model.posenc``),
these act in every self-attention layer, on the offset between a query and a key:

- ``none``:     nothing (the model's input positions alone).
- ``rope``:     rotary embeddings (Su et al. 2021, RoFormer, eq. 34): q and k are rotated by
                angles proportional to their position, so q_m . k_n depends on m - n only. In the
                ViT, 2-D axial RoPE: half the channels rotate with the patch row, half with the
                column (Heo et al. 2024), so scores depend on (dy, dx) only; the CLS token is
                not rotated.
- ``alibi``:    a bias -slope_h * |i - j| added to the scores, one slope per head from a
                geometric sequence (Press et al. 2022, ALiBi, sec. 3); in the ViT the distance
                is the Euclidean one between patches, sqrt(dy^2 + dx^2); CLS pairs get none.
- ``relative``: a learned bias per head and offset: T5 log-buckets of j - i in text (Raffel et
                al. 2020, sec. 2.1; bidirectional in encoders, past-only in decoders), a table
                indexed by (dy, dx), clipped to +-radius, in the ViT (Liu et al. 2021, Swin,
                eq. 4; Bao et al. 2022, BEiT, with three extra entries for CLS-to-patch,
                patch-to-CLS and CLS-to-CLS).

A bias and a mask are functions of (head, query index, key index) built from integer tensor
operations only, so the same definition is evaluated on broadcast index grids for the math path
and SDPA (a float ``attn_mask``) and called elementwise by FlexAttention (``score_mod`` /
``mask_mod``). Indices are absolute token positions: in text, query i of a decoding step with a
KV cache holding Tk keys is position i + Tk - Tq.

Rule for cross-attention: queries and keys index two different sequences, so their offset has no
meaning; positions and windows apply to self-attention only and cross-attention ignores them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from attnlab.errors import UserError
from attnlab.registry import Registry

POSITIONS: Registry[type["Position"]] = Registry("attention position")

# (h, query position, key position) -> bias, each a broadcastable integer tensor (or a 0-d one)
BiasFn = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Layout:
    """Where tokens sit: a sequence (``grid`` None) or ``prefix`` special tokens (the CLS token)
    followed by the patches of a ``grid`` = (R, C) in row-major order."""

    grid: tuple[int, int] | None = None
    prefix: int = 0

    def coords(self, pos: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Token positions (any shape) -> row, column and "is a special token", elementwise."""
        assert self.grid is not None
        patch = (pos - self.prefix).clamp(min=0)
        cols = self.grid[1]
        return patch // cols, patch % cols, pos < self.prefix


SEQUENCE = Layout()


class Position(nn.Module):
    """Base class: positions for ``heads`` heads of width ``head_dim``; ``grid`` True in the ViT;
    ``causal`` True in a decoder's self-attention (keys never follow their query)."""

    def __init__(self, heads: int, head_dim: int, *, grid: bool = False, causal: bool = False, spec=None) -> None:
        super().__init__()
        self.heads, self.head_dim, self.is_grid, self.causal = heads, head_dim, grid, causal

    def rotate(self, x: Tensor, pos: Tensor, layout: Layout) -> Tensor:
        """Queries or keys (B, H|Hk, T, Dh) at positions ``pos`` (T,) -> rotated (RoPE only)."""
        return x

    def bias(self, layout: Layout) -> BiasFn | None:
        """The bias function, or None when this variant adds none."""
        return None

    def no_weight_decay(self) -> set[str]:
        return set()


@POSITIONS.register("none")
class NoPosition(Position):
    pass


def _rotate_1d(x: Tensor, pos: Tensor, base: float) -> Tensor:
    """Rotate channel pairs (x_i, x_{i + d/2}) of x (..., T, d) by pos * base^(-2i/d) (pos (T,))."""
    d = x.shape[-1]
    freqs = base ** (-torch.arange(0, d // 2, device=x.device, dtype=torch.float32) * 2.0 / d)  # (d/2,)
    angles = pos.to(torch.float32).unsqueeze(-1) * freqs  # (T, d/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (..., T, d)


@POSITIONS.register("rope")
class RotaryPosition(Position):
    """RoPE; see the module docstring. 1-D needs an even head width, 2-D a multiple of 4."""

    def __init__(self, heads, head_dim, *, grid=False, causal=False, spec=None) -> None:
        super().__init__(heads, head_dim, grid=grid, causal=causal)
        need = 4 if grid else 2
        if head_dim % need:
            raise UserError(
                f"attention.position=rope needs a head width (width / heads) divisible by {need} here, got {head_dim}"
            )
        self.base = float(getattr(spec, "rope_base", 10000.0))

    def rotate(self, x: Tensor, pos: Tensor, layout: Layout) -> Tensor:
        if layout.grid is None:
            return _rotate_1d(x, pos, self.base)
        rows, cols, special = layout.coords(pos)  # (T,) each
        half = x.shape[-1] // 2
        rotated = torch.cat(
            [_rotate_1d(x[..., :half], rows, self.base), _rotate_1d(x[..., half:], cols, self.base)], dim=-1
        )
        return torch.where(special.unsqueeze(-1), x, rotated)  # the CLS token keeps its vector


def alibi_slopes(heads: int) -> Tensor:
    """Press et al. 2022, sec. 3: 2^(-8/n), 2^(-16/n), ... for n a power of two; otherwise the
    slopes of the next lower power of two, then every other slope of twice that many."""

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(heads).is_integer():
        return torch.tensor(power_of_two(heads))
    lower = 2 ** math.floor(math.log2(heads))
    return torch.tensor(power_of_two(lower) + power_of_two(2 * lower)[0::2][: heads - lower])


@POSITIONS.register("alibi")
class ALiBiPosition(Position):
    """ALiBi; see the module docstring. No parameters: slopes are fixed."""

    def __init__(self, heads, head_dim, *, grid=False, causal=False, spec=None) -> None:
        super().__init__(heads, head_dim, grid=grid, causal=causal)
        self.register_buffer("slopes", alibi_slopes(heads), persistent=False)  # (H,)

    def bias(self, layout: Layout) -> BiasFn:
        slopes = self.slopes

        def fn(h: Tensor, qpos: Tensor, kpos: Tensor) -> Tensor:
            if layout.grid is None:
                dist = (qpos - kpos).abs().to(slopes.dtype)
                return -slopes[h] * dist
            qr, qc, qs = layout.coords(qpos)
            kr, kc, ks = layout.coords(kpos)
            dist = ((qr - kr) ** 2 + (qc - kc) ** 2).to(slopes.dtype).sqrt()
            return torch.where(qs | ks, 0.0, -slopes[h] * dist)

        return fn


def t5_bucket(relative: Tensor, bidirectional: bool, num_buckets: int, max_distance: int) -> Tensor:
    """T5's bucket of each offset ``relative`` = key - query (Raffel et al. 2020; as in their code):
    half the buckets for exact small offsets, the rest log-spaced up to ``max_distance``;
    bidirectional: one half of the buckets for keys after the query; otherwise later keys share
    bucket 0 with the query itself (a causal decoder never sees them)."""
    bucket = torch.zeros_like(relative)
    n = -relative
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (n < 0).long() * num_buckets
        n = n.abs()
    else:
        n = n.clamp(min=0)
    exact = num_buckets // 2
    scaled = torch.log(n.clamp(min=1).float() / exact) / math.log(max_distance / exact) * (num_buckets - exact)
    large = (exact + scaled.long()).clamp(max=num_buckets - 1)
    return bucket + torch.where(n < exact, n, large)


@POSITIONS.register("relative")
class RelativePosition(Position):
    """Learned relative bias; see the module docstring. Table initialised to 0 (no bias)."""

    def __init__(self, heads, head_dim, *, grid=False, causal=False, spec=None) -> None:
        super().__init__(heads, head_dim, grid=grid, causal=causal)
        self.buckets = int(getattr(spec, "rel_buckets", 32))
        self.max_distance = int(getattr(spec, "rel_max_distance", 128))
        self.radius = int(getattr(spec, "rel_grid_radius", 7))
        if grid:
            side = 2 * self.radius + 1
            entries = side * side + 3  # + CLS->patch, patch->CLS, CLS->CLS
        else:
            if self.buckets < 4 or self.max_distance <= self.buckets // 2:
                raise UserError("attention.rel_buckets must be >= 4 and attention.rel_max_distance above half of it")
            entries = self.buckets
        self.table = nn.Parameter(torch.zeros(entries, heads))  # (entries, H)

    def index(self, layout: Layout, qpos: Tensor, kpos: Tensor) -> Tensor:
        """Table row of each (query, key) pair."""
        if layout.grid is None:
            return t5_bucket(kpos - qpos, not self.causal, self.buckets, self.max_distance)
        qr, qc, qs = layout.coords(qpos)
        kr, kc, ks = layout.coords(kpos)
        r, side = self.radius, 2 * self.radius + 1
        cell = ((kr - qr).clamp(-r, r) + r) * side + (kc - qc).clamp(-r, r) + r
        special = side * side + torch.where(qs & ks, 2, torch.where(qs, 0, 1))
        return torch.where(qs | ks, special, cell)

    def bias(self, layout: Layout) -> BiasFn:
        table = self.table

        def fn(h: Tensor, qpos: Tensor, kpos: Tensor) -> Tensor:
            return table[self.index(layout, qpos, kpos), h]

        return fn

    def no_weight_decay(self) -> set[str]:
        return {"table"}


def window_allows(window: int, layout: Layout) -> Callable[[Tensor, Tensor], Tensor]:
    """(query position, key position) -> may attend, for local attention of radius ``window``:
    text |i - j| <= w; patches max(|dy|, |dx|) <= w (a (2w+1)^2 neighbourhood), and the CLS token
    sees and is seen by every token."""

    def fn(qpos: Tensor, kpos: Tensor) -> Tensor:
        if layout.grid is None:
            return (qpos - kpos).abs() <= window
        qr, qc, qs = layout.coords(qpos)
        kr, kc, ks = layout.coords(kpos)
        near = ((qr - kr).abs() <= window) & ((qc - kc).abs() <= window)
        return near | qs | ks

    return fn


def make_position(spec, heads: int, head_dim: int, *, grid: bool = False, causal: bool = False) -> Position:
    """The ``spec.position`` variant for self-attention with ``heads`` heads of ``head_dim``."""
    return POSITIONS.get(str(spec.position))(heads, head_dim, grid=grid, causal=causal, spec=spec)
