"""RNN encoder-decoder with attention, after the seed's equations.

Encoder (Bahdanau et al. 2015, sec. 3.2): a (bi)directional GRU or LSTM reads the source
x_1..x_m into states h_1..h_m (forward and backward halves concatenated, each direction
``hidden_dim // 2`` wide, so h_i has ``hidden_dim`` features, as OpenNMT's ``brnn``).

Decoder, one step t (the seed's o_t, s_t = RNN(o_{t-1}, x'_t, c_{t-1})):

    s_t   = RNN([o_{t-1} ; x'_t ; c_{t-1}], s_{t-1})   model.input_feeding=seed (see below)
    k_i   = W_K h_i                                  keys, computed once per sentence
    q_t   = W_Q s_t                                  query
    a~_ti = score(q_t, k_i)                          dot = k_i^T q_t (seed), or any other scoring
    alpha_t = softmax(a~_t)                          padded source positions masked out
    c_t   = sum_i alpha_ti h_i                       values are the raw encoder states
    o_t = h~_t = tanh(W_c [s_t ; c_t])               Luong et al. 2015, eq. 5
    p(y_t | y_<t, x) = softmax(W_s h~_t)             Luong et al. 2015, eq. 6 (W_s may be tied
                                                     to the target embedding, Press & Wolf 2017)

What the first decoder layer reads besides x'_t (``model.input_feeding``):

- ``seed``: o_{t-1} and c_{t-1}, the seed's RNN(o_{t-1}, x'_t, c_{t-1}); the decoder's output
  vector o is h~ (the vector the output layer reads);
- ``context``: c_{t-1} only;
- ``attentional``: h~_{t-1} only, Luong et al. 2015, sec. 3.3 ("input feeding").

The default is ``seed``: the seed text's formulation, and on validation it was not worse than
``context`` (recipe with ``trainer.max_steps=500 data.max_eval_sentences=500 decode.beam_size=1
model.input_feeding=seed|context``: valid BLEU 15.65 against 15.31, one seed; docs/benchmarks.md).

The RNN's input is one vector; the column order of W_ih differs from the written concatenation,
which changes nothing (a test checks ``seed`` against ``torch.nn.GRUCell`` on [o; x'; c]).

Query-key normalisation (``model.qk_scale`` = g > 0): q_t = g W_Q s_t / |W_Q s_t| and
k_i = W_K h_i / |W_K h_i| before any scoring, g = exp(log g) learned (Henry et al. 2020,
"Query-Key Normalization for Transformers"). With dot scoring the logits are g cos(q, k), at
most g in size. Why: unnormalised, the logits grow from a spread of 0.5 to 30 within the first
50 updates of the default recipe (likely because AdamW moves every entry of W_Q and W_K at once
and the score is their product; not measured), the softmax saturates to one-hot, its gradient vanishes, and the attention stays
a fixed pointer, mostly to the source ``</s>``: measured by ``bench/rnn_attention_collapse.py``,
numbers in docs/benchmarks.md.

Local attention (Luong et al. 2015, sec. 3.2; ``attention.local=monotonic|predictive`` with
``attention.window=D``): only the keys within D of an aligned source position p_t are scored
(softmax over that window). local-m: p_t = t, the step. local-p: p_t = S sigmoid(v_p^T tanh(W_p
s_t)) (eq. 9), S the source length, and the weights are multiplied by exp(-(s - p_t)^2 /
(2 (D/2)^2)) (eq. 10), so they no longer sum to one; the pictures and attention health show
these a_t(s).

The decoder starts from s_0 = tanh(W_b [h->_m ; h<-_1]) (after Bahdanau et al. 2015, appendix
A.2.2, which uses h<-_1 alone), c_0 = 0 and o_0 = 0. With ``attention=none`` the model is the
classic encoder-decoder (Sutskever et al. 2014; Cho et al. 2014): the same s_0 from the encoder's
final states, no context vectors, h~_t = tanh(W_c s_t) (and o_{t-1} fed back with ``seed`` or
``attentional``).

Speed. Teacher-forced training runs a Python loop over target positions, so the loop does only
what depends on the previous step: the target embeddings and their input-to-hidden product
(W_ih x'_t for every t), the keys W_K h_i and the output layer are computed outside the loop, in
a few large matrix products.
``trainer.compile=true`` compiles the loop bodies (:meth:`RNNAttention.compile_for_training`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention import attend, make_score_for, padding_mask
from attnlab.attention.factory import as_spec
from attnlab.config import AttentionConfig, RNNAttnConfig
from attnlab.errors import UserError
from attnlab.models.seq2seq import Memory, Seq2Seq

CellState = Union[Tensor, tuple[Tensor, Tensor]]  # GRU: h (B, H); LSTM: (h, c), each (B, H)


# ----------------------------------------------------------------------------- recurrent cells


class GRUStep(nn.Module):
    """One GRU step (Cho et al. 2014, eq. 5-8), with torch's gate layout and initialisation.

        r = sigma(W_ir x + b_ir + W_hr h + b_hr)
        z = sigma(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    The input is split in two parts: ``pre_dim`` features known before the time loop (the
    embedding of x'_t), whose product W_ih x can be computed for all steps at once by
    :meth:`precompute`, and ``step_dim`` features known only inside the loop (c_{t-1}).
    Equal to :class:`torch.nn.GRUCell` on the concatenated input (tested).
    """

    gates = 3

    def __init__(self, pre_dim: int, step_dim: int, hidden_dim: int) -> None:
        super().__init__()
        g = self.gates * hidden_dim
        self.hidden_dim = hidden_dim
        self.weight_pre = nn.Parameter(torch.empty(g, pre_dim)) if pre_dim else None
        self.weight_step = nn.Parameter(torch.empty(g, step_dim)) if step_dim else None
        self.bias_ih = nn.Parameter(torch.empty(g))
        self.weight_hh = nn.Parameter(torch.empty(g, hidden_dim))
        self.bias_hh = nn.Parameter(torch.empty(g))
        bound = 1.0 / math.sqrt(hidden_dim)  # as torch.nn.GRUCell / LSTMCell
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def precompute(self, x_pre: Tensor) -> Tensor:
        """W_ih[:, :pre] x + b_ih for inputs (..., pre_dim) -> (..., gates * H)."""
        return F.linear(x_pre, self.weight_pre, self.bias_ih)

    def _input_gates(self, pre: Tensor | None, x: Tensor | None) -> Tensor:
        if x is None:  # everything precomputed
            return pre
        gx = F.linear(x, self.weight_step, self.bias_ih if pre is None else None)  # (B, G)
        return gx if pre is None else pre + gx

    def forward(self, pre: Tensor | None, x: Tensor | None, state: CellState) -> CellState:
        h = state
        gi = self._input_gates(pre, x)  # (B, 3H)
        gh = F.linear(h, self.weight_hh, self.bias_hh)  # (B, 3H)
        H = self.hidden_dim
        rz = torch.sigmoid(gi[:, : 2 * H] + gh[:, : 2 * H])  # (B, 2H)
        r, z = rz[:, :H], rz[:, H:]
        n = torch.tanh(gi[:, 2 * H :] + r * gh[:, 2 * H :])
        return n + z * (h - n)  # = (1 - z) * n + z * h

    @staticmethod
    def output(state: CellState) -> Tensor:
        return state

    def initial(self, h0: Tensor) -> CellState:
        return h0


class LSTMStep(GRUStep):
    """One LSTM step (Hochreiter & Schmidhuber 1997; torch's gate order i, f, g, o).

        i, f, g, o = sigma, sigma, tanh, sigma (W_i x + b_i + W_h h + b_h)
        c' = f * c + i * g ;  h' = o * tanh(c')

    Same input split as :class:`GRUStep`; equal to :class:`torch.nn.LSTMCell` (tested).
    """

    gates = 4

    def forward(self, pre: Tensor | None, x: Tensor | None, state: CellState) -> CellState:
        h, c = state
        gates = self._input_gates(pre, x) + F.linear(h, self.weight_hh, self.bias_hh)  # (B, 4H)
        H = self.hidden_dim
        ifo = torch.sigmoid(torch.cat([gates[:, : 2 * H], gates[:, 3 * H :]], dim=1))  # (B, 3H)
        g = torch.tanh(gates[:, 2 * H : 3 * H])
        c = ifo[:, H : 2 * H] * c + ifo[:, :H] * g
        return ifo[:, 2 * H :] * torch.tanh(c), c

    @staticmethod
    def output(state: CellState) -> Tensor:
        return state[0]

    def initial(self, h0: Tensor) -> CellState:
        return h0, torch.zeros_like(h0)


CELLS: dict[str, type[GRUStep]] = {"gru": GRUStep, "lstm": LSTMStep}


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of x (B, S, ...) within its length; padding stays at the end.

    The permutation is its own inverse, so applying it twice gives x back.
    """
    B, S = x.shape[:2]
    t = torch.arange(S, device=x.device).unsqueeze(0)  # (1, S)
    idx = torch.where(t < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - t, t)  # (B, S)
    return x.gather(1, idx.view(B, S, *([1] * (x.dim() - 2))).expand_as(x))


class Encoder(nn.Module):
    """Stacked (bi)directional RNN over padded batches (Bahdanau et al. 2015, sec. 3.2).

    Equal to ``torch.nn.GRU``/``LSTM`` on packed sequences (tested), but faster to train on a
    CPU: each layer computes W_ih x for all positions and both directions in one product, and
    the backward direction runs on each sentence reversed within its own length, so padding
    never reaches a real position. Each direction is ``hidden_dim // 2`` wide when bidirectional.

    Returns the states h (B, S, H) (zero at padded positions) and the summary [h->_m ; h<-_1]
    (B, H) of the top layer (for the decoder's initial state).
    """

    def __init__(
        self, step_cls: type[GRUStep], emb_dim: int, hidden_dim: int, layers: int, bidirectional: bool, dropout: float
    ) -> None:
        super().__init__()
        self.directions = 2 if bidirectional else 1
        width = hidden_dim // self.directions
        self.cells = nn.ModuleList(
            [step_cls(emb_dim if i < self.directions else hidden_dim, 0, width) for i in range(layers * self.directions)]
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        B, S, _ = x.shape
        last = (lengths - 1).clamp(min=0).view(B, 1, 1)  # index of each sentence's last token
        real = padding_mask(lengths, S).transpose(1, 2)  # (B, S, 1)
        summary: list[Tensor] = []
        for layer in range(len(self.cells) // self.directions):
            if layer:
                x = self.dropout(x)
            outputs, summary = [], []
            for d in range(self.directions):
                cell = self.cells[layer * self.directions + d]
                inp = reverse_padded(x, lengths) if d else x  # backward direction: read right to left
                out = self._run(cell, cell.precompute(inp))  # (B, S, h)
                summary.append(out.gather(1, last.expand(B, 1, out.shape[2])).squeeze(1))  # (B, h)
                outputs.append(reverse_padded(out, lengths) if d else out)
            x = torch.cat(outputs, dim=-1) * real  # [h->_i ; h<-_i]: (B, S, H), zero at padding
        return x, torch.cat(summary, dim=-1)  # (B, S, H), (B, H)

    @staticmethod
    def _run(cell: GRUStep, pre: Tensor) -> Tensor:
        """Left-to-right over pre-computed input gates (B, S, G) -> outputs (B, S, h)."""
        state = cell.initial(pre.new_zeros(pre.shape[0], cell.hidden_dim))
        outs = []
        for pre_t in pre.unbind(dim=1):  # (B, G)
            state = cell(pre_t, None, state)
            outs.append(cell.output(state))
        return torch.stack(outs, dim=1)


# ----------------------------------------------------------------------------- the model


@dataclass
class DecoderState:
    """s_{t-1} of every decoder layer, the previous context c_{t-1} (None without attention) and
    the previous output vector h~_{t-1} (None when the decoder does not read it back)."""

    layers: list[CellState]
    context: Tensor | None
    output: Tensor | None = None
    t: int = 0  # the step about to be taken (0-based): local-m's p_t


def _select(state: CellState, index: Tensor) -> CellState:
    if isinstance(state, tuple):
        return tuple(s.index_select(0, index) for s in state)  # type: ignore[return-value]
    return state.index_select(0, index)


class RNNAttention(Seq2Seq):
    """The seed's RNN translator; see the module docstring for the equations.

    Args:
        cfg: sizes, cell type, dropout, tying, input feeding (:class:`attnlab.config.RNNAttnConfig`).
        attention: the scoring (``none`` = no attention) and the additive score's hidden size.
        src_vocab, tgt_vocab: vocabulary sizes (pad = 0).
    """

    def __init__(self, cfg: RNNAttnConfig, attention: AttentionConfig, src_vocab: int, tgt_vocab: int) -> None:
        super().__init__()
        step_cls = CELLS[str(cfg.cell)]
        attention = as_spec(attention)  # a spec saved by an older attnlab gets the newer keys' defaults
        if cfg.bidirectional and cfg.hidden_dim % 2:
            raise UserError(f"model.hidden_dim={cfg.hidden_dim} must be even with model.bidirectional=true")
        # A config saved before these keys existed (an older checkpoint) rebuilds the model it
        # trained: context feeding, plain scores.
        qk_scale = float(getattr(cfg, "qk_scale", 0.0))
        feeding = str(getattr(cfg, "input_feeding", "context"))
        if qk_scale < 0:
            raise UserError(f"model.qk_scale={qk_scale} must be >= 0 (0 = no query-key normalisation)")
        H, E, A = cfg.hidden_dim, cfg.emb_dim, cfg.attn_dim
        self.hidden_dim, self.use_attention = H, str(attention.score) != "none"
        self.fused, self.backend = attention.fused, str(attention.backend)
        # Luong et al. 2015's local attention: attention.local=monotonic|predictive, window D
        self.local = str(attention.local) if self.use_attention else "none"
        self.window = int(attention.window)
        if self.local != "none" and self.window <= 0:
            raise UserError(f"attention.local={self.local} needs a window: attention.window=D > 0 (Luong et al. use D=10)")
        self.feed_context = self.use_attention and feeding in ("seed", "context")  # c_{t-1}
        self.feed_output = feeding in ("seed", "attentional")  # o_{t-1} = h~_{t-1}
        # Embeddings start small (std E^-1/2, so tied output logits start near 0) and are scaled
        # by sqrt(E) on input, so the RNNs see unit-variance inputs (as Vaswani et al. 2017, 3.4).
        self.embed_scale = math.sqrt(E)
        self.dropout = nn.Dropout(cfg.dropout)
        # encoder
        self.src_embed = nn.Embedding(src_vocab, E, padding_idx=self.pad_id)
        self.encoder = Encoder(step_cls, E, H, cfg.enc_layers, cfg.bidirectional, cfg.dropout)
        self.bridge = nn.Linear(H, cfg.dec_layers * H)  # s_0 = tanh(W_b [h->_m; h<-_1]) per layer
        # attention: keys W_K h_i, query W_Q s_t, score(q, k); values = raw h_i (H wide)
        ctx_dim = H if self.use_attention else 0
        self.log_qk_scale: nn.Parameter | None = None
        if self.use_attention:
            self.key_proj = nn.Linear(H, A, bias=False)  # W_K
            self.query_proj = nn.Linear(H, A, bias=False)  # W_Q
            self.score = make_score_for(attention, A, A)
            if qk_scale > 0:  # g = exp(log g): Adam's steps change g by a factor, not a sum
                self.log_qk_scale = nn.Parameter(torch.tensor(math.log(qk_scale)))
            if self.local == "predictive":  # p_t = S sigmoid(v_p^T tanh(W_p s_t)), Luong et al. eq. 9
                self.position_proj = nn.Linear(H, A, bias=False)  # W_p
                self.position_v = nn.Linear(A, 1, bias=False)  # v_p
        # decoder: layer 0 reads x'_t and the fed vectors, upper layers the layer below
        fed_dim = (E if self.feed_output else 0) + (H if self.feed_context else 0)
        self.tgt_embed = nn.Embedding(tgt_vocab, E, padding_idx=self.pad_id)
        self.cells = nn.ModuleList(
            [step_cls(E, fed_dim, H)] + [step_cls(0, H, H) for _ in range(cfg.dec_layers - 1)]
        )
        self.combine = nn.Linear(H + ctx_dim, E)  # W_c: h~_t = tanh(W_c [s_t; c_t])
        self.out = nn.Linear(E, tgt_vocab)  # W_s
        for emb in (self.src_embed, self.tgt_embed):
            nn.init.normal_(emb.weight, std=E**-0.5)
            with torch.no_grad():
                emb.weight[self.pad_id].zero_()
        if cfg.tie_embeddings:
            self.out.weight = self.tgt_embed.weight

    # ------------------------------------------------------------------ encoder
    def encode(self, src: Tensor, src_lengths: Tensor) -> Memory:
        """src (B, S), lengths (B,) -> states h (B, S, H), mask (B, 1, S), keys W_K h (B, S, A)."""
        S = src.shape[1]
        lengths = src_lengths.to(src.device)
        states, summary = self.encoder(self.dropout(self.src_embed(src) * self.embed_scale), lengths)  # (B, S, H), (B, H)
        extra = {"summary": summary}
        if self.use_attention:
            keys = self.key_proj(states)  # k_i = W_K h_i: (B, S, A), once per sentence
            if self.log_qk_scale is not None:
                keys = F.normalize(keys, dim=-1)  # k_i / |k_i|
            extra["keys"] = self.score.prepare_keys(keys)  # the score's key-only work (additive: U k_i), once too
        return Memory(states, padding_mask(lengths, S), extra)  # mask (B, 1, S)

    def _query(self, s: Tensor) -> Tensor:
        """q_t = W_Q s_t (B, H) -> (B, A), or g W_Q s_t / |W_Q s_t| with query-key normalisation."""
        q = self.query_proj(s)
        if self.log_qk_scale is None:
            return q
        return F.normalize(q, dim=-1) * self.log_qk_scale.exp()

    # ------------------------------------------------------------------ decoder
    def init_state(self, memory: Memory) -> DecoderState:
        B, H = memory.states.shape[0], self.hidden_dim
        s0 = torch.tanh(self.bridge(memory.extra["summary"]))  # (B, L * H)
        s0 = s0.view(B, len(self.cells), H).transpose(0, 1)  # (L, B, H)
        layers = [cell.initial(s0[i]) for i, cell in enumerate(self.cells)]
        context = memory.states.new_zeros(B, H) if self.use_attention else None  # c_0 = 0
        output = memory.states.new_zeros(B, self.combine.out_features) if self.feed_output else None  # o_0 = 0
        return DecoderState(layers, context, output, 0)

    def _fed(self, state: DecoderState) -> Tensor | None:
        """The vectors layer 0 reads besides x'_t: [o_{t-1}; c_{t-1}], [c_{t-1}] or [o_{t-1}]."""
        parts = ([state.output] if self.feed_output else []) + ([state.context] if self.feed_context else [])
        return torch.cat(parts, dim=-1) if len(parts) > 1 else (parts[0] if parts else None)

    def _advance(
        self, pre: Tensor, state: DecoderState, memory: Memory, need_weights: bool
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One decoder step from the precomputed W x'_t (B, G): returns s_t (B, H), the new state
        (with c_t, and h~_t when it is fed back) and alpha_t (B, S) when asked for."""
        layers: list[CellState] = []
        x = self._fed(state)  # (B, fed) or None
        for i, cell in enumerate(self.cells):
            new = cell(pre if i == 0 else None, x, state.layers[i])  # s_t = RNN([o_{t-1}; x'_t; c_{t-1}], s_{t-1})
            layers.append(new)
            x = self.dropout(cell.output(new)) if i + 1 < len(self.cells) else None
        top = self.cells[-1].output(layers[-1])  # s_t (B, H)
        context, weights = None, None
        if self.use_attention:
            q = self._query(top).unsqueeze(1)  # q_t = W_Q s_t: (B, A) -> (B, 1, A)
            mask, gauss = memory.mask, None
            if self.local != "none":
                mask, gauss = self._local_window(top, memory.mask, state.t)
            context, weights = attend(
                q, memory.extra["keys"], memory.states, self.score, mask, need_weights=need_weights or gauss is not None,
                fused=self.fused, backend=self.backend, keys_prepared=True,
            )  # c_t = sum_i alpha_ti h_i: (B, 1, H); alpha: (B, 1, S)
            if gauss is not None:  # local-p: a_t(s) = align(s) exp(-(s - p_t)^2 / 2 sigma^2), eq. 10
                weights = weights * gauss.unsqueeze(1)  # (B, 1, S)
                context = weights @ memory.states  # (B, 1, S) @ (B, S, H) -> (B, 1, H)
            context = context.squeeze(1)
            weights = weights.squeeze(1) if weights is not None and need_weights else None
        output = self._attentional(top, context) if self.feed_output else None  # h~_t, read at t + 1
        return top, DecoderState(layers, context, output, state.t + 1), weights

    def _local_window(self, s: Tensor, mask: Tensor, t: int) -> tuple[Tensor, Tensor | None]:
        """Luong et al. 2015, sec. 3.2: the keys within D of an aligned position p_t.

        local-m: p_t = t. local-p: p_t = S sigmoid(v_p^T tanh(W_p s_t)) (eq. 9), S the source
        length, and a Gaussian factor exp(-(s - p_t)^2 / (2 (D/2)^2)) (eq. 10) on the weights.
        Returns the mask (B, 1, S) of real keys with |s - p_t| <= D, and the factor (B, S) or None.
        """
        positions = torch.arange(mask.shape[-1], device=mask.device, dtype=s.dtype).unsqueeze(0)  # (1, S)
        if self.local == "monotonic":
            p = torch.full_like(positions[:, :1], float(t))  # (1, 1)
        else:
            length = mask.sum(-1).to(s.dtype)  # (B, 1, S) -> (B, 1): S of each sentence
            p = length * torch.sigmoid(self.position_v(torch.tanh(self.position_proj(s))))  # (B, 1)
        offset = positions - p  # s - p_t: (B, S)
        window = mask & (offset.abs() <= self.window).unsqueeze(1)  # (B, 1, S)
        if self.local == "monotonic":
            return window, None
        sigma = self.window / 2
        return window, torch.exp(-offset.square() / (2 * sigma**2))

    def _attentional(self, s: Tensor, context: Tensor | None) -> Tensor:
        """h~_t = tanh(W_c [s_t; c_t]) (Luong et al. 2015, eq. 5): (..., H) -> (..., E)."""
        return torch.tanh(self.combine(s if context is None else torch.cat([s, context], dim=-1)))

    def _logits(self, h_tilde: Tensor) -> Tensor:
        """W_s h~_t (Luong et al. 2015, eq. 6): (..., E) -> (..., V)."""
        return self.out(self.dropout(h_tilde))

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing: src (B, S), tgt_in (B, T) starting with bos -> logits (B, T, V).

        The output layer runs at every position, padding included: computing it only at the real
        ones (15 % fewer rows in the benchmark's batches) was slower, because scattering the rows
        back into a (B, T, V) tensor for the loss costs more than the rows saved.
        """
        memory = self.encode(src, src_lengths)
        state = self.init_state(memory)
        emb = self.dropout(self.tgt_embed(tgt_in) * self.embed_scale)  # x'_t for all t: (B, T, E)
        pre = self.cells[0].precompute(emb)  # W_ih x'_t + b for all t: (B, T, G)
        tops: list[Tensor] = []
        contexts: list[Tensor] = []
        outputs: list[Tensor] = []
        # unbind, not pre[:, t]: its backward is one stack, not T zero-filled (B, T, G) tensors
        for pre_t in pre.unbind(dim=1):  # (B, G) each
            top, state, _ = self._advance(pre_t, state, memory, need_weights=False)
            if state.output is not None:  # h~_t was needed inside the loop
                outputs.append(state.output)
                continue
            tops.append(top)
            if state.context is not None:
                contexts.append(state.context)
        if outputs:
            h_tilde = torch.stack(outputs, dim=1)  # (B, T, E)
        else:  # all positions in one product: (B, T, H) -> (B, T, E)
            h_tilde = self._attentional(torch.stack(tops, dim=1), torch.stack(contexts, dim=1) if contexts else None)
        return self._logits(h_tilde)  # all positions in one product: (B, T, V)

    def step(
        self, tokens: Tensor, state: DecoderState, memory: Memory, need_weights: bool = False
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """tokens (B,) -> log p(next token) (B, V), new state, alpha_t (B, S) or None."""
        pre = self.cells[0].precompute(self.tgt_embed(tokens) * self.embed_scale)  # (B, G)
        top, state, weights = self._advance(pre, state, memory, need_weights)
        h_tilde = state.output if state.output is not None else self._attentional(top, state.context)
        return F.log_softmax(self._logits(h_tilde), dim=-1), state, weights

    def compile_for_training(self) -> None:
        """``trainer.compile=true``: ``torch.compile`` the loop bodies (one decoder step, one
        encoder cell step) with dynamic shapes, not the loops, whose length changes from batch to
        batch. The compiled step uses attention's math path, which the compiler fuses itself (the
        fused path's check for all-masked rows would break the graph)."""
        self.fused = False
        self._advance = torch.compile(self._advance, dynamic=True)  # type: ignore[method-assign]
        for cell in self.encoder.cells:
            cell.forward = torch.compile(cell.forward, dynamic=True)  # type: ignore[method-assign]

    def reorder(self, state: DecoderState, index: Tensor) -> DecoderState:
        context = state.context.index_select(0, index) if state.context is not None else None
        output = state.output.index_select(0, index) if state.output is not None else None
        return DecoderState([_select(s, index) for s in state.layers], context, output, state.t)

    @torch.no_grad()
    def attention_weights(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> dict[str, list[Tensor]]:
        """The models' common protocol (the inputs of ``forward``; call in eval mode): alpha of a
        teacher-forced pair as ``{"cross": [(B, 1, T, S)]}``, the Transformer's layout with one
        layer and one head; ``{}`` without attention."""
        if not self.use_attention:
            return {}
        memory = self.encode(src, src_lengths)
        state = self.init_state(memory)
        pre = self.cells[0].precompute(self.tgt_embed(tgt_in) * self.embed_scale)  # (B, T, G)
        alphas = []
        for pre_t in pre.unbind(dim=1):
            _, state, alpha = self._advance(pre_t, state, memory, need_weights=True)
            alphas.append(alpha)  # (B, S)
        return {"cross": [torch.stack(alphas, dim=1).unsqueeze(1)]}  # (B, T, S) -> (B, 1, T, S)


def build(cfg: Any, src_vocab: int, tgt_vocab: int, **_: Any) -> RNNAttention:
    """The model registry's entry point (:func:`attnlab.models.build_model`)."""
    return RNNAttention(cfg.model, cfg.attention, src_vocab, tgt_vocab)
