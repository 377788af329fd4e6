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

    python bench/bench_attention.py            # full
    python bench/bench_attention.py --quick    # fewer rounds (about a minute)
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

from attnlab.runlog import machine_summary
from attnlab.attention import attend, make_score, padding_mask

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
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.backward, args.memory_length)
        return
    if args.quick:
        args.rounds, args.reps = 3, 2
    bench_speed(args)
    bench_memory(args)


if __name__ == "__main__":
    main()
