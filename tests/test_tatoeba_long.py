"""The shipped longer Tatoeba pairs: no sentence crosses splits, lengths as documented, and the
readers that use them (data.test_split=test_long / valid_long, data=tatoeba_deen_long)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from attnlab.config import TextDataConfig
from attnlab.data.text import TATOEBA_DIR, load_corpus, read_lines

FILES = ("train", "valid", "test", "long_train", "long_valid", "long_test")


@pytest.fixture(scope="module")
def files() -> dict[str, list[tuple[str, str]]]:
    """(en, de) pairs of every shipped file."""
    return {name: [tuple(line.split("\t")) for line in read_lines(TATOEBA_DIR / f"{name}.tsv.gz")] for name in FILES}


def words(text: str) -> int:
    return len(text.split())


def test_no_sentence_of_a_valid_or_test_file_is_in_a_train_file(files):
    train = files["train"] + files["long_train"]
    train_en, train_de = {en for en, _ in train}, {de for _, de in train}
    for name in ("valid", "test", "long_valid", "long_test"):
        assert not {en for en, _ in files[name]} & train_en, name
        assert not {de for _, de in files[name]} & train_de, name
    held_out = {name: {de for _, de in files[name]} | {de for _, de in files[f"long_{name}"]} for name in ("valid", "test")}
    assert not held_out["valid"] & held_out["test"]


def test_lengths_and_sizes_as_documented(files):
    for name in ("long_train", "long_valid", "long_test"):
        longest = [max(words(en), words(de)) for en, de in files[name]]
        assert min(longest) == 11 and max(longest) == 16, name
    assert all(max(words(en), words(de)) <= 10 for en, de in files["test"])
    readme = (TATOEBA_DIR / "README.md").read_text()
    for name in ("long_train", "long_valid", "long_test"):
        german = len({de for _, de in files[name]})
        assert f"| {name} | {len(files[name])} | {german} |" in readme
    assert len({de for _, de in files["long_test"]}) >= 1000 and len({de for _, de in files["long_valid"]}) >= 500


def test_long_test_and_valid_splits_and_the_long_corpus():
    short = load_corpus(TextDataConfig(max_train_pairs=10))
    long_test = load_corpus(TextDataConfig(max_train_pairs=10, test_split="test_long"))
    assert long_test.valid.sources == short.valid.sources  # only the test split changes
    mean = lambda split: sum(len(s.split()) for s in split.sources) / len(split)  # noqa: E731
    assert mean(long_test.test) > mean(short.test) + 4 and max(len(s.split()) for s in long_test.test.sources) == 16
    assert len(long_test.test) >= 1000
    long_valid = load_corpus(TextDataConfig(max_train_pairs=10, test_split="valid_long"))
    assert not set(long_valid.test.sources) & set(long_test.test.sources)

    both = load_corpus(TextDataConfig(name="tatoeba_deen_long"))
    full = load_corpus(TextDataConfig())
    assert len(both.train.pairs()) > len(full.train.pairs())
    assert set(full.test.sources) < set(both.test.sources) and set(long_test.test.sources) < set(both.test.sources)
    first = both.valid.sources[:500]  # what validation decodes: both lengths
    # one file by name, whichever dataset: checkpoints of both are scored on the same sentences
    for name in ("tatoeba_deen", "tatoeba_deen_long"):
        cfg = lambda split: TextDataConfig(name=name, max_train_pairs=10, test_split=split)  # noqa: E731
        assert load_corpus(cfg("test_short")).test.sources == full.test.sources
        assert load_corpus(cfg("test_long")).test.sources == long_test.test.sources
        assert load_corpus(cfg("valid_long")).test.sources == long_valid.test.sources
        assert load_corpus(cfg("valid_short")).test.sources == full.valid.sources
    assert load_corpus(TextDataConfig(test_split="valid")).test.sources == full.valid.sources
    assert sorted(load_corpus(TextDataConfig(name="tatoeba_deen_long", test_split="valid")).test.sources) == sorted(
        both.valid.sources)
    assert any(len(s.split()) > 10 for s in first) and any(len(s.split()) <= 10 for s in first)


def test_the_builder_keeps_the_short_files_and_never_moves_a_sentence_across_splits(tmp_path: Path):
    """scripts/make_tatoeba_subset.py on a small synthetic corpus with long pairs that join
    components of short pairs (one joins test and train components: it is dropped)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make", Path(__file__).parents[1] / "scripts" / "make_tatoeba_subset.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    rng = random.Random(1)
    short = [(f"e{i}", f"d{i}") for i in range(200)] + [(f"e{i}", f"x{i}") for i in range(0, 200, 7)]
    splits = make.split_by_component(short, 20, 10, seed=0)
    where = {de: name for name, pairs in splits.items() for _, de in pairs}
    test_de = next(de for de, n in where.items() if n == "test")
    train_de = next(de for de, n in where.items() if n == "train")
    long_word = " ".join(["w"] * 12)
    longer = [(f"{long_word} {i}", f"l{i}") for i in range(60)]  # long-only components
    longer += [(f"{long_word} t", test_de), (f"{long_word} t", train_de)]  # bridges test and train
    longer += [(f"{long_word} v", next(de for de, n in where.items() if n == "valid"))]
    rng.shuffle(longer)
    out, dropped = make.split_long_pairs(splits, longer, 5, 5, seed=0)
    assert dropped == 2
    assert sum(len(v) for v in out.values()) == len(longer) - 2
    assert len({de for _, de in out["test"]}) >= 5 and len({de for _, de in out["valid"]}) >= 5
    for name in ("valid", "test"):
        held = {s for pair in splits[name] + out[name] for s in pair}
        trained = {s for pair in splits["train"] + out["train"] for s in pair}
        assert not held & trained
    assert any(de == where_de for _, de in out["valid"] for where_de in [d for d, n in where.items() if n == "valid"])
