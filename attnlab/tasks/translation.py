"""Machine translation: train a translator, score it with sacreBLEU, draw its attention.

    python -m attnlab                                              # train (RNN + attention, de->en)
    python -m attnlab mode=evaluate checkpoint=RUN/checkpoints/best.pt
    python -m attnlab mode=translate checkpoint=RUN/checkpoints/best.pt [input=FILE] [output=FILE]

``mode=train``: load the corpus, train a SentencePiece tokenizer on the training split only
(``tokenizer.model`` in the run folder, and inside every checkpoint), train with the shared
:class:`attnlab.train.Trainer` on length-bucketed token batches (validation = loss and greedy
BLEU on the valid split), then load ``best.pt`` and score the test split: sacreBLEU corpus BLEU
and chrF on detokenized cased text against all references, ``hypotheses.txt``, ``results.json``
and attention heatmaps in ``attention/``.

``mode=evaluate`` rebuilds the tokenizer and the model from a checkpoint (sizes, vocabulary and
languages from its saved config; ``model=`` must name its model, and where the test data lies
comes from the command line: data.test_split, data.path, data.cache_dir, data.max_eval_sentences)
and re-scores the test split; ``mode=translate`` translates lines from a file or stdin.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from attnlab import progress
from attnlab.attention.health import attention_health
from attnlab.checkpoint import check_compatible, load_checkpoint, load_state
from attnlab.config import DecodeConfig
from attnlab.data.batching import fixed_batches, pad_batch, token_batches
from attnlab.data.text import ParallelData, Split, load_corpus, normalize_space, read_lines
from attnlab.data.symbols import SymbolTokenizer, tokenizer_from_bytes
from attnlab.data.tokenizer import Tokenizer, train_tokenizer
from attnlab.decode import Hypothesis, n_best_batch, sampling_generator, translate_batch
from attnlab.errors import UserError
from attnlab.metrics import bleu_by_length, corpus_scores
from attnlab.models import build_model
from attnlab.models.seq2seq import Seq2Seq
from attnlab.runlog import base_results, peak_rss_mb, prepare_run, write_json
from attnlab.train import Trainer, load_best_weights
from attnlab.viz.text import plot_attention, plot_attention_grid

log = logging.getLogger("attnlab.translation")

EOS_PIECE = "</s>"
BOS_PIECE = "<s>"
# SentencePiece learns its vocabulary from a random sample of this many training sentences:
# on the shipped corpus (260k sentences) that halves the tokenizer's time for the same lengths.
TOKENIZER_SAMPLE = 100_000


# ----------------------------------------------------------------------------- tokenizers


@dataclass
class Tokenizers:
    """The source and target tokenizers (one object for both with ``data.shared_vocab``)."""

    src: Tokenizer
    tgt: Tokenizer

    @property
    def shared(self) -> bool:
        return self.src is self.tgt

    @classmethod
    def train(cls, train: Split, cfg: DictConfig, symbols: Sequence[str] = ()) -> Tokenizers:
        """SentencePiece on the training split only (never valid/test text); with
        ``data.tokenizer_type=symbols`` one id per whitespace-separated symbol (``symbols`` first)."""
        data = cfg.data
        targets = list(dict.fromkeys(t for refs in train.references for t in refs))
        if data.tokenizer_type == "symbols":
            shared = SymbolTokenizer.fit(train.sources + targets, symbols)
            return cls(shared, shared)

        def fit(text: list[str]) -> Tokenizer:
            log.info("training a %s tokenizer of %d subwords on %d sentences (at most %d sampled)",
                     data.tokenizer_type, data.vocab_size, len(text), TOKENIZER_SAMPLE)
            with progress.clock("tokenizer"):  # one SentencePiece call, no progress of its own: a clock
                return train_tokenizer(
                    text, data.vocab_size, str(data.tokenizer_type), seed=cfg.seed, max_sentences=TOKENIZER_SAMPLE
                )

        if data.shared_vocab:
            shared = fit(train.sources + targets)
            return cls(shared, shared)
        return cls(fit(train.sources), fit(targets))

    def to_extra(self) -> dict[str, bytes]:
        if self.shared:
            return {"tokenizer": self.src.to_bytes()}
        return {"src_tokenizer": self.src.to_bytes(), "tgt_tokenizer": self.tgt.to_bytes()}

    @classmethod
    def from_extra(cls, extra: dict[str, Any], path: Path | str) -> Tokenizers:
        if "tokenizer" in extra:
            shared = tokenizer_from_bytes(extra["tokenizer"])
            return cls(shared, shared)
        if "src_tokenizer" in extra and "tgt_tokenizer" in extra:
            return cls(tokenizer_from_bytes(extra["src_tokenizer"]), tokenizer_from_bytes(extra["tgt_tokenizer"]))
        raise UserError(f"checkpoint {path} carries no tokenizer; it is not a translation checkpoint")

    def save(self, run_dir: Path) -> None:
        if self.shared:
            self.src.save(run_dir / "tokenizer.model")
        else:
            self.src.save(run_dir / "tokenizer.src.model")
            self.tgt.save(run_dir / "tokenizer.tgt.model")


# ----------------------------------------------------------------------------- batches


@dataclass
class EncodedPairs:
    """Subword ids of (source, target) pairs, without specials."""

    src: list[list[int]]
    tgt: list[list[int]]

    @classmethod
    def encode(cls, pairs: Sequence[tuple[str, str]], toks: Tokenizers, max_tokens: int = 0) -> EncodedPairs:
        """Encode pairs; with ``max_tokens`` > 0 drop pairs with a longer side (in subwords)."""
        src = toks.src.encode_batch([s for s, _ in pairs])
        tgt = toks.tgt.encode_batch([t for _, t in pairs])
        if max_tokens > 0:
            kept = [i for i in range(len(src)) if len(src[i]) <= max_tokens and len(tgt[i]) <= max_tokens]
            if len(kept) < len(src):
                log.info("dropped %d of %d training pairs longer than %d subwords", len(src) - len(kept), len(src), max_tokens)
            src, tgt = [src[i] for i in kept], [tgt[i] for i in kept]
        return cls(src, tgt)

    def __len__(self) -> int:
        return len(self.src)

    def lengths(self) -> list[int]:
        """Padded length each pair needs in a batch: the longer side plus its eos/bos."""
        return [max(len(s), len(t)) + 1 for s, t in zip(self.src, self.tgt)]

    def tensors(self, batch: Sequence[int], device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """src (B, S) ending in eos, src_lengths (B,), tgt_in (B, T) = bos y, tgt_out (B, T) = y eos."""
        src, src_len = pad_batch([self.src[i] for i in batch], Seq2Seq.pad_id, eos=Seq2Seq.eos_id)
        tgt, _ = pad_batch([self.tgt[i] for i in batch], Seq2Seq.pad_id, bos=Seq2Seq.bos_id, eos=Seq2Seq.eos_id)
        return src.to(device), src_len.to(device), tgt[:, :-1].to(device), tgt[:, 1:].to(device)


def make_batches(
    lengths: Sequence[int], cfg: DictConfig, generator: torch.Generator | None, shuffle: bool
) -> list[list[int]]:
    """Token-budget batches (``trainer.max_tokens``), or ``trainer.batch_size`` sentences."""
    if cfg.trainer.max_tokens > 0:
        return token_batches(lengths, cfg.trainer.max_tokens, generator, shuffle)
    return fixed_batches(len(lengths), cfg.trainer.batch_size, generator, shuffle)


# ----------------------------------------------------------------------------- translation


def translate_sentences(
    model: Seq2Seq,
    toks: Tokenizers,
    sentences: Sequence[str],
    cfg: DecodeConfig,
    device: torch.device,
    need_weights: bool = False,
) -> list[Hypothesis]:
    """Translate ``sentences`` in batches of ``cfg.batch_size`` sorted by length (less padding);
    the result is in input order. With ``cfg.sampling`` each translation is a seeded sample."""
    model.eval()
    generator = sampling_generator(cfg, device)
    return _by_length(toks.src.encode_batch(list(sentences)), cfg.batch_size, device,
                      lambda src, n: translate_batch(model, src, n, cfg, need_weights, generator))


def translate_n_best(
    model: Seq2Seq, toks: Tokenizers, sentences: Sequence[str], cfg: DecodeConfig, device: torch.device
) -> list[list[Hypothesis]]:
    """``cfg.n_best`` translations of each sentence, best first: samples (``cfg.sampling``, in the
    order drawn) or the beam's best hypotheses."""
    model.eval()
    generator = sampling_generator(cfg, device)
    return _by_length(toks.src.encode_batch(list(sentences)), cfg.batch_size, device,
                      lambda src, n: n_best_batch(model, src, n, cfg, generator))


