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
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from attnlab.attention.health import best_head
from attnlab.checkpoint import check_compatible, load_checkpoint, load_state
from attnlab.config import DecodeConfig
from attnlab.data.pairs import EncodedPairs, Tokenizers, make_batches
from attnlab.data.text import ParallelData, Split, load_corpus, normalize_space, read_lines
from attnlab.decode.translate import score_split, translate_n_best, translate_sentences
from attnlab.errors import UserError
from attnlab.metrics import bleu_by_length
from attnlab.models import build_model
from attnlab.models.seq2seq import Seq2Seq
from attnlab.runlog import base_results, peak_rss_mb, prepare_run, write_json
from attnlab.train import Trainer, load_best_weights
from attnlab.viz.translation_attention import draw_attention

log = logging.getLogger("attnlab.translation")


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
        scores, _ = score_split(self.model, self.toks, self.valid, self._greedy(), self.device)
        return {"loss": total / max(units, 1), "bleu": scores["bleu"], "chrf": scores["chrf"]}

    def attention_image(self) -> Tensor | None:
        """The attention (output steps, source tokens) of the greedy translation of the first
        valid sentence, for live views (``logger=tensorboard``); None without attention."""
        hyp = translate_sentences(self.model, self.toks, self.valid.sources[:1], self._greedy(), self.device,
                                  need_weights=True)
        return hyp[0].attention if hyp else None

    def _greedy(self) -> DecodeConfig:
        """The run's decoding settings with greedy search: what validation decodes with."""
        return DecodeConfig(**{**OmegaConf.to_container(self.cfg.decode), "beam_size": 1, "sampling": False})

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
    scores, hyps = score_split(model, toks, test, cfg.decode, device, health=True)
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
        if h.get("layers"):
            layer, head = best_head({k: {n: v["eos_share"] for n, v in heads.items()} for k, heads in h["layers"].items()}).split(".")
            log.info("test attention: the head most on </s> is %s.%s, %.0f%% of its steps peak there", layer, head,
                     100 * h["layers"][layer][head]["eos_share"])
    if cfg.viz.enabled and cfg.viz.num_examples > 0:
        draw_attention(model, toks, test.sources[: cfg.viz.num_examples], cfg.decode, device, run_dir / "attention",
                       cfg.viz.layer_grids)
    decode = {k: cfg.decode[k] for k in ("beam_size", "length_penalty", "max_len_a", "max_len_b")}
    return {**base_results(cfg, model, device), **scores, "test_sentences": len(test), "decode": decode}


# ----------------------------------------------------------------------------- from a checkpoint

# What the command line may change when a checkpoint is evaluated or used; the rest (model,
# attention, data direction and filters, tokenizer) comes from the checkpoint.
DATA_FROM_COMMAND_LINE = ("test_split", "max_eval_sentences", "cache_dir", "path")


def load_for_inference(
    cfg: DictConfig, device: torch.device, payload: dict[str, Any] | None = None
) -> tuple[DictConfig, Seq2Seq, Tokenizers]:
    """The run config, model and tokenizers of ``cfg.checkpoint`` (refuses other tasks/models).
    ``payload``: the checkpoint as :func:`~attnlab.checkpoint.load_checkpoint` read it, when the
    caller has read it already (the file is then not read again)."""
    path = Path(cfg.checkpoint).expanduser()
    if payload is None:
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
    # what was evaluated: the trained run's config with this command's decoding and test split;
    # the report groups evaluations by it (seeds of one recipe, one decoding setting)
    results["evaluated_config"] = OmegaConf.to_container(saved, resolve=True)
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
