"""Benchmark: attnlab's ``attend`` (fused and math paths) against ``F.scaled_dot_product_attention``.

1. Speed, forward and forward+backward, batch 32, 8 heads, head size 64, lengths 64 and 256:
   - ``attend`` with ``scaled_dot`` on its fused path (goal: within 5% of calling SDPA directly);
   - ``F.scaled_dot_product_attention`` called directly;
   - ``attend`` on the math path (scores, masked softmax, weights @ values).
   Each also with a key padding mask, which ``attend`` turns into a boolean mask (plus a guard for
   rows with no visible key). The variants take turns, round after round; each reports its median.
2. Peak memory at length 4096 (batch 1, 8 heads, head size 64): the fused path must not build the
   4096 x 4096 weights (8 heads x 64 MiB = 512 MiB in float32). Each measurement runs in a fresh
   child process that allocates q, k, v, records its peak resident set size (``ru_maxrss``), runs
   the attention once and reports how much the peak grew. On Linux the peak (VmHWM) is first reset
   to the current RSS (``echo 5 > /proc/self/clear_refs``), so earlier peaks (imports) cannot
   hide the call's own. That counts every byte the call touched (torch's CPU allocator takes large
   blocks from the OS and gives them back), without relying on the profiler's per-operator
   bookkeeping.

3. Variants (``--part variants``): for each variant of the spec (every score, every position,
   a window, MQA, GQA; generated from the registries) and each backend that can run it, the time
   of forward+backward of the attention itself (positions included, projections not) as a ratio
   to plain ``F.scaled_dot_product_attention`` on the same q, k, v in the same run; the peak
   memory of some of them at one length (fresh processes, as 2.); the length where linear
   attention's O(n) path overtakes softmax attention (SDPA).
4. Decoding with a KV cache (``--part decode``): MHA against GQA and MQA, one self-attention
   layer fed one token at a time: time per step and the cache's size.

    python bench/bench_attention.py            # 1. and 2. (``--part core``), full
    python bench/bench_attention.py --quick    # fewer rounds (about a minute)
    python bench/bench_attention.py --part variants --quick --threads 1      # 3. (about 20 minutes)
    python bench/bench_attention.py --part decode --threads 1 --rounds 5     # 4.
    python bench/bench_attention.py --part all                               # everything
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

import dataclasses

from attnlab.attention import POSITIONS, SCORES, SEQUENCE, MultiHeadAttention, attend, check_spec, make_score, padding_mask
from attnlab.attention.positions import window_allows
from attnlab.config import AttentionConfig
from attnlab.errors import UserError
from attnlab.runlog import machine_summary

SCORE = make_score("scaled_dot", 64, 64)

def variants(mask: Tensor | None) -> dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]]:
    sdpa_mask = None if mask is None else mask.unsqueeze(1)  # (B, 1, L) -> (B, 1, 1, L)
    return {
        "attend, fused": lambda q, k, v: attend(q, k, v, SCORE, sdpa_mask)[0],
        "F.scaled_dot_product_attention": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=sdpa_mask),
        "attend, math": lambda q, k, v: attend(q, k, v, SCORE, sdpa_mask, fused=False)[0],
    }


def timed(fn: Callable[[Tensor, Tensor, Tensor], Tensor], qkv: list[Tensor], backward: bool, reps: int) -> float:
    """Milliseconds per call (mean over ``reps`` calls)."""
    start = time.perf_counter()
    for _ in range(reps):
        out = fn(*qkv)
        if backward:
            out.backward(torch.ones_like(out))
    return (time.perf_counter() - start) / reps * 1e3


def bench_speed(args: argparse.Namespace) -> None:
    print(f"\n### attend() vs F.scaled_dot_product_attention ({machine_summary()})\n")
    print(f"batch 32, 8 heads, head size 64; milliseconds per call, median of {args.rounds} interleaved rounds "
          f"of {args.reps} calls; ratio = time / direct SDPA time (lower is faster).\n")
    print("| length | mask | pass | attend, fused | direct SDPA | attend, math | fused / SDPA | math / SDPA |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for length in args.lengths:
        for masked in (False, True):
            torch.manual_seed(0)
            qkv = [torch.randn(32, 8, length, 64, requires_grad=True) for _ in range(3)]
            lengths = torch.randint(length // 2, length + 1, (32,))
            mask = padding_mask(lengths, length) if masked else None  # (B, 1, L)
            fns = variants(mask)
            for backward in (False, True):
                grad = torch.enable_grad() if backward else torch.no_grad()
                with grad:
                    for fn in fns.values():  # warm-up
                        timed(fn, qkv, backward, 1)
                    times: dict[str, list[float]] = {name: [] for name in fns}
                    for _ in range(args.rounds):
                        for name, fn in fns.items():
                            times[name].append(timed(fn, qkv, backward, args.reps))
                med = {name: statistics.median(t) for name, t in times.items()}
                base = med["F.scaled_dot_product_attention"]
                print(f"| {length} | {'padding' if masked else 'none'} | {'fwd+bwd' if backward else 'fwd'} "
                      f"| {med['attend, fused']:.2f} | {base:.2f} | {med['attend, math']:.2f} "
                      f"| {med['attend, fused'] / base:.3f} | {med['attend, math'] / base:.2f} |")


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_kib() -> int:
    """The peak resident set size: VmHWM (resettable) where available, else ru_maxrss (KiB on Linux)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_child(path: str, backward: bool, length: int) -> None:
    """Run one attention in this (fresh) process and print the growth of the peak RSS in MiB."""
    torch.manual_seed(0)
    qkv = [torch.randn(1, 8, length, 64, requires_grad=backward) for _ in range(3)]
    fn = variants(None)["attend, fused" if path == "fused" else "attend, math"]
    with torch.enable_grad() if backward else torch.no_grad():
        fn(*[t[:, :, :8] for t in qkv])  # load the kernels before the baseline
        reset_peak_rss()
        before = peak_rss_kib()
        out = fn(*qkv)
        if backward:
            out.backward(torch.ones_like(out))
        after = peak_rss_kib()
    print(json.dumps({"mib": (after - before) / 1024}))


