"""Benchmark: attnlab's Transformer translator against torch.nn.Transformer, and KV-cache decoding.

1. Training throughput (target tokens/s, forward + backward + AdamW step) of attnlab's
   Transformer (fused attention path, and the math path) and of ``torch.nn.Transformer`` with the
   same widths, depths, norm placement, embeddings, output layer, masks, loss and batches.
   The models take turns, round after round, and each reports its median round, so a noisy
   shared machine slows them alike; the ratio of the same run is the number to read.
2. Greedy decoding (sentences/s) with the KV cache (:meth:`Transformer.step`: one new position per
   step) and without it (the whole decoder re-run on the prefix at every step).

    python bench/bench_transformer.py            # full
    python bench/bench_transformer.py --quick    # about a minute or two
    python bench/bench_transformer.py --threads 1
    python bench/bench_transformer.py --device cuda --batch 256
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.runlog import machine_summary
from attnlab.config import AttentionConfig
from attnlab.models.transformer import Transformer

PAD, BOS, EOS = 0, 1, 2




class TorchTransformer(nn.Module):
    """``torch.nn.Transformer`` with the same embeddings, positions and output layer as attnlab's."""

    def __init__(self, vocab: int, d_model: int, heads: int, layers: int, d_ff: int, norm_first: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model, padding_idx=PAD)
        self.scale = math.sqrt(d_model)
        self.core = nn.Transformer(
            d_model, heads, layers, layers, d_ff, dropout=0.1, batch_first=True, norm_first=norm_first
        )
        self.out = nn.Linear(d_model, vocab, bias=False)
        self.out.weight = self.embed.weight
        from attnlab.layers.positional import sinusoid

        self.register_buffer("pe", sinusoid(torch.arange(1024), d_model), persistent=False)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        s, t = src.shape[1], tgt_in.shape[1]
        x = F.dropout(self.embed(src) * self.scale + self.pe[:s], 0.1, self.training)
        y = F.dropout(self.embed(tgt_in) * self.scale + self.pe[:t], 0.1, self.training)
        src_pad = torch.arange(s, device=src.device) >= src_lengths.unsqueeze(1)  # (B, S), True = padding
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=src.device)
        h = self.core(
            x, y, tgt_mask=causal, src_key_padding_mask=src_pad, tgt_key_padding_mask=tgt_in == PAD,
            memory_key_padding_mask=src_pad, tgt_is_causal=True,
        )
        return self.out(h)


def random_batches(
    n: int, batch: int, vocab: int, lo: int, hi: int, seed: int, device: torch.device = torch.device("cpu")
) -> list[tuple[Tensor, ...]]:
    """Batches of random sentence pairs with lengths in [lo, hi] (like Tatoeba's 5-25 subwords),
    each batch padded to its longest member: (src, src_lengths, tgt_in, tgt_out) on ``device``."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        src_len = torch.randint(lo, hi + 1, (batch,), generator=g)
        tgt_len = torch.randint(lo, hi + 1, (batch,), generator=g)
        s, t = int(src_len.max()), int(tgt_len.max()) + 1
        src = torch.randint(3, vocab, (batch, s), generator=g)
        src[torch.arange(s) >= src_len.unsqueeze(1)] = PAD
        body = torch.randint(3, vocab, (batch, t), generator=g)
        real = torch.arange(t) < tgt_len.unsqueeze(1)  # (B, T) words
        tgt_in = torch.cat([torch.full((batch, 1), BOS), torch.where(real, body, PAD)[:, :-1]], 1)
        tgt_out = torch.where(real, body, PAD)
        tgt_out[torch.arange(batch), tgt_len] = EOS
        out.append(tuple(x.to(device) for x in (src, src_len, tgt_in, tgt_out)))
    return out


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that host clocks time the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_round(model: nn.Module, opt: torch.optim.Optimizer, batches: list[tuple[Tensor, ...]]) -> float:
    """Train on ``batches``; returns target tokens per second."""
    tokens, device = 0, batches[0][0].device
    sync(device)
    start = time.perf_counter()
    for src, src_len, tgt_in, tgt_out in batches:
        logits = model(src, src_len, tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tokens += int((tgt_out != PAD).sum())
    sync(device)
    return tokens / (time.perf_counter() - start)


def interleaved(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median of ``rounds`` rounds per entry, the entries taking turns (after one warm-up each)."""
    for fn in runs.values():
        fn()
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            results[name].append(fn())
    return {name: statistics.median(values) for name, values in results.items()}


