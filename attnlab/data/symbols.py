"""A symbol tokenizer: one id per whitespace-separated symbol, no subwords, no sentencepiece.

The synthetic tasks of the attention gym (:mod:`attnlab.data.synthetic`) write their sequences as
symbols separated by spaces (``"c a d"``); a gold alignment counts positions in symbols, so the
tokenizer must map each symbol to exactly one id. :class:`SymbolTokenizer` offers the interface
of :class:`attnlab.data.tokenizer.Tokenizer` that the translation task uses (``encode``,
``encode_batch``, ``decode``, ``id_to_piece``, ``vocab_size``, ``to_bytes``/``from_bytes``,
``save``/``load``) with the same special ids, ``pad=0, bos=1, eos=2, unk=3``; a symbol it has
not seen is encoded as ``unk``. Chosen with ``data.tokenizer_type=symbols`` (the gym's default).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from attnlab.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, content_ids
from attnlab.errors import UserError

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")  # at ids PAD_ID, BOS_ID, EOS_ID, UNK_ID
MAGIC = b"attnlab-symbols\n"  # what to_bytes writes first, so a checkpoint's tokenizer is recognised


class SymbolTokenizer:
    """Whitespace-separated symbols <-> ids; see the module docstring."""

    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID

    def __init__(self, symbols: Sequence[str]) -> None:
        symbols = list(symbols)
        bad = [s for s in symbols if not s or s.split() != [s] or s in SPECIALS]
        if bad or len(set(symbols)) != len(symbols):
            raise UserError(f"symbols must be distinct, non-empty, without spaces and not a special; got {bad or symbols}")
        self._pieces = list(SPECIALS) + symbols
        self._ids = {p: i for i, p in enumerate(self._pieces)}

    @classmethod
    def fit(cls, sentences: Iterable[str], symbols: Iterable[str] = ()) -> SymbolTokenizer:
        """The symbols of ``symbols`` (in that order), then those of ``sentences`` not yet in it
        (sorted, so the same text gives the same ids)."""
        known = list(dict.fromkeys(symbols))
        seen = {s for line in sentences for s in line.split()} - set(known) - set(SPECIALS)
        return cls(known + sorted(seen))

    # -------------------------------------------------------------- serialization
    def to_bytes(self) -> bytes:
        return MAGIC + json.dumps(self._pieces[len(SPECIALS):]).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> SymbolTokenizer:
        if not data.startswith(MAGIC):
            raise UserError("not a symbol tokenizer (wrong header); retrain the model")
        try:
            symbols = json.loads(data[len(MAGIC):].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"corrupt symbol tokenizer ({e}); retrain the model") from None
        return cls(symbols)

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> SymbolTokenizer:
        try:
            return cls.from_bytes(Path(path).read_bytes())
        except OSError as e:
            raise UserError(f"cannot read tokenizer {path}: {e.strerror}") from None

    # -------------------------------------------------------------- encode / decode
    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    def id_to_piece(self, i: int) -> str:
        return self._pieces[i]

    def pieces(self) -> list[str]:
        return list(self._pieces)

    def encode(self, text: str) -> list[int]:
        """One id per whitespace-separated symbol, without bos/eos."""
        return [self._ids.get(s, UNK_ID) for s in text.split()]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        """Symbols joined by spaces: stops at the first eos, ignores pad and bos."""
        return " ".join(self._pieces[i] for i in content_ids(ids))

    def __repr__(self) -> str:
        return f"SymbolTokenizer(vocab_size={self.vocab_size})"


def tokenizer_from_bytes(data: bytes):  # -> Tokenizer | SymbolTokenizer
    """Rebuild whichever tokenizer wrote ``data`` (a checkpoint carries its tokenizer's bytes)."""
    if data.startswith(MAGIC):
        return SymbolTokenizer.from_bytes(data)
    from attnlab.data.tokenizer import Tokenizer

    return Tokenizer.from_bytes(data)