def bench_memory(args: argparse.Namespace) -> None:
    length = args.memory_length
    weights_mib = 8 * length * length * 4 / 2**20
    print(f"\n### Peak memory at length {length} ({machine_summary()})\n")
    print(f"batch 1, 8 heads, head size 64; growth of the process's peak RSS during one call, in a fresh process "
          f"each (q, k, v themselves: {3 * 8 * length * 64 * 4 / 2**20:.0f} MiB, allocated before the baseline). "
          f"One float32 weight matrix of all heads: {weights_mib:.0f} MiB.\n")
    print("| pass | attend, fused (MiB) | attend, math (MiB) |")
    print("|---|---:|---:|")
    for backward in (False, True):
        row = []
        for path in ("fused", "math"):
            cmd = [sys.executable, __file__, "--memory-child", path, "--memory-length", str(length),
                   "--threads", str(torch.get_num_threads())] + (["--backward"] if backward else [])
            result = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row.append(json.loads(result.stdout.strip().splitlines()[-1])["mib"])
        print(f"| {'fwd+bwd' if backward else 'fwd'} | {row[0]:,.0f} | {row[1]:,.0f} |")


# ----------------------------------------------------------------------------- variants

HEADS, HEAD_DIM = 8, 64


def spec_variants(window: int) -> list[tuple[str, AttentionConfig]]:
    """(label, spec) for each score, each position, a window, MQA and GQA, from the registries."""
    out = [(f"score={s}", AttentionConfig(score=s)) for s in SCORES.names()]
    out += [(f"position={p}", AttentionConfig(position=p)) for p in POSITIONS.names() if p != "none"]
    out += [(f"window={window}", AttentionConfig(window=window)), ("kv_heads=1 (MQA)", AttentionConfig(kv_heads=1)),
            ("kv_heads=2 (GQA)", AttentionConfig(kv_heads=2))]
    return out


