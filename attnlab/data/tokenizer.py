"""Subword tokenizer: a thin wrapper around a SentencePiece model (Kudo & Richardson, 2018).

The special ids are fixed for every model trained here, so models and batching code can rely on
them: ``pad=0, bos=1, eos=2, unk=3``. Models use byte fallback (a character never seen in
training is encoded as its UTF-8 bytes, so any text round-trips) and the ``identity``
normalisation (no NFKC rewriting, so ``decode(encode(s)) == s`` for any text with single spaces
and no leading or trailing space; the corpus loaders normalise whitespace that way).

The whole model is a serialized protobuf (:meth:`Tokenizer.to_bytes`), small enough to be stored
inside every checkpoint.
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from attnlab.errors import UserError

log = logging.getLogger(__name__)

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
_SPECIALS = {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID, "unk": UNK_ID}
_BYTE_PIECES = 256  # byte fallback adds one piece per byte value


class Tokenizer:
    """Encode text to subword ids and back; see the module docstring for the conventions."""

    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID

    def __init__(self, processor: spm.SentencePieceProcessor) -> None:
        actual = {
            "pad": processor.pad_id(),
            "bos": processor.bos_id(),
            "eos": processor.eos_id(),
            "unk": processor.unk_id(),
        }
        if actual != _SPECIALS:
            raise UserError(
                f"sentencepiece model has special ids {actual}, expected {_SPECIALS}; "
                "train it with attnlab.data.tokenizer.train_tokenizer"
            )
        self.sp = processor

    # -------------------------------------------------------------- serialization
    @classmethod
    def from_bytes(cls, data: bytes) -> Tokenizer:
        """Rebuild a tokenizer from :meth:`to_bytes` output (the serialized model proto)."""
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(data)
        except (RuntimeError, OSError, TypeError) as e:
            raise UserError(
                f"not a valid sentencepiece model ({e}); retrain the tokenizer"
            ) from None
        return cls(processor)

    def to_bytes(self) -> bytes:
        """The serialized model proto (store it in checkpoints)."""
        return self.sp.serialized_model_proto()

    def save(self, path: str | Path) -> None:
        """Write the model to ``path`` (a standard ``.model`` file, usable by ``spm_encode``)."""
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a model written by :meth:`save`."""
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise UserError(f"cannot read tokenizer model {path}: {e.strerror}") from None
        return cls.from_bytes(data)

    # -------------------------------------------------------------- encode / decode
    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(i)

    def pieces(self) -> list[str]:
        """All pieces in id order."""
        return [self.sp.id_to_piece(i) for i in range(self.vocab_size)]

    def encode(self, text: str) -> list[int]:
        """Subword ids of ``text``, without bos/eos."""
        return self.sp.encode(text, out_type=int)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` for many texts at once (faster than a Python loop)."""
        return self.sp.encode(list(texts), out_type=int)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: stops at the first eos, ignores pad and bos (accepts tensors too)."""
        return self.sp.decode(content_ids(ids))

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size})"


def content_ids(ids: Iterable[int]) -> list[int]:
    """The ids a decoder turns into text: up to the first eos, without pad and bos (tensors too)."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    kept: list[int] = []
    for i in ids:
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            kept.append(int(i))
    return kept


def train_tokenizer(
    sentences: Sequence[str],
    vocab_size: int,
    model_type: str = "unigram",
    seed: int = 0,
    num_threads: int = 4,
    max_sentences: int = 2_000_000,
) -> Tokenizer:
    """Train a SentencePiece model in memory and return it as a :class:`Tokenizer`.

    Deterministic for the same sentences, ``seed`` and ``num_threads`` (the thread count changes
    how the statistics are summed, hence the fixed default rather than the machine's core count).
    Corpora larger than ``max_sentences`` are subsampled here, by ``random.Random(seed)``:
    SentencePiece's own sampling (``input_sentence_size``) draws a different sample in every
    process whatever the seed, so the same run twice would get two vocabularies. The vocabulary size is
    a soft limit: a corpus too small for ``vocab_size`` gets a smaller vocabulary, and a request
    below the minimum (4 specials + 256 bytes + the characters) is raised to that minimum.
    """
    if model_type not in ("unigram", "bpe", "char", "word"):
        raise UserError(
            f"unknown tokenizer type '{model_type}'; valid choices: unigram, bpe, char, word"
        )
    sentences = [s for s in sentences if s.strip()]
    if not sentences:
        raise UserError("cannot train a tokenizer: the training sentences are all empty")
    if len(sentences) > max_sentences:
        sentences = random.Random(seed).sample(sentences, max_sentences)
    options = dict(
        model_type=model_type,
        pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID,
        byte_fallback=True,
        character_coverage=0.9995,  # rare characters (any script) fall back to bytes
        normalization_rule_name="identity",
        hard_vocab_limit=False,
        num_threads=num_threads,
        minloglevel=2,
    )
    try:
        proto = _train(sentences, vocab_size, seed, options)
    except RuntimeError as e:
        if "required_chars" not in str(e):
            raise
        minimum = len(_SPECIALS) + _BYTE_PIECES + len(set("".join(sentences)) | {"\u2581"})
        log.warning("vocab_size %d is below this corpus's minimum; using %d", vocab_size, minimum)
        proto = _train(sentences, max(vocab_size, minimum), seed, options)
    return Tokenizer.from_bytes(proto)


def _train(sentences: Sequence[str], vocab_size: int, seed: int, options: dict) -> bytes:
    """One SentencePiece training run; returns the serialized model."""
    spm.set_random_generator_seed(seed)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size, **options
    )
    return model.getvalue()
