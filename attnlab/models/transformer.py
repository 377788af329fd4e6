"""The Transformer translator (Vaswani et al. 2017, "Attention is all you need"), built from the
shared layers: every attention is :class:`attnlab.attention.MultiHeadAttention` inside the shared
:class:`~attnlab.layers.transformer.EncoderLayer` / :class:`~attnlab.layers.transformer.DecoderLayer`,
built from the one attention spec (``cfg.attention``), so ``attention=general``, ``attention=alibi``
or ``attention=mqa`` changes all of them (sec. 3.2). Positions inside attention (RoPE, ALiBi,
relative) and windows act in the two self-attentions and combine with the input positions of
``model.posenc`` (``model.posenc=none attention=rope`` leaves RoPE alone); the cross-attention
takes the score, kv_heads and backend only.

    encoder:  z_0 = dropout(sqrt(d) * E_src[x] + PE),   z_l = EncoderLayer(z_{l-1}, source mask)
    decoder:  y_0 = dropout(sqrt(d) * E_tgt[y] + PE),   y_l = DecoderLayer(y_{l-1}, z_L, masks)
    output:   p(y_{t+1} | y_<=t, x) = softmax(y_L W_out^T)                        (sec. 3.4)

- Embeddings are multiplied by sqrt(d_model) (sec. 3.4) before the positional code is added
  (sec. 3.5; any encoding of :mod:`attnlab.layers.positional`: sinusoidal, learned, none).
- ``share_embeddings``: one table for source and target (one joint subword vocabulary, as the
  paper's shared BPE vocabulary); ``tie_output``: W_out *is* the target embedding (sec. 3.4,
  Press & Wolf 2017).
- Masks: the source padding is hidden from every attention (encoder self-attention and the
  decoder's cross-attention); the decoder's self-attention is causal (no look-ahead, sec. 3.2.3)
  and hides target padding.
- ``norm=post`` is the paper's LayerNorm(x + Sublayer(x)); ``norm=pre`` (Xiong et al. 2020) adds
  the final LayerNorm after each stack that a pre-norm residual stream needs.

Decoding (:meth:`Transformer.step`) feeds only the newest token through the decoder: each
self-attention appends its key/value to a per-layer cache, each cross-attention projects the
encoder output once and keeps it, so a step costs O(t) instead of re-running the prefix (O(t^2)).
The new token's position is the cache's length: RoPE rotates it (and caches rotated keys), ALiBi,
relative biases and windows see it at that position, so cached decoding equals the full forward
(tested for every variant); with ``attention.kv_heads`` the cache holds fewer heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from attnlab.attention import as_spec, padding_mask, reorder_cache
from attnlab.errors import UserError
from attnlab.layers.positional import make_posenc
from attnlab.layers.transformer import DecoderLayer, EncoderLayer
from attnlab.models.seq2seq import Memory, Seq2Seq

# One decoder layer's cache: {"self": {"k", "v"}, "cross": {"k", "v"}}, each (B, H, T, Dh).
LayerCache = dict[str, dict[str, Tensor]]


@dataclass
class DecoderState:
    """Incremental decoding state: one KV cache per decoder layer and the tokens fed so far."""

    caches: list[LayerCache] = field(default_factory=list)
    length: int = 0  # position of the next token fed to :meth:`Transformer.step`


class Transformer(Seq2Seq):
    """Encoder-decoder Transformer; token ids pad 0, bos 1, eos 2 (see :class:`Seq2Seq`).

    Args:
        src_vocab, tgt_vocab: vocabulary sizes.
        d_model, heads, d_ff: widths (paper base: 512, 8, 2048).
        enc_layers, dec_layers: stack depths (paper: 6 and 6).
        dropout: on embeddings+positions and on every residual branch (P_drop, sec. 5.4).
        attn_dropout: on the attention weights.
        norm: "pre" or "post" LayerNorm placement.
        posenc: positional encoding name (registry of :mod:`attnlab.layers.positional`).
        max_len: longest sequence a ``learned`` positional table covers.
        attention: the attention spec (:class:`attnlab.config.AttentionConfig`, or a score name),
            handed whole to every attention: score, positions, window, kv_heads, backend.
        share_embeddings: source and target share one embedding table (needs equal vocabularies).
        tie_output: the output projection is the target embedding matrix.
    """

    layered_attention = True  # attention_weights: every layer and head of encoder, cross and decoder

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        *,
        d_model: int = 256,
        heads: int = 4,
        enc_layers: int = 3,
        dec_layers: int = 3,
        d_ff: int = 1024,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
        norm: str = "pre",
        posenc: str = "sinusoidal",
        max_len: int = 512,
        attention=None,
        share_embeddings: bool = True,
        tie_output: bool = True,
    ) -> None:
        super().__init__()
        if share_embeddings and src_vocab != tgt_vocab:
            raise UserError(
                f"model.share_embeddings=true needs one vocabulary for both languages, got source "
                f"{src_vocab} and target {tgt_vocab} entries; set data.shared_vocab=true or "
                "model.share_embeddings=false"
            )
        norm = str(norm)
        if norm not in ("pre", "post"):
            raise UserError(f"unknown model.norm '{norm}'; valid choices: post, pre")
        self.d_model, self.norm = d_model, norm
        self.embed_scale = math.sqrt(d_model)  # sec. 3.4

        self.src_embed = self._embedding(src_vocab, d_model)
        self.tgt_embed = self.src_embed if share_embeddings else self._embedding(tgt_vocab, d_model)
        self.src_pos = make_posenc(str(posenc), d_model, max_len=max_len)
        self.tgt_pos = make_posenc(str(posenc), d_model, max_len=max_len)
        self.src_pos(torch.zeros(1, 1, d_model))  # a 2-D-only encoding (sincos2d) fails here, not mid-run
        self.dropout = nn.Dropout(dropout)

        common = dict(spec=as_spec(attention), dropout=dropout, attn_dropout=attn_dropout, norm=norm)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, heads, d_ff, **common) for _ in range(enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(d_model, heads, d_ff, **common) for _ in range(dec_layers))
        # A pre-norm stack leaves its residual stream un-normalised: normalise it once at the end.
        self.enc_norm: nn.Module = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()
        self.dec_norm: nn.Module = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()

        self.out_proj = nn.Linear(d_model, tgt_vocab, bias=False)
        self._init_linear_weights()
        if tie_output:
            self.out_proj.weight = self.tgt_embed.weight  # one Parameter, two uses

    # ------------------------------------------------------------------ construction
    def _embedding(self, vocab: int, dim: int) -> nn.Embedding:
        # N(0, 1/d): after the sqrt(d) scale the embeddings have unit variance, like the positional
        # codes, and a tied output layer starts with logits of unit scale.
        emb = nn.Embedding(vocab, dim, padding_idx=self.pad_id)
        nn.init.normal_(emb.weight, std=dim**-0.5)
        with torch.no_grad():
            emb.weight[self.pad_id].zero_()
        return emb

    def _init_linear_weights(self) -> None:
        """Glorot-uniform projections in the stacks (Glorot & Bengio 2010), as the reference
        implementations (tensor2tensor, the Annotated Transformer, torch.nn.Transformer) do.
        Score parameters (general, additive) keep their own initialisation."""
        for stack in (self.encoder, self.decoder):
            for module in stack.modules():
                if isinstance(module, nn.Linear):
                    nn.init.xavier_uniform_(module.weight)
        nn.init.normal_(self.out_proj.weight, std=self.d_model**-0.5)

    # ------------------------------------------------------------------ the two stacks
    def _embed(self, tokens: Tensor, embed: nn.Embedding, pos: nn.Module, offset: int = 0) -> Tensor:
        """tokens (B, T) -> dropout(sqrt(d) * E[tokens] + PE(offset..offset+T-1)): (B, T, D)."""
        return self.dropout(pos(embed(tokens) * self.embed_scale, offset=offset))

    def _encode(self, src: Tensor, src_lengths: Tensor, need_weights: bool = False) -> tuple[Memory, list[Tensor]]:
        mask = padding_mask(src_lengths, src.shape[1])  # (B, 1, S): real source tokens
        x = self._embed(src, self.src_embed, self.src_pos)
        weights = []
        for layer in self.encoder:
            x, w = layer(x, mask=mask, need_weights=need_weights)  # w: (B, H, S, S) or None
            weights.append(w)
        return Memory(self.enc_norm(x), mask, {}), weights

    def _decode(
        self,
        tokens: Tensor,
        memory: Memory,
        *,
        self_mask: Tensor | None = None,
        state: DecoderState | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """tokens (B, T) -> hidden states (B, T, D), self- and cross-attention weights per layer.

        With ``state``, ``tokens`` are the positions after the cached prefix and the caches grow.
        """
        offset = 0 if state is None else state.length
        x = self._embed(tokens, self.tgt_embed, self.tgt_pos, offset=offset)
        self_ws, cross_ws = [], []
        for i, layer in enumerate(self.decoder):
            cache = None if state is None else state.caches[i]
            x, self_w, cross_w = layer(
                x, memory.states, memory_mask=memory.mask, self_mask=self_mask, need_weights=need_weights, cache=cache
            )
            self_ws.append(self_w)
            cross_ws.append(cross_w)
        return self.dec_norm(x), self_ws, cross_ws

    # ------------------------------------------------------------------ Seq2Seq interface
    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: src (B, S), src_lengths (B,), tgt_in (B, T) -> logits (B, T, V)."""
        return self.decode(tgt_in, self.encode(src, src_lengths))

    def decode(self, tgt_in: Tensor, memory: Memory) -> Tensor:
        """The whole decoder on a target prefix, without a cache: tgt_in (B, T) -> logits (B, T, V)."""
        hidden, _, _ = self._decode(tgt_in, memory, self_mask=self._target_mask(tgt_in))
        return self.out_proj(hidden)

    def encode(self, src: Tensor, src_lengths: Tensor) -> Memory:
        """The encoder output z_L (B, S, D) and the source mask (B, 1, S)."""
        return self._encode(src, src_lengths)[0]

    def init_state(self, memory: Memory) -> DecoderState:
        """Empty caches, one per decoder layer; the first :meth:`step` fills them."""
        return DecoderState([{} for _ in self.decoder], 0)

    def step(
        self, tokens: Tensor, state: DecoderState, memory: Memory, need_weights: bool = False
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """Feed the newest tokens (B,) -> log-probs (B, V) of the next token, the state (its caches
        grown in place by one position) and, when asked, the last layer's cross-attention (B, S)
        averaged over heads."""
        hidden, _, cross_ws = self._decode(tokens.unsqueeze(1), memory, state=state, need_weights=need_weights)
        state.length += 1
        log_probs = F.log_softmax(self.out_proj(hidden[:, 0]), dim=-1)  # (B, 1, D) -> (B, D) -> (B, V)
        weights = cross_ws[-1][:, :, 0].mean(dim=1) if need_weights else None  # (B, H, 1, S) -> (B, S)
        return log_probs, state, weights

    def reorder(self, state: DecoderState, index: Tensor) -> DecoderState:
        """A new state holding rows ``index`` of every cache (beam search); ``state`` is untouched."""
        caches = []
        for layer_cache in state.caches:
            copied = {name: dict(kv) for name, kv in layer_cache.items()}
            for kv in copied.values():
                reorder_cache(kv, index)
            caches.append(copied)
        return DecoderState(caches, state.length)

    # ------------------------------------------------------------------ attention pictures
    @torch.no_grad()
    def attention_weights(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> dict[str, list[Tensor]]:
        """Attention weights of a teacher-forced pair, one tensor per layer (call in eval mode);
        the models' common protocol: the inputs of ``forward``, the weights of the math path.

        Returns ``{"encoder": [(B, H, S, S)], "cross": [(B, H, T, S)], "decoder": [(B, H, T, T)]}``;
        rows are queries, columns keys; masked keys have weight exactly 0.
        """
        memory, enc_ws = self._encode(src, src_lengths, need_weights=True)
        _, self_ws, cross_ws = self._decode(tgt_in, memory, self_mask=self._target_mask(tgt_in), need_weights=True)
        return {"encoder": enc_ws, "cross": cross_ws, "decoder": self_ws}

    def _target_mask(self, tgt_in: Tensor) -> Tensor:
        """(B, T) -> (B, 1, T), True at real target tokens; the layers add the causal mask."""
        return (tgt_in != self.pad_id).unsqueeze(1)


def build(cfg: DictConfig, src_vocab: int, tgt_vocab: int, **_: object) -> Transformer:
    """Build the Transformer of ``cfg.model`` (:class:`attnlab.config.TransformerConfig`) with the
    attention spec ``cfg.attention``, handed whole."""
    m, a = cfg.model, cfg.attention
    return Transformer(
        src_vocab,
        tgt_vocab,
        d_model=m.d_model,
        heads=m.heads,
        enc_layers=m.enc_layers,
        dec_layers=m.dec_layers,
        d_ff=m.d_ff,
        dropout=m.dropout,
        attn_dropout=m.attn_dropout,
        norm=str(m.norm),
        posenc=m.posenc,
        max_len=m.max_len,
        attention=a,
        share_embeddings=m.share_embeddings,
        tie_output=m.tie_output,
    )