def runnable(spec: AttentionConfig) -> bool:
    try:
        check_spec(spec, "transformer", HEADS, HEADS * HEAD_DIM)
    except UserError:
        return False
    return True


def attention_core(spec: AttentionConfig) -> tuple[Callable[[Tensor, Tensor, Tensor], Tensor], int]:
    """The attention of one self-attention layer without its projections: fn(q, k, v) and Hk.

    q (B, H, T, Dh), k and v (B, Hk, T, Dh); positions (RoPE rotation, biases) and the window as
    :class:`MultiHeadAttention` applies them."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(HEADS * HEAD_DIM, HEADS, spec)
    bias = mha.position.bias(SEQUENCE)
    allow = window_allows(mha.window, SEQUENCE) if mha.window else None

    def fn(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        pos = torch.arange(q.shape[2])
        q, k = mha.position.rotate(q, pos, SEQUENCE), mha.position.rotate(k, pos, SEQUENCE)
        return attend(q, k, v, mha.score, backend=mha.backend, fused=mha.fused, bias=bias, allow=allow)[0]

    return fn, mha.kv_heads


def _qkv(batch: int, length: int, kv_heads: int, grad: bool) -> list[Tensor]:
    g = torch.Generator().manual_seed(0)
    shapes = [(batch, HEADS, length, HEAD_DIM)] + [(batch, kv_heads, length, HEAD_DIM)] * 2
    return [torch.randn(*s, generator=g).requires_grad_(grad) for s in shapes]


def _plain(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    return F.scaled_dot_product_attention(q, k, v, enable_gqa=k.shape[1] != q.shape[1])


def _ratio(fn, batch: int, length: int, kv_heads: int, rounds: int, reps: int, backward: bool = True) -> float:
    """Median over interleaved rounds of (variant time / plain SDPA time) on the same q, k, v."""
    qkv = _qkv(batch, length, kv_heads, backward)
    ratios = []
    with torch.enable_grad() if backward else torch.no_grad():
        timed(fn, qkv, backward, 1)
        timed(_plain, qkv, backward, 1)
        for _ in range(rounds):
            ratios.append(timed(fn, qkv, backward, reps) / timed(_plain, qkv, backward, reps))
    return statistics.median(ratios)


def bench_variants(args: argparse.Namespace) -> None:
    lengths = args.variant_lengths
    print(f"\n### Variants: forward+backward time / plain SDPA ({machine_summary()})\n")
    print(f"batch {args.variant_batch}, {HEADS} heads, head size {HEAD_DIM}, no mask (encoder self-attention); the "
          f"attention alone (RoPE rotation and bias construction included, projections not); median ratio of "
          f"{args.rounds} interleaved rounds of {args.reps} calls against `F.scaled_dot_product_attention` on the same "
          "q, k, v (with `enable_gqa` for MQA/GQA), so the machine's load cancels out to first order. flex: "
          "FlexAttention has no backward on the CPU in torch 2.13, so it is timed forward only (eager, unfused).\n")
    print("| variant | backend | " + " | ".join(f"L={n}" for n in lengths) + " |")
    print("|---|---|" + "---:|" * len(lengths))
    for label, spec in spec_variants(args.window):
        if args.only and label.split(" ")[0] not in args.only:
            continue
        for backend in ("auto", "sdpa", "math", "flex"):
            s = dataclasses.replace(spec, backend=backend)
            if not runnable(s):
                continue
            if backend == "auto" and spec.score != "linear":
                continue  # auto is sdpa or math, both in the table; for linear it is the O(n) path
            if backend == "flex" and label not in ("position=alibi", "position=relative", f"window={args.window}"):
                continue  # flex only for the variants it was made for (bias and mask functions)
            fn, kv = attention_core(s)
            cells = []
            for n in lengths:
                longest = args.additive_max_length if spec.score == "additive" else args.math_max_length
                if backend in ("math", "flex") and n > longest or backend == "auto" and n > args.math_max_length * 4:
                    cells.append("-")
                    continue
                ratio = _ratio(fn, args.variant_batch, n, kv, args.rounds, args.reps, backward=backend != "flex")
                cells.append(f"{ratio:.2f}")
            name = "auto (O(n) path)" if backend == "auto" else "math (quadratic form)" if spec.score == "linear" else backend
            name = name + " (fwd)" if backend == "flex" else name
            print(f"| {label} | {name} | " + " | ".join(cells) + " |", flush=True)


def bench_crossover(args: argparse.Namespace) -> None:
    print(f"\n### Linear attention against softmax attention (SDPA), forward+backward ({machine_summary()})\n")
    print(f"batch 1, {HEADS} heads, head size {HEAD_DIM}; ratio = linear attention (O(n) path, `attention=linear`) "
          "time / plain SDPA time, median of interleaved rounds; below 1 linear attention is faster.\n")
    print("| length | non-causal | causal |")
    print("|---:|---:|---:|")
    linear = make_score("linear", HEAD_DIM, HEAD_DIM)
    crossover: dict[bool, int | None] = {False: None, True: None}
    for n in args.crossover_lengths:
        row = []
        for causal in (False, True):
            def fn(q, k, v, causal=causal):
                return attend(q, k, v, linear, causal=causal)[0]

            def plain(q, k, v, causal=causal):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

            qkv = _qkv(1, n, HEADS, True)
            ratios = []
            timed(fn, qkv, True, 1)
            timed(plain, qkv, True, 1)
            for _ in range(args.rounds):
                ratios.append(timed(fn, qkv, True, args.reps) / timed(plain, qkv, True, args.reps))
            r = statistics.median(ratios)
            if r < 1 and crossover[causal] is None:
                crossover[causal] = n
            row.append(f"{r:.2f}")
        print(f"| {n} | {row[0]} | {row[1]} |", flush=True)
    for causal in (False, True):
        where = f"from length {crossover[causal]}" if crossover[causal] else "not within the lengths measured"
        print(f"\nLinear attention overtakes SDPA ({'causal' if causal else 'non-causal'}): {where}.")


def variant_memory_child(label: str, backend: str, length: int, window: int) -> None:
    spec = dict(spec_variants(window)).get(label, AttentionConfig())
    spec = dataclasses.replace(spec, backend=backend)
    fn, kv = (_plain, HEADS) if label == "plain SDPA" else attention_core(spec)
    q, k, v = _qkv(1, length, kv, True)
    fn(*[t[:, :, :8] for t in (q, k, v)])
    reset_peak_rss()
    before = peak_rss_kib()
    out = fn(q, k, v)
    out.backward(torch.ones_like(out))
    print(json.dumps({"mib": (peak_rss_kib() - before) / 1024}))


def bench_variant_memory(args: argparse.Namespace) -> None:
    n = args.variant_memory_length
    print(f"\n### Variants: peak memory of forward+backward at length {n} ({machine_summary()})\n")
    print(f"batch 1, {HEADS} heads, head size {HEAD_DIM}; growth of the peak RSS in a fresh process each (as above). "
          f"One float32 (H, L, L) matrix: {HEADS * n * n * 4 / 2**20:.0f} MiB.\n")
    print("| variant | backend | MiB |")
    print("|---|---|---:|")
    cases = [("plain SDPA", "sdpa"), ("score=scaled_dot", "sdpa"), ("score=scaled_dot", "math"),
             ("position=rope", "sdpa"), ("position=alibi", "sdpa"), ("position=relative", "sdpa"),
             (f"window={args.window}", "sdpa"), ("kv_heads=1 (MQA)", "sdpa"), ("score=linear", "auto")]
    for label, backend in cases:
        cmd = [sys.executable, __file__, "--variant-memory-child", label, backend, "--variant-memory-length", str(n),
               "--window", str(args.window), "--threads", str(torch.get_num_threads())]
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        mib = json.loads(result.stdout.strip().splitlines()[-1])["mib"]
        shown = "auto (O(n) path)" if label == "score=linear" else backend
        print(f"| {label} | {shown} | {mib:,.0f} |", flush=True)


def bench_decode(args: argparse.Namespace) -> None:
    d, steps, batch = HEADS * HEAD_DIM, args.decode_steps, args.decode_batch
    print(f"\n### Decoding with a KV cache: MHA, GQA, MQA ({machine_summary()})\n")
    print(f"one self-attention layer (width {d}, {HEADS} heads, projections included), batch {batch}, fed one token "
          f"at a time for {steps} steps with its cache, no grad; time per step as a ratio to MHA (median of "
          f"{args.rounds} interleaved rounds); cache size after {steps} steps.\n")
    print("| attention | kv heads | cache (MiB) | cache / MHA | time per step / MHA |")
    print("|---|---:|---:|---:|---:|")
    mods = {}
    for label, kv in (("MHA", 0), ("GQA", 2), ("MQA", 1)):
        torch.manual_seed(0)
        mods[label] = MultiHeadAttention(d, HEADS, AttentionConfig(kv_heads=kv)).eval()
    tokens = torch.randn(batch, steps, d, generator=torch.Generator().manual_seed(0))

    def decode(m):
        cache: dict = {}
        start = time.perf_counter()
        for t in range(steps):
            m(tokens[:, t : t + 1], causal=True, cache=cache)
        return time.perf_counter() - start, cache

    times: dict[str, list[float]] = {k: [] for k in mods}
    sizes = {}
    with torch.no_grad():
        for m in mods.values():
            decode(m)
        for _ in range(args.rounds):
            for label, m in mods.items():
                seconds, cache = decode(m)
                times[label].append(seconds)
                sizes[label] = sum(t.numel() * t.element_size() for t in cache.values()) / 2**20
    base = statistics.median(times["MHA"])
    for label, m in mods.items():
        ratio = statistics.median(times[label]) / base
        print(f"| {label} | {m.kv_heads} | {sizes[label]:.2f} | {sizes[label] / sizes['MHA']:.3f} | {ratio:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls (about a minute)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--memory-length", type=int, default=4096)
    parser.add_argument("--memory-child", choices=["fused", "math"], help=argparse.SUPPRESS)
    parser.add_argument("--backward", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=["core", "variants", "decode", "all"], default="core")
    parser.add_argument("--only", nargs="+", help="variants table: only these labels, e.g. score=linear")
    parser.add_argument("--variant-lengths", type=int, nargs="+", default=[64, 256, 1024, 4096])
    parser.add_argument("--variant-batch", type=int, default=1)
    parser.add_argument("--math-max-length", type=int, default=1024, help="longest length timed on the math and flex paths (they build the L x L matrix)")
    parser.add_argument("--additive-max-length", type=int, default=256,
                        help="additive builds an (H, L, L, A) tensor: 2 GiB at L=1024")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--crossover-lengths", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048, 4096])
    parser.add_argument("--variant-memory-length", type=int, default=2048)
    parser.add_argument("--variant-memory-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--decode-steps", type=int, default=256)
    parser.add_argument("--decode-batch", type=int, default=8)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.backward, args.memory_length)
        return
    if args.variant_memory_child:
        variant_memory_child(*args.variant_memory_child, args.variant_memory_length, args.window)
        return
    if args.quick:
        args.rounds, args.reps = 3, 2
    if args.part in ("core", "all"):
        bench_speed(args)
        bench_memory(args)
    if args.part in ("variants", "all"):
        bench_variants(args)
        if not args.only:
            bench_crossover(args)
            bench_variant_memory(args)
    if args.part in ("decode", "all"):
        bench_decode(args)


if __name__ == "__main__":
    main()