def bench_training(args: argparse.Namespace) -> None:
    d, heads, layers, d_ff, vocab = args.d_model, args.heads, args.layers, args.d_ff, args.vocab
    batches = random_batches(args.steps, args.batch, vocab, 5, 25, seed=0, device=args.device)
    runs: dict[str, Callable[[], float]] = {}
    for name, fused in (("attnlab (fused)", True), ("attnlab (math)", False)):
        torch.manual_seed(0)
        model = Transformer(vocab, vocab, d_model=d, heads=heads, enc_layers=layers, dec_layers=layers,
                            d_ff=d_ff, norm=args.norm, attention=AttentionConfig(fused=fused)).to(args.device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        runs[name] = lambda m=model, o=opt: train_round(m, o, batches)
    torch.manual_seed(0)
    ref = TorchTransformer(vocab, d, heads, layers, d_ff, norm_first=args.norm == "pre").to(args.device).train()
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-4)
    runs["torch.nn.Transformer"] = lambda: train_round(ref, ref_opt, batches)
    rates = interleaved(runs, args.rounds)
    base = rates["torch.nn.Transformer"]
    print(f"\n### Training throughput ({machine_summary()})\n")
    print(f"d_model {d}, {heads} heads, {layers}+{layers} layers, d_ff {d_ff}, vocab {vocab}, norm={args.norm}, "
          f"batches of {args.batch} random pairs of 5-25 tokens, {args.steps} steps a round, "
          f"median of {args.rounds} interleaved rounds.\n")
    print("| model | target tokens/s | ratio to torch.nn.Transformer |")
    print("|---|---:|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f} |")


@torch.no_grad()
def greedy(model: Transformer, src: Tensor, src_len: Tensor, steps: int, cached: bool) -> Tensor:
    """``steps`` greedy tokens per sentence (no early stop, so both variants do equal work)."""
    memory = model.encode(src, src_len)
    out = torch.full((src.shape[0], 1), BOS, device=src.device)
    state = model.init_state(memory)
    for _ in range(steps):
        if cached:
            log_probs, state, _ = model.step(out[:, -1], state, memory)
        else:
            log_probs = model.decode(out, memory)[:, -1]  # the whole prefix again: (B, t, V) -> (B, V)
        out = torch.cat([out, log_probs.argmax(-1, keepdim=True)], dim=1)
    return out


def bench_decoding(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    model = Transformer(args.vocab, args.vocab, d_model=args.d_model, heads=args.heads, enc_layers=args.layers,
                        dec_layers=args.layers, d_ff=args.d_ff, norm=args.norm).to(args.device).eval()
    src, src_len, _, _ = random_batches(1, args.decode_batch, args.vocab, 5, 25, seed=1, device=args.device)[0]
    assert torch.equal(greedy(model, src, src_len, 8, True), greedy(model, src, src_len, 8, False))

    def rate(cached: bool) -> float:
        sync(args.device)
        start = time.perf_counter()
        greedy(model, src, src_len, args.decode_len, cached)
        sync(args.device)
        return src.shape[0] / (time.perf_counter() - start)

    rates = interleaved({"with KV cache": lambda: rate(True), "without cache": lambda: rate(False)}, args.rounds)
    print(f"\n### Greedy decoding ({machine_summary()})\n")
    print(f"Same model, {args.decode_batch} sentences a batch, {args.decode_len} output tokens each "
          f"(no early stop), median of {args.rounds} interleaved rounds; both give the same tokens.\n")
    print("| decoder | sentences/s | speed-up |")
    print("|---|---:|---:|")
    base = rates["without cache"]
    for name, value in rates.items():
        print(f"| {name} | {value:,.1f} | {value / base:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds (about a minute)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--d-ff", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--norm", choices=["pre", "post"], default="pre")
    parser.add_argument("--batch", type=int, default=64, help="sentence pairs per training batch")
    parser.add_argument("--steps", type=int, default=10, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--decode-batch", type=int, default=32)
    parser.add_argument("--decode-len", type=int, default=40)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    args.device = torch.device(args.device)
    if args.quick:
        args.batch, args.steps, args.rounds, args.decode_batch, args.decode_len = 32, 3, 3, 16, 24
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", module="torch.nn.modules")  # nn.Transformer's fast-path notes
    bench_training(args)
    bench_decoding(args)


if __name__ == "__main__":
    main()
