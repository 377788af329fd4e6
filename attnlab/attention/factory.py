"""The one reader of the attention spec (:class:`attnlab.config.AttentionConfig`).

Models hand the spec whole to their attention modules; only this module looks inside it: it turns
it into a score (:data:`~attnlab.attention.scores.SCORES`) and a position variant
(:data:`~attnlab.attention.positions.POSITIONS`), and :func:`check_spec` validates it against the
registries before any work (the config check calls it), so a new variant is one registered class
plus one YAML file in ``conf/attention/``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from attnlab.attention.attend import BACKENDS
from attnlab.attention.positions import POSITIONS, Position, make_position
from attnlab.attention.scores import SCORES, Score, make_score
from attnlab.config import AttentionConfig
from attnlab.errors import UserError

LOCAL = ("none", "monotonic", "predictive")  # Luong et al. 2015: global, local-m, local-p
_FIELDS = {f.name for f in dataclasses.fields(AttentionConfig)}


def as_spec(spec: Any = None) -> AttentionConfig:
    """An :class:`AttentionConfig` from a spec, a (Dict)Config of one, a score name, or None."""
    if isinstance(spec, AttentionConfig):
        return spec
    if spec is None:
        return AttentionConfig()
    if isinstance(spec, str):
        return AttentionConfig(score=spec)
    items = dict(spec.items()) if hasattr(spec, "items") else dict(vars(spec))
    # a spec saved by an older attnlab lacks the newer keys: they take their defaults
    return AttentionConfig(**{k: (str(v) if isinstance(v, str) or hasattr(v, "value") else v)
                              for k, v in items.items() if k in _FIELDS})


def make_score_for(spec: Any, query_dim: int, key_dim: int, heads: int = 0) -> Score:
    """The spec's score for queries of ``query_dim`` and keys of ``key_dim``."""
    spec = as_spec(spec)
    return make_score(str(spec.score), query_dim, key_dim, heads=heads, spec=spec)


def make_position_for(spec: Any, heads: int, head_dim: int, *, cross: bool = False, grid: bool = False,
                      causal: bool = False) -> Position:
    """The spec's position variant; cross-attention gets none (positions.py, rule for cross-attention)."""
    spec = as_spec(spec)
    if cross:
        return POSITIONS.get("none")(heads, head_dim)
    return make_position(spec, heads, head_dim, grid=grid, causal=causal)


def spec_label(spec: Any) -> str:
    """A short name of the variant a spec defines, for results and reports: the score, then each
    key that changes the numbers (``scaled_dot+rope+window8+kv1``); backends compute the same
    function, so they are not part of it."""
    spec = as_spec(spec)
    parts = [str(spec.score)]
    if spec.position != "none":
        parts.append(str(spec.position))
    if spec.local != "none":
        parts.append(f"local-{spec.local}")
    if spec.window:
        parts.append(f"window{spec.window}")
    if spec.kv_heads:
        parts.append(f"kv{spec.kv_heads}")
    return "+".join(parts)


def has_dot_form(score_name: str) -> bool:
    """Whether a score can run on a fused dot-product kernel (SDPA, FlexAttention)."""
    cls = SCORES.get(score_name)
    return cls.normalizer == "softmax" and cls.dot_form


def check_spec(spec: Any, model: str, heads: int | None, width: int | None, *, rnn_models=("rnn_attn",)) -> None:
    """Raise a one-line :class:`UserError` for a spec the named model cannot run."""
    spec = as_spec(spec)
    score, position, local = str(spec.score), str(spec.position), str(spec.local)
    is_rnn = model in rnn_models
    if score != "none":
        SCORES.get(score)  # unknown names list the valid ones
    POSITIONS.get(position)
    if str(spec.backend) not in BACKENDS:
        raise UserError(f"unknown attention.backend '{spec.backend}'; valid choices: {', '.join(BACKENDS)}")
    if local not in LOCAL:
        raise UserError(f"unknown attention.local '{local}'; valid choices: {', '.join(LOCAL)}")
    if spec.window < 0:
        raise UserError(f"attention.window={spec.window} must be 0 (global) or a positive distance")
    if spec.kv_heads < 0:
        raise UserError(f"attention.kv_heads={spec.kv_heads} must be 0 (one per head), 1 (multi-query) or a divisor of the heads")
    if score == "none":
        return
    if is_rnn:
        if position != "none":
            raise UserError(
                f"attention.position={position} is for self-attention (model=transformer or vit); "
                f"{model} attends across two sequences: use attention.position=none"
            )
        if spec.kv_heads:
            raise UserError(f"attention.kv_heads is for multi-head attention; {model} has one head: use 0")
        if local != "none" and spec.window <= 0:
            raise UserError(f"attention.local={local} needs a window: attention.window=D > 0 (Luong et al. use D=10)")
        if spec.window > 0 and local == "none":
            raise UserError(
                f"{model} takes a window as Luong's local attention: add attention.local=monotonic or predictive"
            )
    elif local != "none":
        raise UserError(f"attention.local={local} is Luong's local attention of model=rnn_attn; "
                        f"{model} takes attention.window=w alone")
    if heads is not None and not is_rnn:
        if spec.kv_heads and heads % spec.kv_heads:
            raise UserError(f"attention.kv_heads={spec.kv_heads} must divide model.heads={heads}")
        if width is not None and heads > 0 and width % heads == 0:
            head_dim = width // heads
            need = 4 if (position == "rope" and model == "vit") else 2 if position == "rope" else 1
            if head_dim % need:
                raise UserError(
                    f"attention.position=rope needs a head width (width / heads = {head_dim}) divisible by {need}"
                )
    backend = str(spec.backend)
    if backend in ("sdpa", "flex") and not has_dot_form(score):
        raise UserError(
            f"attention.backend={backend} needs a score with a dot-product form; attention.score={score} has none "
            "(it runs on the math path): use attention.backend=auto or math"
        )
    if SCORES.get(score).normalizer == "sum" and position in ("alibi", "relative"):
        raise UserError(
            f"attention.score={score} has no logits to add a bias to; use attention.position=rope or none with it"
        )


__all__ = ["LOCAL", "as_spec", "check_spec", "make_position_for", "make_score_for"]
