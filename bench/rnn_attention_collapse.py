"""Why does the RNN translator's attention collapse onto the source ``</s>``? Measure it.

    python bench/rnn_attention_collapse.py                       # every variant, 400 steps each
    python bench/rnn_attention_collapse.py --steps 200 --variants dot scaled_dot

Each variant trains the RNN recipe as it was when its attention collapsed (emb/hidden/attn 256,
bi-GRU, ``input_feeding=context``, no query-key normalisation, no dropout, 4k joint subwords, 1,024-token batches, AdamW with the recipe's warm-up and a cosine schedule spanning
``--budget`` steps, so the first ``--steps`` updates are those of a full default run) on the first
``--pairs`` training pairs of the shipped Tatoeba corpus, one thread, seed 0. Every
``--probe-every`` steps it teacher-forces ``--probe`` validation sentences step by step and prints
what the attention does there:

- ``logit std``: standard deviation of the raw scores a~_ti over the real source positions of
  each row, averaged over rows (how hard the softmax is driven);
- ``entropy_norm``, ``max_weight``, ``eos_share`` (share of rows peaking on the source
  ``</s>``), ``eos_weight``: :mod:`attnlab.attention.health`;
- the training loss (mean of the last ``--probe-every`` steps).

The numbers do not depend on the clock (one thread, fixed seed and data order), so they can be
quoted with the command that made them.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from attnlab.attention.health import HealthMeter
from attnlab.config import AttentionConfig, RNNAttnConfig, TextDataConfig, TrainerConfig
from attnlab.data.batching import pad_batch, token_batches
from attnlab.data.text import load_corpus
from attnlab.data.tokenizer import train_tokenizer
from attnlab.models.rnn_attn import RNNAttention
from attnlab.train import lr_factor, make_optimizer

# name -> (attention keys, model keys, trainer keys) on top of the default recipe
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "dot": ({"score": "dot"}, {}, {}),
    "scaled_dot": ({"score": "scaled_dot"}, {}, {}),
    "general": ({"score": "general"}, {}, {}),
    "additive": ({"score": "additive"}, {}, {}),
    "dot_lr1e-3": ({"score": "dot"}, {}, {"lr": 1e-3}),
    "dot_warmup1000": ({"score": "dot"}, {}, {"warmup_steps": 1000}),
    "dot_qknorm": ({"score": "dot"}, {"qk_scale": 10.0}, {}),
    "general_qknorm": ({"score": "general"}, {"qk_scale": 10.0}, {}),
    "additive_qknorm": ({"score": "additive"}, {"qk_scale": 10.0}, {}),
    "scaled_dot_qknorm": ({"score": "scaled_dot"}, {"qk_scale": 160.0}, {}),
}


def recipe() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The recipe's model and trainer keys before this measurement (conf/recipe/translation_rnn_attn.yaml
    then: context feeding, no query-key normalisation)."""
    model = dict(emb_dim=256, hidden_dim=256, attn_dim=256, dropout=0.0, input_feeding="context", qk_scale=0.0)
    trainer = dict(lr=3e-3, warmup_steps=200, weight_decay=0.0, max_tokens=1024)
    return {}, model, trainer


def prepare(args: argparse.Namespace):
    data = load_corpus(OmegaConf.structured(TextDataConfig(max_train_pairs=args.pairs)))
    pairs = data.train.pairs()
    targets = list(dict.fromkeys(t for _, t in pairs))
    tok = train_tokenizer([s for s, _ in pairs] + targets, 4000, "unigram", seed=0)
    src = tok.encode_batch([s for s, _ in pairs])
    tgt = tok.encode_batch([t for _, t in pairs])
    valid = data.valid.head(args.probe)
    vsrc = tok.encode_batch(valid.sources)
    vtgt = tok.encode_batch([refs[0] for refs in valid.references])
    return tok.vocab_size, (src, tgt), (vsrc, vtgt)


def tensors(src, tgt, batch):
    s, s_len = pad_batch([src[i] for i in batch], 0, eos=2)
    t, _ = pad_batch([tgt[i] for i in batch], 0, bos=1, eos=2)
    return s, s_len, t[:, :-1], t[:, 1:]


