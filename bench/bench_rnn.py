"""Speed of attnlab's rnn_attn against the same RNN written the plain way.

    python bench/bench_rnn.py            # ~6 minutes on 2 CPU cores
    python bench/bench_rnn.py --quick    # ~2 minutes

attnlab's model with ``model.input_feeding=context`` and the plain reference have the same
equations, sizes and parameter count (bi-GRU encoder, GRU decoder with input feeding of the
previous context, dot attention over W_K h and W_Q s, Luong output layer, tied embeddings) and
see the same batches of real Tatoeba de->en pairs in the same run. The plain reference is how the
model is usually first written:

- encoder: ``nn.GRU`` on packed sequences;
- decoder: a Python loop over time steps with ``nn.GRUCell`` on ``[x'_t ; c_{t-1}]``, the
  attention recomputed naively at every step (keys W_K h_i projected again each step), and the
  output layer + log-softmax inside the loop.

Also timed in the same run: attnlab's model as the default recipe builds it (``seed`` input
feeding, query-key normalisation; training only), and a floor: a teacher-forced ``torch.nn.GRU``
encoder-decoder without attention (packed bi-GRU encoder, one ``nn.GRU`` call over all target
positions, the same output layer), which no decoder that reads its previous context in a
Python loop can beat.

Printed (per second of CPU time of this process, single thread by default, so the numbers hold
on a shared machine): training target tokens/s (forward + backward + AdamW) and decoding sentences/s with
greedy and beam-5 search (the same attnlab search code drives both models), as a markdown table.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor, nn

from attnlab.runlog import machine_summary
from attnlab.attention import padding_mask
from attnlab.config import AttentionConfig, DecodeConfig, RNNAttnConfig, TextDataConfig
from attnlab.data.batching import pad_batch, token_batches
from attnlab.data.text import load_corpus
from attnlab.data.tokenizer import train_tokenizer
from attnlab.decode import translate_batch
from attnlab.models.rnn_attn import RNNAttention
from attnlab.models.seq2seq import Memory, Seq2Seq


class PlainRNN(Seq2Seq):
    """The reference: the same equations, written step by step (see the module docstring)."""

    def __init__(self, cfg: RNNAttnConfig, vocab: int) -> None:
        super().__init__()
        H, E, A = cfg.hidden_dim, cfg.emb_dim, cfg.attn_dim
        self.src_embed = nn.Embedding(vocab, E, padding_idx=0)
        self.tgt_embed = nn.Embedding(vocab, E, padding_idx=0)
        self.encoder = nn.GRU(E, H // 2, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(H, H)
        self.cell = nn.GRUCell(E + H, H)
        self.key_proj = nn.Linear(H, A, bias=False)
        self.query_proj = nn.Linear(H, A, bias=False)
        self.combine = nn.Linear(2 * H, E)
        self.out = nn.Linear(E, vocab)
        self.out.weight = self.tgt_embed.weight

    def encode(self, src: Tensor, src_lengths: Tensor) -> Memory:
        B, S = src.shape
        packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(src), src_lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, h_n = self.encoder(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=S)
        summary = torch.cat([h_n[0], h_n[1]], dim=1)
        return Memory(states, padding_mask(src_lengths, S), {"summary": summary})

    def init_state(self, memory: Memory) -> tuple[Tensor, Tensor]:
        s = torch.tanh(self.bridge(memory.extra["summary"]))
        return s, torch.zeros_like(s)

    def step(self, tokens: Tensor, state: Any, memory: Memory, need_weights: bool = False):
        logits, state, weights = self._step(self.tgt_embed(tokens), state, memory)
        return F.log_softmax(logits, dim=-1), state, weights if need_weights else None

    def _step(self, emb: Tensor, state: tuple[Tensor, Tensor], memory: Memory):
        s, context = state
        s = self.cell(torch.cat([emb, context], dim=1), s)
        keys = self.key_proj(memory.states)  # recomputed at every step
        scores = torch.bmm(keys, self.query_proj(s).unsqueeze(2)).squeeze(2)  # (B, S)
        scores = scores.masked_fill(~memory.mask[:, 0], float("-inf"))
        weights = torch.softmax(scores, dim=1)
        context = torch.bmm(weights.unsqueeze(1), memory.states).squeeze(1)
        logits = self.out(torch.tanh(self.combine(torch.cat([s, context], dim=1))))
        return logits, (s, context), weights

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        memory = self.encode(src, src_lengths)
        state = self.init_state(memory)
        logits = []
        for t in range(tgt_in.shape[1]):
            step_logits, state, _ = self._step(self.tgt_embed(tgt_in[:, t]), state, memory)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)

    def reorder(self, state, index):
        return tuple(x.index_select(0, index) for x in state)


class FloorGRU(nn.Module):
    """The floor: no attention, no input feeding, so the decoder is one ``nn.GRU`` call."""

    def __init__(self, cfg: RNNAttnConfig, vocab: int) -> None:
        super().__init__()
        H, E = cfg.hidden_dim, cfg.emb_dim
        self.src_embed = nn.Embedding(vocab, E, padding_idx=0)
        self.tgt_embed = nn.Embedding(vocab, E, padding_idx=0)
        self.encoder = nn.GRU(E, H // 2, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(H, H)
        self.decoder = nn.GRU(E, H, batch_first=True)
        self.combine = nn.Linear(H, E)
        self.out = nn.Linear(E, vocab)
        self.out.weight = self.tgt_embed.weight

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(src), src_lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, h_n = self.encoder(packed)
        s0 = torch.tanh(self.bridge(torch.cat([h_n[0], h_n[1]], dim=1))).unsqueeze(0)  # (1, B, H)
        states, _ = self.decoder(self.tgt_embed(tgt_in), s0)  # (B, T, H)
        return self.out(torch.tanh(self.combine(states)))


def prepare(args: argparse.Namespace):
    data = load_corpus(OmegaConf.structured(TextDataConfig(max_train_pairs=args.pairs, max_eval_sentences=args.decode)))
    pairs = data.train.pairs()
    tok = train_tokenizer([s for s, _ in pairs] + [t for _, t in pairs], args.vocab, "unigram", seed=0)
    src = tok.encode_batch([s for s, _ in pairs])
    tgt = tok.encode_batch([t for _, t in pairs])
    lengths = [max(len(a), len(b)) + 1 for a, b in zip(src, tgt)]
    batches = token_batches(lengths, args.max_tokens, torch.Generator().manual_seed(0), shuffle=True)
    tensors = []
    for batch in batches[: args.steps]:
        s, s_len = pad_batch([src[i] for i in batch], 0, eos=2)
        t, _ = pad_batch([tgt[i] for i in batch], 0, bos=1, eos=2)
        tensors.append((s, s_len, t[:, :-1], t[:, 1:]))
    test = tok.encode_batch(data.test.sources)
    return tok.vocab_size, tensors, test


def clock() -> float:
    """CPU time of this process: with one thread it equals the wall time of a quiet machine, and
    it is not inflated when other jobs share the cores."""
    return time.process_time()


def train_speed(model: nn.Module, batches: list, vocab: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    tokens, seconds = 0, 0.0
    for i, (src, src_len, tgt_in, tgt_out) in enumerate(batches):
        start = clock()
        logits = model(src, src_len, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, vocab), tgt_out.reshape(-1), ignore_index=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step warms up
            seconds += clock() - start
            tokens += int((tgt_out != 0).sum())
    return tokens / seconds


def decode_speed(model: Seq2Seq, test: list[list[int]], beam: int) -> float:
    """Sentences/s; eos is suppressed so that both (barely trained) models produce outputs of the
    same length, max_len_a * source length + max_len_b, and do the same amount of search."""
    model.eval()
    cfg = DecodeConfig(beam_size=beam, batch_size=128)
    order = sorted(range(len(test)), key=lambda i: len(test[i]))
    with torch.no_grad():
        model.out.bias[2] = -1e4
    start = clock()
    for k in range(0, len(order), cfg.batch_size):
        src, src_len = pad_batch([test[i] for i in order[k : k + cfg.batch_size]], 0, eos=2)
        translate_batch(model, src, src_len, cfg)
    return len(test) / (clock() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and sentences (~2 minutes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared machines)")
    parser.add_argument("--train-only", action="store_true", help="skip the decoding measures")
    parser.add_argument("--compile", action="store_true", help="attnlab's model with trainer.compile")
    args = parser.parse_args()
    args.pairs, args.steps, args.decode = (8000, 6, 256) if args.quick else (30000, 20, 1000)
    args.vocab, args.max_tokens = 4000, 4096
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vocab, batches, test = prepare(args)
    cfg = RNNAttnConfig(emb_dim=256, hidden_dim=256, attn_dim=256, dropout=0.0, input_feeding="context")
    dot = OmegaConf.structured(AttentionConfig(score="dot"))
    ours = RNNAttention(OmegaConf.structured(cfg), dot, vocab, vocab)
    default_cfg = RNNAttnConfig(emb_dim=256, hidden_dim=256, attn_dim=256, dropout=0.0, input_feeding="seed",
                                qk_scale=10.0)
    ours_default = RNNAttention(OmegaConf.structured(default_cfg), dot, vocab, vocab)
    plain, floor = PlainRNN(cfg, vocab), FloorGRU(cfg, vocab)
    if args.compile:
        start, wall = clock(), time.perf_counter()
        ours.compile_for_training()
        train_speed(ours, batches[:3], vocab)
        # the compiler's worker processes are not in this process's CPU time: the wall time too
        print(f"compile: the first 3 steps took {clock() - start:.0f} s of this process's CPU time, "
              f"{time.perf_counter() - wall:.0f} s wall")
    train = lambda m: train_speed(m, batches, vocab)
    rows = [("training (target tok/s)", train(ours), train(plain))]
    default_train, floor_train = train(ours_default), train(floor)
    if not args.train_only:
        for name, fn in [
            ("greedy decoding (sent/s)", lambda m: decode_speed(m, test, 1)),
            ("beam-5 decoding (sent/s)", lambda m: decode_speed(m, test, 5)),
        ]:
            a, b = fn(plain), fn(ours)
            rows.append((name, b, a))
    params = lambda m: sum(p.numel() for p in m.parameters())
    print(f"\nrnn_attn, emb 256, hidden 256 (bi-GRU 2 x 128), attention dot over 256, vocab {vocab}; "
          f"params attnlab {params(ours):,}, plain {params(plain):,}; {args.threads} thread(s), "
          f"{len(batches) - 1} timed batches of <= {args.max_tokens} tokens, {len(test)} test sentences"
          f"{', trainer.compile' if args.compile else ''}\n")
    print(f"machine: {machine_summary()}\n")
    print("| measure | attnlab rnn_attn (input_feeding=context) | plain reference | speed-up |")
    print("|---|---:|---:|---:|")
    for name, ours_v, plain_v in rows:
        print(f"| {name} | {ours_v:,.0f} | {plain_v:,.0f} | {ours_v / plain_v:.2f}x |")
    plain_train = rows[0][2]
    print(f"\ntraining, target tok/s, same run: attnlab default decoder (seed feeding, qk_scale 10) "
          f"{default_train:,.0f} ({default_train / plain_train:.2f}x plain); floor (nn.GRU, no attention) "
          f"{floor_train:,.0f} ({floor_train / plain_train:.2f}x plain)")


if __name__ == "__main__":
    main()
