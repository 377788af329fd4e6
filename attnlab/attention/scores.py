"""Attention score functions: how well does each key match each query?

All scores map queries ``q`` of shape (..., Tq, Dq) and keys ``k`` of shape (..., Tk, Dk) to
scores of shape (..., Tq, Tk); the leading dimensions (batch, heads) broadcast. A score that can
be written as a plain dot product after transforming the queries exposes :meth:`Score.as_dot`,
which lets :func:`attnlab.attention.attend` hand the work to torch's fused kernel.

- ``dot``:        q . k                                    (Luong et al. 2015, eq. 8, "dot";
                  the seed's k_i^T q_t with k_i = W_K h_i, q_t = W_Q s_t)
- ``scaled_dot``: q . k / sqrt(d)                          (Vaswani et al. 2017, eq. 1)
- ``general``:    q^T W k   (bilinear)                     (Luong et al. 2015, eq. 8, "general")
- ``additive``:   v^T tanh(W q + U k)                      (Bahdanau et al. 2015, appendix A.1.2)

With several heads, ``general`` and ``additive`` hold one set of parameters per head.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from attnlab.errors import UserError
from attnlab.registry import Registry

SCORES: Registry[type["Score"]] = Registry("attention score")


class Score(nn.Module):
    """Base class. ``heads`` > 0 means inputs are (B, heads, T, D) and parameters are per head."""

    def __init__(self, query_dim: int, key_dim: int, heads: int = 0) -> None:
        super().__init__()
        self.query_dim, self.key_dim, self.heads = query_dim, key_dim, heads

    def forward(self, q: Tensor, k: Tensor) -> Tensor:  # (..., Tq, Dq), (..., Tk, Dk) -> (..., Tq, Tk)
        raise NotImplementedError

    def as_dot(self, q: Tensor) -> tuple[Tensor, float] | None:
        """``(q', scale)`` with ``score(q, k) == scale * q' . k``, or None if no such form exists."""
        return None

    def _per_head(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.heads, *shape) if self.heads else shape


def _require_same_dim(name: str, query_dim: int, key_dim: int) -> None:
    if query_dim != key_dim:
        raise UserError(
            f"attention={name} needs queries and keys of one size, got {query_dim} and {key_dim}; "
            "project them to one size or use attention=general or attention=additive"
        )


@SCORES.register("dot")
class DotScore(Score):
    """score(q, k) = q . k"""

    def __init__(self, query_dim: int, key_dim: int, heads: int = 0) -> None:
        super().__init__(query_dim, key_dim, heads)
        _require_same_dim("dot", query_dim, key_dim)

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        return q @ k.transpose(-2, -1)

    def as_dot(self, q: Tensor) -> tuple[Tensor, float]:
        return q, 1.0


@SCORES.register("scaled_dot")
class ScaledDotScore(Score):
    """score(q, k) = q . k / sqrt(d): keeps the logits' variance near 1 for unit-variance inputs."""

    def __init__(self, query_dim: int, key_dim: int, heads: int = 0) -> None:
        super().__init__(query_dim, key_dim, heads)
        _require_same_dim("scaled_dot", query_dim, key_dim)
        self.scale = 1.0 / math.sqrt(key_dim)

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        return (q @ k.transpose(-2, -1)) * self.scale

    def as_dot(self, q: Tensor) -> tuple[Tensor, float]:
        return q, self.scale


@SCORES.register("general")
class GeneralScore(Score):
    """score(q, k) = q^T W k (bilinear). Equal to a dot product of (q W) and k, hence fusable."""

    def __init__(self, query_dim: int, key_dim: int, heads: int = 0) -> None:
        super().__init__(query_dim, key_dim, heads)
        self.weight = nn.Parameter(torch.empty(self._per_head((query_dim, key_dim))))
        # Starts near I / sqrt(d) (when square), i.e. as scaled_dot, so deep models train from
        # step one; the formula itself has no fixed scale: W learns it (Luong et al. had none).
        nn.init.normal_(self.weight, std=0.1 / math.sqrt(query_dim))
        if query_dim == key_dim:
            with torch.no_grad():
                self.weight += torch.eye(query_dim) / math.sqrt(key_dim)

    def _transform(self, q: Tensor) -> Tensor:
        # (B, H, Tq, Dq) @ (H, Dq, Dk) -> (B, H, Tq, Dk); without heads (..., Tq, Dq) @ (Dq, Dk)
        return q @ self.weight

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        return self._transform(q) @ k.transpose(-2, -1)

    def as_dot(self, q: Tensor) -> tuple[Tensor, float]:
        return self._transform(q), 1.0


@SCORES.register("additive")
class AdditiveScore(Score):
    """score(q, k) = v^T tanh(W q + U k), a one-hidden-layer network on each (query, key) pair.

    It builds a (..., Tq, Tk, hidden) tensor, so it costs memory proportional to Tq * Tk * hidden;
    it has no dot-product form and always runs on the math path.
    """

    def __init__(self, query_dim: int, key_dim: int, heads: int = 0, hidden_dim: int = 0) -> None:
        super().__init__(query_dim, key_dim, heads)
        hidden = hidden_dim or key_dim
        self.w_q = nn.Parameter(torch.empty(self._per_head((query_dim, hidden))))
        self.w_k = nn.Parameter(torch.empty(self._per_head((key_dim, hidden))))
        self.bias = nn.Parameter(torch.zeros(self._per_head((1, hidden))))
        self.v = nn.Parameter(torch.empty(self._per_head((hidden, 1))))
        for p, fan_in in ((self.w_q, query_dim), (self.w_k, key_dim), (self.v, hidden)):
            nn.init.normal_(p, std=1.0 / math.sqrt(fan_in))

    def project_keys(self, k: Tensor) -> Tensor:
        """U k, which depends on the keys only: a decoder computes it once per source sentence."""
        return k @ self.w_k

    def forward(self, q: Tensor, k: Tensor, projected_keys: Tensor | None = None) -> Tensor:
        uk = self.project_keys(k) if projected_keys is None else projected_keys  # (..., Tk, A)
        wq = q @ self.w_q + self.bias  # (..., Tq, A)
        hidden = torch.tanh(wq.unsqueeze(-2) + uk.unsqueeze(-3))  # (..., Tq, Tk, A)
        v = self.v.unsqueeze(-3) if self.heads else self.v  # per head: (H, 1, A, 1)
        return (hidden @ v).squeeze(-1)  # (..., Tq, Tk, 1) -> (..., Tq, Tk)


def make_score(name: str, query_dim: int, key_dim: int, heads: int = 0, hidden_dim: int = 0) -> Score:
    """Build a score module by name; an unknown name lists the valid ones."""
    if name == "none":
        raise UserError("attention=none has no score function; pick one of " + ", ".join(SCORES))
    cls = SCORES.get(name)
    if cls is AdditiveScore:
        return AdditiveScore(query_dim, key_dim, heads, hidden_dim)
    return cls(query_dim, key_dim, heads)
