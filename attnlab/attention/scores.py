"""Attention score functions: how well does each key match each query?

Every score maps queries ``q`` (..., Tq, Dq) and keys ``k`` (..., Tk, Dk) to scores (..., Tq, Tk);
the leading dimensions (B, H) broadcast (letters: :mod:`attnlab.attention`).

- ``dot``:        q . k                                    (Luong et al. 2015, eq. 8, "dot";
                  the seed's k_i^T q_t with k_i = W_K h_i, q_t = W_Q s_t)
- ``scaled_dot``: q . k / sqrt(d)                          (Vaswani et al. 2017, eq. 1)
- ``general``:    q^T W k   (bilinear)                     (Luong et al. 2015, eq. 8, "general")
- ``additive``:   v^T tanh(W q + U k)                      (Bahdanau et al. 2015, appendix A.1.2)
- ``cosine``:     tau * cos(q, k), tau learned per head    (Liu et al. 2022, Swin v2, eq. 2)
- ``linear``:     phi(q) . phi(k), phi = elu + 1, weights normalised by their sum instead of a
                  softmax (Katharopoulos et al. 2020, eq. 4-7), which allows an O(n) path.

The hooks every score shares, so that no model asks which score it holds:

- :meth:`Score.prepare_keys`: work that depends on the keys only (U k of the additive score, the
  key normalisation of cosine, the feature map of linear); a decoder does it once per source.
  ``score(q, k) == score.compare(q, score.prepare_keys(k))``.
- :meth:`Score.as_dot`: ``(q', scale)`` when ``compare(q, k') == scale * q' . k'``, which lets
  :func:`attnlab.attention.attend` hand the work to a fused kernel.
- :meth:`Score.normalize`: scores -> weights (masked softmax; a masked sum for ``linear``).
- :meth:`Score.no_weight_decay`: names of parameters that are not weight matrices (the
  trainer keeps them out of weight decay, as timm's models declare theirs).

With several heads, parameterised scores hold one set of parameters per head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.errors import UserError
from attnlab.registry import Registry

SCORES: Registry[type["Score"]] = Registry("attention score")


class Score(nn.Module):
    """Base class. ``heads`` > 0 means inputs are (B, H, T, D) and parameters are per head."""

    #: how scores become weights: "softmax", or "sum" (linear attention's phi(q).phi(k) / sum)
    normalizer = "softmax"
    #: whether :meth:`as_dot` gives a form (set by the scores that override it)
    dot_form = False
    #: whether :meth:`prepare_keys` holds per-head parameters (then grouped-query keys are
    #: expanded to every query head first)
    per_head_keys = False

    def __init__(self, query_dim: int, key_dim: int, heads: int = 0) -> None:
        super().__init__()
        self.query_dim, self.key_dim, self.heads = query_dim, key_dim, heads

    @classmethod
    def from_spec(cls, spec, query_dim: int, key_dim: int, heads: int = 0) -> "Score":
        """Build from the attention spec (the factory's call); a score with options of its own
        reads them here, so adding one needs no factory edit."""
        return cls(query_dim, key_dim, heads)

    def prepare_keys(self, k: Tensor) -> Tensor:
        """Keys (..., Tk, Dk) -> what :meth:`compare` reads; the identity unless overridden."""
        return k

    def compare(self, q: Tensor, k: Tensor) -> Tensor:
        """Queries (..., Tq, Dq) and *prepared* keys (..., Tk, Dk') -> scores (..., Tq, Tk)."""
        raise NotImplementedError

    def forward(self, q: Tensor, k: Tensor) -> Tensor:  # (..., Tq, Dq), (..., Tk, Dk) -> (..., Tq, Tk)
        return self.compare(q, self.prepare_keys(k))

    def as_dot(self, q: Tensor) -> tuple[Tensor, float] | None:
        """``(q', scale)`` with ``compare(q, k') == scale * q' . k'``, or None if no such form exists."""
        return None

    def normalize(self, scores: Tensor, mask: Tensor | None) -> Tensor:
        """Scores (..., Tq, Tk) -> weights, exactly zero where ``mask`` is False."""
        return masked_softmax(scores, mask)

    def no_weight_decay(self) -> set[str]:
        """Names of this module's parameters that weight decay must not shrink."""
        return set()

    def _per_head(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.heads, *shape) if self.heads else shape


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over the last dim, with exactly zero weight where ``mask`` is False.

    A query whose keys are all masked gets all-zero weights (so a zero context), never NaN.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    # A finite "minus infinity" keeps fully masked rows free of NaN, forward and backward.
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1).masked_fill(~mask, 0.0)


def _require_same_dim(name: str, query_dim: int, key_dim: int) -> None:
    if query_dim != key_dim:
        raise UserError(
            f"attention={name} needs queries and keys of one size, got {query_dim} and {key_dim}; "
            "project them to one size or use attention=general or attention=additive"
        )


@SCORES.register("dot")
class DotScore(Score):
    """score(q, k) = q . k"""

    dot_form = True

    def __init__(self, query_dim: int, key_dim: int, heads: int = 0) -> None:
        super().__init__(query_dim, key_dim, heads)
        _require_same_dim("dot", query_dim, key_dim)

    def compare(self, q: Tensor, k: Tensor) -> Tensor:
        return q @ k.transpose(-2, -1)  # (..., Tq, D) @ (..., D, Tk)

    def as_dot(self, q: Tensor) -> tuple[Tensor, float]:
        return q, 1.0


@SCORES.register("scaled_dot")
class ScaledDotScore(Score):
    """score(q, k) = q . k / sqrt(d): keeps the logits' variance near 1 for unit-variance inputs."""

    dot_form = True

    def __init__(self, query_dim: int, key_dim: int, heads: int = 0) -> None:
        super().__init__(query_dim, key_dim, heads)
        _require_same_dim("scaled_dot", query_dim, key_dim)
        self.scale = 1.0 / math.sqrt(key_dim)

    def compare(self, q: Tensor, k: Tensor) -> Tensor:
        return (q @ k.transpose(-2, -1)) * self.scale

    def as_dot(self, q: Tensor) -> tuple[Tensor, float]:
        return q, self.scale


@SCORES.register("general")
class GeneralScore(Score):
    """score(q, k) = q^T W k (bilinear). Equal to a dot product of (q W) and k, hence fusable."""

    dot_form = True

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

    def compare(self, q: Tensor, k: Tensor) -> Tensor:
        return self._transform(q) @ k.transpose(-2, -1)

    def as_dot(self, q: Tensor) -> tuple[Tensor, float]:
        return self._transform(q), 1.0


@SCORES.register("additive")
class AdditiveScore(Score):
    """score(q, k) = v^T tanh(W q + U k), a one-hidden-layer network on each (query, key) pair.

    It builds a (..., Tq, Tk, A) tensor, so it costs memory proportional to Tq * Tk * A; it has no
    dot-product form and always runs on the math path. :meth:`prepare_keys` is U k.
    """

    per_head_keys = True

    def __init__(self, query_dim: int, key_dim: int, heads: int = 0, hidden_dim: int = 0) -> None:
        super().__init__(query_dim, key_dim, heads)
        hidden = hidden_dim or key_dim
        self.w_q = nn.Parameter(torch.empty(self._per_head((query_dim, hidden))))
        self.w_k = nn.Parameter(torch.empty(self._per_head((key_dim, hidden))))
        self.bias = nn.Parameter(torch.zeros(self._per_head((1, hidden))))
        self.v = nn.Parameter(torch.empty(self._per_head((hidden, 1))))
        for p, fan_in in ((self.w_q, query_dim), (self.w_k, key_dim), (self.v, hidden)):
            nn.init.normal_(p, std=1.0 / math.sqrt(fan_in))

    @classmethod
    def from_spec(cls, spec, query_dim: int, key_dim: int, heads: int = 0) -> "AdditiveScore":
        return cls(query_dim, key_dim, heads, hidden_dim=int(getattr(spec, "additive_dim", 0)))

    def prepare_keys(self, k: Tensor) -> Tensor:
        """U k (..., Tk, A), which depends on the keys only."""
        return k @ self.w_k

    def compare(self, q: Tensor, uk: Tensor) -> Tensor:
        wq = q @ self.w_q + self.bias  # (..., Tq, A)
        hidden = torch.tanh(wq.unsqueeze(-2) + uk.unsqueeze(-3))  # (..., Tq, Tk, A)
        v = self.v.unsqueeze(-3) if self.heads else self.v  # per head: (H, 1, A, 1)
        return (hidden @ v).squeeze(-1)  # (..., Tq, Tk, 1) -> (..., Tq, Tk)

    def no_weight_decay(self) -> set[str]:
        return {"v"}  # the output vector of a one-layer network, kept as in the trainer so far


@SCORES.register("cosine")
class CosineScore(Score):
    """score(q, k) = tau * (q / |q|) . (k / |k|), tau = exp(s) learned per head, at most 100
    (Liu et al. 2022, Swin Transformer v2, sec. 3.2, eq. 2: "scaled cosine attention").

    Normalising queries and keys bounds the logits to [-tau, tau], which keeps attention from
    collapsing onto a few keys in large models; tau starts at 10 (Swin v2 learns 1/tau).
    """

    dot_form = True

    max_log_tau = math.log(100.0)

    def __init__(self, query_dim: int, key_dim: int, heads: int = 0) -> None:
        super().__init__(query_dim, key_dim, heads)
        _require_same_dim("cosine", query_dim, key_dim)
        self.log_tau = nn.Parameter(torch.full(self._per_head((1, 1)), math.log(10.0)))

    def tau(self) -> Tensor:
        return self.log_tau.clamp(max=self.max_log_tau).exp()  # (H, 1, 1) or (1, 1)

    def prepare_keys(self, k: Tensor) -> Tensor:
        return F.normalize(k, dim=-1)

    def compare(self, q: Tensor, k: Tensor) -> Tensor:
        return (F.normalize(q, dim=-1) * self.tau()) @ k.transpose(-2, -1)

    def as_dot(self, q: Tensor) -> tuple[Tensor, float]:
        return F.normalize(q, dim=-1) * self.tau(), 1.0  # tau folded into the queries

    def no_weight_decay(self) -> set[str]:
        return {"log_tau"}


@SCORES.register("linear")
class LinearScore(Score):
    """Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs", eq. 4-7):

        V'_i = sum_j phi(q_i) . phi(k_j) v_j / sum_j phi(q_i) . phi(k_j),   phi(x) = elu(x) + 1

    Its "scores" phi(q) . phi(k) are positive similarities, normalised by their sum (no softmax).
    Since phi(q_i) can be taken out of both sums, :func:`linear_context` computes the output in
    O(n d^2) instead of O(n^2 d), causal too (prefix sums, eq. 8-9); the (Tq, Tk) weights are built
    only when asked for.
    """

    normalizer = "sum"
    eps = 1e-6

    def __init__(self, query_dim: int, key_dim: int, heads: int = 0) -> None:
        super().__init__(query_dim, key_dim, heads)
        _require_same_dim("linear", query_dim, key_dim)

    @staticmethod
    def feature(x: Tensor) -> Tensor:
        return F.elu(x) + 1.0

    def prepare_keys(self, k: Tensor) -> Tensor:
        return self.feature(k)

    def compare(self, q: Tensor, k: Tensor) -> Tensor:
        return self.feature(q) @ k.transpose(-2, -1)  # phi(q) . phi(k): (..., Tq, Tk), all > 0

    def normalize(self, scores: Tensor, mask: Tensor | None) -> Tensor:
        if mask is not None:
            scores = scores.masked_fill(~mask, 0.0)
        return scores / (scores.sum(dim=-1, keepdim=True) + self.eps)


def linear_context(
    q_feat: Tensor, k_feat: Tensor, v: Tensor, key_mask: Tensor | None, causal: bool, eps: float, chunk: int = 64
) -> Tensor:
    """The O(n) form of linear attention: phi(q) (..., Tq, D), phi(k) (..., Tk, D), v (..., Tk, Dv).

    key_mask (..., 1, Tk) or None zeroes padded keys. Non-causal: phi(q_i) (sum_j phi(k_j) v_j^T) /
    phi(q_i) . sum_j phi(k_j). Causal (query i is position i + Tk - Tq and sees keys j up to it):
    the prefix sums S = sum_j phi(k_j) v_j^T and z = sum_j phi(k_j) are carried from chunk to chunk
    of ``chunk`` queries, with the exact lower-triangular product inside a chunk (the chunked form
    of Katharopoulos et al.'s eq. 8-9), so memory is O(n * chunk + D * Dv), not O(n * D * Dv).
    """
    if key_mask is not None:
        k_feat = k_feat * key_mask.transpose(-2, -1).to(k_feat.dtype)  # (..., Tk, 1): padding -> 0
    if not causal:
        kv = k_feat.transpose(-2, -1) @ v  # (..., D, Tk) @ (..., Tk, Dv) -> (..., D, Dv)
        num = q_feat @ kv  # (..., Tq, Dv)
        den = q_feat @ k_feat.sum(dim=-2).unsqueeze(-1)  # (..., Tq, D) @ (..., D, 1) -> (..., Tq, 1)
        return num / (den + eps)
    q_len, k_len = q_feat.shape[-2], k_feat.shape[-2]
    shift = k_len - q_len  # keys before the first query (a KV cache)
    state = k_feat[..., :shift, :].transpose(-2, -1) @ v[..., :shift, :]  # S: (..., D, Dv)
    norm = k_feat[..., :shift, :].sum(dim=-2)  # z: (..., D)
    outs = []
    for start in range(0, q_len, chunk):
        end = min(start + chunk, q_len)
        qc = q_feat[..., start:end, :]  # (..., C, D)
        kc, vc = k_feat[..., shift + start : shift + end, :], v[..., shift + start : shift + end, :]
        inner = (qc @ kc.transpose(-2, -1)).tril()  # (..., C, C): key j <= query i inside the chunk
        num = qc @ state + inner @ vc  # (..., C, Dv)
        den = qc @ norm.unsqueeze(-1) + inner.sum(dim=-1, keepdim=True)  # (..., C, 1)
        outs.append(num / (den + eps))
        state = state + kc.transpose(-2, -1) @ vc
        norm = norm + kc.sum(dim=-2)
    return torch.cat(outs, dim=-2)  # (..., Tq, Dv)


def make_score(name: str, query_dim: int, key_dim: int, heads: int = 0, hidden_dim: int = 0, spec=None) -> Score:
    """Build a score module by name (with the options of ``spec``, an attention spec, or
    ``hidden_dim`` for the additive score); an unknown name lists the valid ones."""
    if name == "none":
        raise UserError("attention=none has no score function; pick one of " + ", ".join(SCORES))
    cls = SCORES.get(name)
    if spec is None:
        from types import SimpleNamespace

        spec = SimpleNamespace(additive_dim=hidden_dim)
    return cls.from_spec(spec, query_dim, key_dim, heads)
