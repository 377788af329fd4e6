"""Translation pairs for training: the source/target tokenizer pair, encoded pairs and their batches."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import DictConfig
from torch import Tensor

from attnlab import progress
from attnlab.data.batching import fixed_batches, pad_batch, token_batches
from attnlab.data.symbols import SymbolTokenizer, tokenizer_from_bytes
from attnlab.data.text import Split
from attnlab.data.tokenizer import Tokenizer, train_tokenizer
from attnlab.errors import UserError
from attnlab.models.seq2seq import Seq2Seq

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
