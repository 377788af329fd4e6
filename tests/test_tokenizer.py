"""Tests for attnlab.data.tokenizer: round trips, serialization, determinism, tiny corpora."""

from __future__ import annotations

import pytest
import torch

from attnlab.data.tokenizer import Tokenizer, train_tokenizer
from attnlab.errors import UserError

CORPUS = [
    "Ich habe Hunger.",
    "I am hungry.",
    "Wo ist der Bahnhof?",
    "Where is the station?",
    "Tom hat's nicht gewusst – wirklich!",
    "Tom didn't know, really!",
    "Die Straße ist 3,5 km lang.",
    "The road is 3.5 km long.",
    "„Öffne die Tür“, sagte Maria.",
    '"Open the door," said Mary.',
] * 20


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return train_tokenizer(CORPUS, vocab_size=300, num_threads=1)


def test_special_ids_are_fixed(tok):
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    assert [tok.id_to_piece(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]


@pytest.mark.parametrize(
    "text",
    [
        "Wo ist der Bahnhof?",
        "Tom hat's nicht gewusst – wirklich!",
        "„Öffne die Tür“, sagte Maria.",
        "QUIZ: Wer fährt 120 km/h?",  # unseen capitals and digits
        "Привет, как дела?",  # Cyrillic, never seen in training
        "नमस्ते दुनिया।",  # Devanagari, with combining marks
        "emoji 🤖 and ümlaut-ß",
    ],
)
def test_round_trip(tok, text):
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.unk_id not in ids  # byte fallback: nothing is unknown
    assert tok.decode(ids) == text


def test_decode_stops_at_eos_and_skips_pad_bos(tok):
    ids = tok.encode("Ich habe Hunger.")
    framed = [tok.bos_id, *ids, tok.eos_id, *tok.encode("junk"), tok.pad_id]
    assert tok.decode(framed) == "Ich habe Hunger."
    padded = torch.tensor([tok.bos_id, *ids, tok.pad_id, tok.pad_id])
    assert tok.decode(padded) == "Ich habe Hunger."
    assert tok.encode_batch(["I am hungry.", ""]) == [tok.encode("I am hungry."), []]


def test_bytes_round_trip(tok, tmp_path):
    clone = Tokenizer.from_bytes(tok.to_bytes())
    assert clone.to_bytes() == tok.to_bytes() and clone.pieces() == tok.pieces()
    tok.save(tmp_path / "spm.model")
    assert Tokenizer.load(tmp_path / "spm.model").pieces() == tok.pieces()
    with pytest.raises(UserError, match="not a valid sentencepiece model"):
        Tokenizer.from_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read"):
        Tokenizer.load(tmp_path / "missing.model")


def test_training_is_deterministic():
    corpus = [f"{s} {i}" for i, s in enumerate(CORPUS)]
    a = train_tokenizer(corpus, vocab_size=320, seed=3, num_threads=2)
    b = train_tokenizer(corpus, vocab_size=320, seed=3, num_threads=2)
    assert a.to_bytes() == b.to_bytes()


SUBSAMPLED = """
import random, sys
from attnlab.data.tokenizer import train_tokenizer
rng = random.Random(0)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(1500)]
corpus = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(3000)]
sys.stdout.write(train_tokenizer(corpus, vocab_size=500, seed=int(sys.argv[1]), max_sentences=600).to_bytes().hex())
"""


def test_a_subsampled_corpus_gives_one_tokenizer_per_seed_in_any_process():
    """A corpus above ``max_sentences`` is sampled by the seed: two fresh interpreters agree (the
    translation recipes sample 100k of Tatoeba's 260k sentences; SentencePiece's own sampling
    differed from process to process)."""
    import subprocess
    import sys

    def trained(seed: int) -> str:
        return subprocess.run([sys.executable, "-c", SUBSAMPLED, str(seed)], capture_output=True, text=True,
                              check=True).stdout

    first = trained(0)
    assert first and trained(0) == first
    assert trained(1) != first  # another seed, another sample


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_tiny_corpus_and_tiny_vocab_do_not_crash(model_type):
    tok = train_tokenizer(["Hallo Welt.", "Guten Morgen!"], vocab_size=8000, model_type=model_type)
    assert 260 < tok.vocab_size < 8000 and tok.decode(tok.encode("Hallo Welt.")) == "Hallo Welt."
    tok = train_tokenizer(["Hallo Welt.", "Guten Morgen!"], vocab_size=10, model_type=model_type)
    assert tok.decode(tok.encode("Guten Morgen!")) == "Guten Morgen!"


def test_bad_requests():
    with pytest.raises(UserError, match="sentences are all empty"):
        train_tokenizer(["", "  "], vocab_size=100)
    with pytest.raises(UserError, match="valid choices"):
        train_tokenizer(CORPUS, vocab_size=300, model_type="wordpiece")