@torch.no_grad()
def probe(model: RNNAttention, valid) -> dict[str, float]:
    """Teacher-forced, step by step, on the probe sentences: health and the raw logits' spread."""
    model.eval()
    captured: list[torch.Tensor] = []
    compare = model.score.compare  # the raw scores a~ = score(q, k) of attend's math path

    def capture(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        captured.append(compare(q, k))
        return captured[-1]

    model.score.compare = capture
    vsrc, vtgt = valid
    src, src_len, tgt_in, tgt_out = tensors(vsrc, vtgt, list(range(len(vsrc))))
    memory = model.encode(src, src_len)
    state = model.init_state(memory)
    meter, stds = HealthMeter(), []
    rows: list[list[torch.Tensor]] = [[] for _ in range(len(vsrc))]
    for t in range(tgt_in.shape[1]):
        captured.clear()
        _, state, alpha = model.step(tgt_in[:, t], state, memory, need_weights=True)  # (B, S)
        scores = captured[-1].reshape(alpha.shape)  # (B, 1, S) -> (B, S)
        for b in range(len(vsrc)):
            if tgt_out[b, t] != 0:
                n = int(src_len[b])
                rows[b].append(alpha[b, :n])
                stds.append(float(scores[b, :n].std()) if n > 1 else 0.0)
    del model.score.compare  # back to the class's method
    for r in rows:
        meter.add(torch.stack(r))
    model.train()
    return {**meter.summary(), "logit_std": sum(stds) / len(stds)}


def run(name: str, args: argparse.Namespace, vocab: int, train, valid) -> list[dict[str, float]]:
    attn, model_keys, trainer_keys = (dict(a) for a in recipe())
    va, vm, vt = VARIANTS[name]
    attn.update(va), model_keys.update(vm), trainer_keys.update(vt)
    torch.manual_seed(args.seed)
    cfg = OmegaConf.structured(RNNAttnConfig(**model_keys))
    model = RNNAttention(cfg, OmegaConf.structured(AttentionConfig(**attn)), vocab, vocab)
    tcfg = TrainerConfig(**trainer_keys)
    opt = make_optimizer(model, tcfg)
    src, tgt = train
    lengths = [max(len(a), len(b)) + 1 for a, b in zip(src, tgt)]
    batches: list[list[int]] = []
    epoch = 0
    while len(batches) < args.steps:
        batches += token_batches(lengths, tcfg.max_tokens, torch.Generator().manual_seed(epoch), shuffle=True)
        epoch += 1
    out, losses = [], []
    for step in range(args.steps + 1):
        if step % args.probe_every == 0:
            row = {"variant": name, "step": step, **probe(model, valid)}
            row["train_loss"] = sum(losses) / len(losses) if losses else float("nan")
            out.append(row)
            losses = []
            print_row(row)
        if step == args.steps:
            break
        for g in opt.param_groups:
            g["lr"] = tcfg.lr * lr_factor(tcfg, step, step / args.budget)
        s, s_len, t_in, t_out = tensors(src, tgt, batches[step])
        logits = model(s, s_len, t_in)
        loss = F.cross_entropy(logits.reshape(-1, vocab), t_out.reshape(-1), ignore_index=0)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.clip_norm)
        opt.step()
        losses.append(loss.item())
    return out


HEADER = "| variant | step | logit std | entropy_norm | max_weight | eos_share | eos_weight | train loss |"


def print_row(r: dict[str, float]) -> None:
    print(f"| {r['variant']} | {r['step']} | {r['logit_std']:.2f} | {r['entropy_norm']:.3f} | {r['max_weight']:.3f} "
          f"| {r['eos_share']:.3f} | {r['eos_weight']:.3f} | {r['train_loss']:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--budget", type=int, default=2800, help="steps the cosine schedule spans")
    parser.add_argument("--probe-every", type=int, default=50)
    parser.add_argument("--pairs", type=int, default=30000)
    parser.add_argument("--probe", type=int, default=128, help="validation sentences probed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vocab, train, valid = prepare(args)
    print(" ".join(sys.argv))
    print(HEADER)
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.variants:
        run(name, args, vocab, train, valid)


if __name__ == "__main__":
    main()