def _by_length(ids: list[list[int]], batch_size: int, device: torch.device,
               search: Callable[[Tensor, Tensor], list[Any]]) -> list[Any]:
    """``search(src (B, S), src_lengths (B,))`` over batches of sentences of similar lengths; the
    results in the order of ``ids``."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[Any] = [None] * len(ids)
    size = max(batch_size, 1)
    for start in progress.bar(range(0, len(order), size), desc="decoding", unit="batch"):
        chunk = order[start : start + size]
        src, src_len = pad_batch([ids[i] for i in chunk], Seq2Seq.pad_id, eos=Seq2Seq.eos_id)
        for i, result in zip(chunk, search(src.to(device), src_len.to(device))):
            out[i] = result
    return out


def score_split(
    model: Seq2Seq, toks: Tokenizers, split: Split, cfg: DecodeConfig, device: torch.device
) -> tuple[dict[str, Any], list[str]]:
    """Translate a split's sources; corpus BLEU/chrF against all its references, and the health
    of the attention the search used (:mod:`attnlab.attention.health`) when the model has one."""
    start = time.perf_counter()
    found = translate_sentences(model, toks, split.sources, cfg, device, need_weights=True)
    seconds = time.perf_counter() - start
    hyps = [toks.tgt.decode(h.tokens) for h in found]
    scores = corpus_scores(hyps, split.references).as_dict()
    health = attention_health([h.attention for h in found if h.attention is not None])
    extra = {"attention_health": health} if health else {}
    return {**scores, **extra, "decode_seconds": seconds, "sentences_per_s": len(hyps) / max(seconds, 1e-9)}, hyps


def draw_attention(
    model: Seq2Seq,
    toks: Tokenizers,
    sentences: Sequence[str],
    cfg: DecodeConfig,
    device: torch.device,
    folder: Path,
    layer_grids: int = 1,
) -> list[Path]:
    """Heatmaps of the attention of the chosen translations of ``sentences``: ``test_NNN.png``
    (the attention that the search used: the RNN's, or the Transformer's last cross-attention
    averaged over heads) and, for the first ``layer_grids`` sentences and a model with
    ``attention_maps`` (the Transformer), grids of every layer and head: ``test_NNN_cross.png``,
    ``test_NNN_encoder.png``, ``test_NNN_decoder.png``. The raw weights of every sentence go to
    ``test_NNN.npz`` beside them (see :func:`save_weights`)."""
    hyps = translate_sentences(model, toks, sentences, cfg, device, need_weights=True)
    paths = []
    for n, (sentence, hyp) in enumerate(zip(sentences, hyps)):
        if hyp.attention is None:
            log.info("this model returns no attention weights (attention=none?): no heatmaps")
            return []
        src_ids = toks.src.encode(sentence)
        src = [toks.src.id_to_piece(i) for i in src_ids] + [EOS_PIECE]
        tgt = [toks.tgt.id_to_piece(i) for i in hyp.tokens] + [EOS_PIECE]
        title = f"{sentence}\n-> {toks.tgt.decode(hyp.tokens)}"
        paths.append(plot_attention(hyp.attention, src, tgt, folder / f"test_{n:03d}.png", title))
        maps = _every_layer(model, src_ids, hyp.tokens, device) if hasattr(model, "attention_maps") else {}
        save_weights(folder / f"test_{n:03d}.npz", src, tgt, hyp.attention, maps)
        if n < layer_grids and maps:
            paths += _draw_every_layer(model, src_ids, hyp.tokens, src, tgt, title, folder / f"test_{n:03d}", device, maps)
    return paths


def save_weights(path: Path, src: list[str], tgt: list[str], search: Tensor, maps: dict[str, list[Tensor]]) -> Path:
    """The raw attention of one example as ``.npz`` (numpy arrays; ``numpy.load`` reads it without
    pickle): ``source_tokens`` (S,) and ``output_tokens`` (T,) ending in ``</s>``, ``attention``
    (T, S) the weights the search used, and for a model with every layer's maps ``cross``
    (layers, heads, T, S), ``encoder`` (layers, heads, S, S), ``decoder`` (layers, heads, T, T)."""
    import numpy as np

    arrays = {kind: torch.stack([w[0] for w in layers]).float().cpu().numpy() for kind, layers in maps.items()}
    np.savez_compressed(path, source_tokens=np.array(src), output_tokens=np.array(tgt),
                        attention=search.float().cpu().numpy(), **arrays)
    return path


# The axes of each kind of map of Transformer.attention_maps: (rows, columns).
_MAP_AXES = {"cross": ("output", "source"), "encoder": ("source", "source"), "decoder": ("output", "output so far")}


def _every_layer(model: Seq2Seq, src_ids: list[int], out_ids: list[int], device: torch.device) -> dict[str, list[Tensor]]:
    """The model's ``attention_maps`` teacher-forced on its own translation (row t of a decoder
    map is the step that predicts output token t): kind -> one (1, H, R, C) tensor per layer."""
    src_t, src_len = pad_batch([src_ids], Seq2Seq.pad_id, eos=Seq2Seq.eos_id)  # (1, S), ending in eos
    tgt_in = torch.tensor([[Seq2Seq.bos_id, *out_ids]])  # (1, T): bos + the translation
    return model.attention_maps(src_t.to(device), src_len.to(device), tgt_in.to(device))


def _draw_every_layer(
    model: Seq2Seq, src_ids: list[int], out_ids: list[int], src: list[str], tgt: list[str], title: str,
    stem: Path, device: torch.device, maps: dict[str, list[Tensor]] | None = None,
) -> list[Path]:
    """``<stem>_cross.png``, ``_encoder.png``, ``_decoder.png``: every layer and head of the model's
    ``attention_maps`` (:func:`_every_layer`, unless already computed: ``maps``)."""
    maps = maps if maps is not None else _every_layer(model, src_ids, out_ids, device)
    tokens = {"source": src, "output": tgt, "output so far": [BOS_PIECE, *tgt[:-1]]}
    paths = []
    for kind, layers in maps.items():
        rows, cols = _MAP_AXES[kind]
        heads = [w[0] for w in layers]  # per layer: (1, H, R, C) -> (H, R, C)
        path = stem.with_name(f"{stem.name}_{kind}.png")
        paths.append(plot_attention_grid(heads, tokens[rows], tokens[cols], path, f"{kind} attention: {title}", rows, cols))
    return paths


# ----------------------------------------------------------------------------- training


class TranslationTrainable:
    """What the shared :class:`attnlab.train.Trainer` needs for translation."""

    metric, unit = "bleu", "tok"

    def __init__(
        self, model: Seq2Seq, toks: Tokenizers, train: EncodedPairs, valid: Split, cfg: DictConfig, device: torch.device
    ) -> None:
        self.model, self.toks, self.train, self.cfg, self.device = model, toks, train, cfg, device
        self.lengths = train.lengths()
        self.valid = valid.head(cfg.decode.valid_sentences)  # capped: validation runs each epoch
        self.valid_pairs = EncodedPairs.encode(self.valid.pairs(), toks)
        self.batches_per_epoch = 0

    def train_batches(self, epoch: int, generator: torch.Generator) -> list[list[int]]:
        batches = make_batches(self.lengths, self.cfg, generator, shuffle=True)
        self.batches_per_epoch = len(batches)
        return batches

    def _loss(self, pairs: EncodedPairs, batch: Sequence[int], smoothing: float) -> tuple[Tensor, int]:
        src, src_len, tgt_in, tgt_out = pairs.tensors(batch, self.device)
        logits = self.model(src, src_len, tgt_in)  # (B, T, V)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),  # (B*T, V), (B*T,)
            ignore_index=Seq2Seq.pad_id, label_smoothing=smoothing,
        )
        return loss, int((tgt_out != Seq2Seq.pad_id).sum())

    def loss(self, batch: Sequence[int]) -> tuple[Tensor, int]:
        """Cross entropy per target token (label smoothing as configured), padding ignored."""
        return self._loss(self.train, batch, self.cfg.trainer.label_smoothing)

    def validate(self) -> dict[str, float]:
        """Teacher-forced loss (no smoothing) and greedy BLEU/chrF on the (capped) valid split."""
        total, units = 0.0, 0
        for batch in make_batches(self.valid_pairs.lengths(), self.cfg, None, shuffle=False):
            loss, n = self._loss(self.valid_pairs, batch, 0.0)
            total, units = total + float(loss) * n, units + n
        greedy = DecodeConfig(**{**OmegaConf.to_container(self.cfg.decode), "beam_size": 1, "sampling": False})
        scores, _ = score_split(self.model, self.toks, self.valid, greedy, self.device)
        return {"loss": total / max(units, 1), "bleu": scores["bleu"], "chrf": scores["chrf"]}

    def attention_image(self) -> Tensor | None:
        """The attention (output steps, source tokens) of the greedy translation of the first
        valid sentence, for live views (``logger=tensorboard``); None without attention."""
        greedy = DecodeConfig(**{**OmegaConf.to_container(self.cfg.decode), "beam_size": 1, "sampling": False})
        hyp = translate_sentences(self.model, self.toks, self.valid.sources[:1], greedy, self.device, need_weights=True)
        return hyp[0].attention if hyp else None

    def checkpoint_extra(self) -> dict[str, Any]:
        return self.toks.to_extra()


def train(cfg: DictConfig, run_dir: Path, device: torch.device) -> dict[str, Any]:
    wall = time.perf_counter()
    data: ParallelData = load_corpus(cfg.data)
    log.info("%s %s->%s: %d train pairs, %d valid and %d test sentences", cfg.data.name, data.src_lang,
             data.tgt_lang, len(data.train.pairs()), len(data.valid), len(data.test))
    toks = Tokenizers.train(data.train, cfg, data.symbols)
    toks.save(run_dir)
    train_pairs = EncodedPairs.encode(data.train.pairs(), toks, cfg.data.max_train_tokens)
    log.info("tokenizer: %d subwords (%.1f s since start)", toks.tgt.vocab_size, time.perf_counter() - wall)
    model = build_model(cfg, src_vocab=toks.src.vocab_size, tgt_vocab=toks.tgt.vocab_size,
                        shared_vocab=toks.shared).to(device)
    trainable = TranslationTrainable(model, toks, train_pairs, data.valid, cfg, device)
    state = Trainer(cfg, run_dir, device).fit(trainable)
    best = load_best_weights(model, run_dir)
    log.info("scoring %s on %d test sentences", best, len(data.test))
    results = test_results(cfg, model, toks, data.test, device, run_dir, valid=data.valid)
    per_epoch = max(trainable.batches_per_epoch, 1)
    results.update(
        train_seconds=state.elapsed,
        epochs=state.epoch + state.batch_in_epoch / per_epoch,
        steps=state.step,
        best_valid_bleu=state.best,
        best_step=state.best_step,
        stop_reason=state.stop_reason,
        train_pairs=len(train_pairs),
        vocab_size=toks.tgt.vocab_size,
        wall_seconds=time.perf_counter() - wall,
        peak_rss_mb=peak_rss_mb(),
    )
    write_json(run_dir / "results.json", results)
    return results


def test_results(
    cfg: DictConfig, model: Seq2Seq, toks: Tokenizers, test: Split, device: torch.device, run_dir: Path,
    valid: Split | None = None,
) -> dict[str, Any]:
    """Score the test split (also BLEU by source length); write hypotheses.txt and the heatmaps.
    Returns the results fields. A split with gold alignments (the attention gym) also gets
    :func:`attnlab.tasks.gym.gym_results` (``valid``, if given, chooses the best head)."""
    scores, hyps = score_split(model, toks, test, cfg.decode, device)
    scores["bleu_by_length"] = bleu_by_length(test.sources, hyps, test.references)
    if test.alignments is not None:
        from attnlab.tasks.gym import gym_results

        scores.update(gym_results(model, toks, test, hyps, cfg.data.train_len, device, valid))
    (run_dir / "hypotheses.txt").write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    log.info("test: %s | %s", scores["bleu_detail"], scores["sacrebleu_signature"])
    log.info("test chrF %.2f | %s", scores["chrf"], scores["chrf_signature"])
    if "attention_health" in scores:
        h = scores["attention_health"]
        log.info("test attention: entropy %.2f nats, largest weight %.2f, %.0f%% of steps peak on </s>",
                 h["entropy"], h["max_weight"], 100 * h["eos_share"])
    if cfg.viz.enabled and cfg.viz.num_examples > 0:
        draw_attention(model, toks, test.sources[: cfg.viz.num_examples], cfg.decode, device, run_dir / "attention",
                       cfg.viz.layer_grids)
    decode = {k: cfg.decode[k] for k in ("beam_size", "length_penalty", "max_len_a", "max_len_b")}
    return {**base_results(cfg, model, device), **scores, "test_sentences": len(test), "decode": decode}


# ----------------------------------------------------------------------------- from a checkpoint

# What the command line may change when a checkpoint is evaluated or used; the rest (model,
# attention, data direction and filters, tokenizer) comes from the checkpoint.
DATA_FROM_COMMAND_LINE = ("test_split", "max_eval_sentences", "cache_dir", "path")


def load_for_inference(cfg: DictConfig, device: torch.device) -> tuple[DictConfig, Seq2Seq, Tokenizers]:
    """The run config, model and tokenizers of ``cfg.checkpoint`` (refuses other tasks/models)."""
    path = Path(cfg.checkpoint).expanduser()
    payload = load_checkpoint(path, map_location=device)
    check_compatible(payload, path, task=cfg.task.name, model=cfg.model.name)
    saved = OmegaConf.create(payload["config"])
    for key in ("mode", "decode", "viz", "checkpoint", "input", "output", "device"):
        saved[key] = cfg[key]
    saved.trainer.num_threads = cfg.trainer.num_threads
    for key in DATA_FROM_COMMAND_LINE:
        saved.data[key] = cfg.data[key]
    toks = Tokenizers.from_extra(payload.get("extra", {}), path)
    model = build_model(saved, src_vocab=toks.src.vocab_size, tgt_vocab=toks.tgt.vocab_size, shared_vocab=toks.shared)
    load_state(model, payload["model"], path)
    log.info("loaded %s (model=%s attention=%s, %s->%s)", path, saved.model.name, saved.attention.score,
             saved.data.src_lang, saved.data.tgt_lang)
    return saved, model.to(device).eval(), toks


def evaluate(cfg: DictConfig, run_dir: Path, device: torch.device) -> dict[str, Any]:
    saved, model, toks = load_for_inference(cfg, device)
    data = load_corpus(saved.data)
    results = test_results(saved, model, toks, data.test, device, run_dir, valid=data.valid)
    results.update(checkpoint=str(cfg.checkpoint), peak_rss_mb=peak_rss_mb())
    write_json(run_dir / "results.json", results)
    return results


def _read_input(source: str | None) -> list[str]:
    if source is None:  # stdin, split on "\n" only, as read_lines does for files
        lines = sys.stdin.read().split("\n")
        if lines[-1] == "":
            lines.pop()
        return [line.removesuffix("\r") for line in lines]
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"input={source} does not exist; pass a text file with one sentence per line")
    return read_lines(path)


def _logs_to_stderr() -> None:
    """Move console log handlers from stdout (Hydra's default) to stderr: stdout carries the
    translations alone, so that ``python -m attnlab mode=translate ... > out.txt`` works."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stdout:
            handler.setStream(sys.stderr)


def _one_line(text: str) -> str:
    """A translation as one output line: line breaks and tabs (byte pieces can decode to them) become spaces."""
    return " ".join(text.replace("\t", " ").splitlines())


def translate(cfg: DictConfig, run_dir: Path, device: torch.device) -> dict[str, Any]:
    """Translate lines (file or stdin) to lines (file or stdout); an empty line stays empty. With
    ``decode.n_best`` > 1 the output is TSV: line number, rank, log-probability, translation (n_best
    rows per non-empty input line)."""
    if not cfg.output:
        _logs_to_stderr()
    saved, model, toks = load_for_inference(cfg, device)
    lines = [normalize_space(line) for line in _read_input(cfg.input)]
    todo = [i for i, line in enumerate(lines) if line]
    if len(todo) < len(lines):
        log.info("%d empty input lines give empty output lines", len(lines) - len(todo))
    if cfg.decode.n_best > 1:  # TSV: input line number (from 1), rank, log-probability, translation
        n_best = translate_n_best(model, toks, [lines[i] for i in todo], cfg.decode, device)
        text = "".join(f"{i + 1}\t{rank}\t{hyp.log_prob:.4f}\t{_one_line(toks.tgt.decode(hyp.tokens))}\n"
                       for i, hyps in zip(todo, n_best) for rank, hyp in enumerate(hyps, 1))
    else:
        hyps = translate_sentences(model, toks, [lines[i] for i in todo], cfg.decode, device)
        out = [""] * len(lines)
        for i, hyp in zip(todo, hyps):
            out[i] = _one_line(toks.tgt.decode(hyp.tokens))
        text = "".join(line + "\n" for line in out)
    if cfg.output:
        target = Path(cfg.output).expanduser()
        if not target.parent.is_dir():
            raise UserError(f"output={cfg.output}: folder {target.parent} does not exist")
        target.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    results = {**base_results(saved, model, device), "checkpoint": str(cfg.checkpoint),
               "lines": len(lines), "empty_lines": len(lines) - len(todo)}
    write_json(run_dir / "results.json", results)
    return results


# ----------------------------------------------------------------------------- entry point


MODES = {"train": train, "evaluate": evaluate, "translate": translate}


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """``python -m attnlab task=translation mode=train|evaluate|translate``."""
    mode = str(cfg.mode)
    if mode not in MODES:
        raise UserError(f"mode={mode} is not a translation mode; valid: {', '.join(MODES)}")
    return MODES[mode](cfg, run_dir, prepare_run(cfg, run_dir))
