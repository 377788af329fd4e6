"""Tests for attnlab.data.text: the shipped Tatoeba corpus, Multi30k from a cache, user files."""

from __future__ import annotations

import gzip
import shutil
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from attnlab.config import TextDataConfig
from attnlab.data.text import TATOEBA_DIR, Split, load_corpus, normalize_space
from attnlab.errors import UserError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# the numbers documented in attnlab/data/tatoeba_deen/README.md
TATOEBA_PAIRS = {"train": 150162, "valid": 1094, "test": 2269}
TATOEBA_GERMAN = {"train": 140317, "valid": 1000, "test": 2000}
TATOEBA_ENGLISH = {"train": 119700, "valid": 708, "test": 1341}


def _one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


@pytest.fixture
def no_network(monkeypatch):
    def forbidden(*args, **kwargs):
        pytest.fail(f"unexpected network access: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)


# ----------------------------------------------------------------------------- shipped corpus


@pytest.fixture(scope="module")
def deen():
    return load_corpus(TextDataConfig())


@pytest.fixture(scope="module")
def ende():
    return load_corpus(TextDataConfig(src_lang="en", tgt_lang="de"))


def _sentences(split: Split) -> tuple[set[str], set[str]]:
    return set(split.sources), {r for refs in split.references for r in refs}


def test_tatoeba_sizes_as_documented(deen, ende):
    assert (deen.src_lang, deen.tgt_lang) == ("de", "en")
    for name in ("train", "valid", "test"):
        split_de, split_en = getattr(deen, name), getattr(ende, name)
        assert len(split_de.pairs()) == len(split_en.pairs()) == TATOEBA_PAIRS[name]
        assert len(split_de) == TATOEBA_GERMAN[name]
        assert len(split_en) == TATOEBA_ENGLISH[name]
    assert sum(p.stat().st_size for p in TATOEBA_DIR.glob("*.gz")) < 5_000_000
    assert "tatoeba.org" in (TATOEBA_DIR / "ATTRIBUTION.md").read_text()
    assert str(TATOEBA_PAIRS["train"]) in (TATOEBA_DIR / "README.md").read_text()


def test_tatoeba_no_leakage_either_side(deen):
    train_de, train_en = _sentences(deen.train)
    valid_de, valid_en = _sentences(deen.valid)
    test_de, test_en = _sentences(deen.test)
    for held_de, held_en in ((valid_de, valid_en), (test_de, test_en)):
        assert not held_de & train_de and not held_en & train_en
    assert not valid_de & test_de and not valid_en & test_en


def test_tatoeba_filtered_and_normalised(deen):
    for src, tgt in deen.test.pairs() + deen.train.pairs()[:5000]:
        assert 0 < len(src.split()) <= 10 and 0 < len(tgt.split()) <= 10
        assert normalize_space(src) == src and normalize_space(tgt) == tgt
    assert len(set(deen.train.pairs())) == len(deen.train.pairs())  # no duplicate pairs


def test_tatoeba_multiple_references_grouped(deen):
    multi = [(s, r) for s, r in zip(deen.test.sources, deen.test.references) if len(r) > 1]
    assert multi, "Tatoeba has German sentences with several English translations"
    src, refs = multi[0]
    assert sorted(refs) == sorted(t for s, t in deen.test.pairs() if s == src)
    streams = deen.test.reference_streams()
    assert len(streams) == max(len(r) for r in deen.test.references)
    assert all(len(stream) == len(deen.test) for stream in streams)
    assert streams[0] == [r[0] for r in deen.test.references] and None in streams[-1]


def test_flipping_direction(deen, ende):
    assert (ende.src_lang, ende.tgt_lang) == ("en", "de")
    assert {(t, s) for s, t in ende.test.pairs()} == set(deen.test.pairs())
    assert len(ende.test) == TATOEBA_ENGLISH["test"]


def test_limits():
    data = load_corpus(TextDataConfig(max_train_pairs=100, max_eval_sentences=30))
    assert len(data.train.pairs()) == 100
    assert len(data.valid) == len(data.test) == 30
    assert len(data.test.pairs()) >= 30


def test_tatoeba_bad_choices():
    with pytest.raises(UserError) as e:
        load_corpus(TextDataConfig(src_lang="fr"))
    assert "data.src_lang=fr" in _one_line_error(e) and "de, en" in str(e.value)
    with pytest.raises(UserError, match="valid: test, valid, test_short, test_long, valid_short, valid_long"):
        load_corpus(TextDataConfig(test_split="test_2016_flickr"))
    with pytest.raises(UserError, match="valid choices: files, multi30k, synthetic, tatoeba_deen, tatoeba_deen_long"):
        load_corpus(TextDataConfig(name="wmt14"))
    with pytest.raises(UserError, match="both 'de'"):
        load_corpus(TextDataConfig(src_lang="de", tgt_lang="de"))


# ----------------------------------------------------------------------------- multi30k


@pytest.fixture
def multi30k_cache(no_network) -> str:
    """A cache root whose multi30k/ folder is pre-filled (../shared/data/multi30k)."""
    if not (SHARED_DATA / "multi30k" / "train.de.gz").exists():
        pytest.skip("../shared/data/multi30k is not available")
    return str(SHARED_DATA)


def test_multi30k_from_cache(multi30k_cache):
    data = load_corpus(TextDataConfig(name="multi30k", cache_dir=multi30k_cache))
    assert [len(s.pairs()) for s in (data.train, data.valid, data.test)] == [29000, 1014, 1000]
    assert sum(data.skipped.values()) == 0
    assert data.train.sources[0].startswith("Zwei junge")
    assert data.train.references[0][0].startswith("Two young")


def test_multi30k_other_splits_and_languages(multi30k_cache):
    cfg = TextDataConfig(
        name="multi30k", src_lang="en", tgt_lang="fr", cache_dir=multi30k_cache,
        test_split="test_2018_flickr", max_train_pairs=10,
    )
    data = load_corpus(cfg)
    assert len(data.test.pairs()) == 1071 and len(data.train.pairs()) == 10
    assert data.train.sources[0].startswith("Two young")
    with pytest.raises(UserError) as e:
        cfg = TextDataConfig(name="multi30k", src_lang="cs", cache_dir=multi30k_cache)
        load_corpus(replace(cfg, test_split="test_2017_flickr"))
    assert "test_2017_flickr" in _one_line_error(e) and "de, en, fr" in str(e.value)
    with pytest.raises(UserError, match="valid choices: test .*test_2017_mscoco"):
        load_corpus(
            TextDataConfig(name="multi30k", cache_dir=multi30k_cache, test_split="test2016")
        )


def test_multi30k_offline_error_names_url_and_path(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UserError) as e:
        load_corpus(TextDataConfig(name="multi30k", cache_dir=str(tmp_path)))
    msg = _one_line_error(e)
    assert "raw.githubusercontent.com/multi30k/dataset/" in msg and "train.de.gz" in msg
    assert str(tmp_path / "multi30k" / "train.de.gz") in msg


# ----------------------------------------------------------------------------- files

SMALL = {
    "train": ("Hallo Welt .\nGuten Morgen\n", "Hello world .\nGood morning\n"),
    "valid": ("Danke\n", "Thanks\n"),
    "test": ("Bitte\n", "Please\n"),
}


def _write_corpus(
    folder: Path, files: dict[str, tuple[str, str]] = SMALL, gz: bool = False
) -> Path:
    """Write ``{split: (German text, English text)}`` as split.de / split.en files."""
    folder.mkdir(exist_ok=True)
    for split, (de, en) in files.items():
        for lang, text in (("de", de), ("en", en)):
            data = text.encode("utf-8")
            if gz:
                (folder / f"{split}.{lang}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / f"{split}.{lang}").write_bytes(data)
    return folder


def _files(folder: Path, **kw) -> TextDataConfig:
    return TextDataConfig(name="files", path=str(folder), **kw)


@pytest.mark.parametrize("gz", [False, True])
def test_files_plain_and_gz(tmp_path, gz):
    data = load_corpus(_files(_write_corpus(tmp_path / "c", gz=gz)))
    expected = [("Hallo Welt .", "Hello world ."), ("Guten Morgen", "Good morning")]
    assert data.train.pairs() == expected
    assert data.test.references == [["Please"]]
    flipped = load_corpus(_files(tmp_path / "c", src_lang="en", tgt_lang="de"))
    assert flipped.valid.pairs() == [("Thanks", "Danke")]


def test_files_any_script_no_length_filter_and_robust_lines(tmp_path):
    long_ja = "これは とても 長い 文 です " * 20
    german = "Привет\r\nline with\u2028separator\n" + long_ja + "\n"
    corpus = dict(SMALL, train=(german, "a\r\nb\nc\n"))
    data = load_corpus(_files(_write_corpus(tmp_path / "c", corpus)))
    assert data.train.sources == ["Привет", "line with separator", normalize_space(long_ja)]
    assert len(data.train.sources[2].split()) == 100


def test_files_empty_lines_are_skipped_and_counted(tmp_path):
    corpus = dict(SMALL, train=("eins\n\nzwei\ndrei\n", "one\ntwo\n\u00a0\nthree\n"))
    data = load_corpus(_files(_write_corpus(tmp_path / "c", corpus)))
    assert data.train.pairs() == [("eins", "one"), ("drei", "three")]
    assert data.skipped == {"train_empty": 2, "valid_empty": 0, "test_empty": 0}


def test_files_split_empty_after_skipping(tmp_path):
    _write_corpus(tmp_path / "c", dict(SMALL, valid=("\n \n", "x\ny\n")))
    with pytest.raises(UserError) as e:
        load_corpus(_files(tmp_path / "c"))
    assert "valid split" in _one_line_error(e) and "valid.de" in str(e.value)


def test_files_missing_folder_and_files(tmp_path):
    with pytest.raises(UserError, match="needs data.path"):
        load_corpus(TextDataConfig(name="files"))
    with pytest.raises(UserError, match="is not a folder"):
        load_corpus(_files(tmp_path / "nowhere"))
    folder = _write_corpus(tmp_path / "c")
    (folder / "test.en").unlink()
    with pytest.raises(UserError) as e:
        load_corpus(_files(folder))
    msg = _one_line_error(e)
    assert "no test.en" in msg and "train.de, train.en, valid.de, valid.en, test.de, test.en" in msg
    shutil.copy(folder / "test.de", folder / "test.en")
    (folder / "test.en.gz").write_bytes(gzip.compress(b"x\n"))
    with pytest.raises(UserError, match="both test.en and test.en.gz"):
        load_corpus(_files(folder))


def test_files_custom_test_split(tmp_path):
    folder = _write_corpus(tmp_path / "c", dict(SMALL, news=("Neu\n", "New\n")))
    assert load_corpus(_files(folder, test_split="news")).test.pairs() == [("Neu", "New")]


def test_files_mismatched_line_counts(tmp_path):
    _write_corpus(tmp_path / "c", dict(SMALL, train=("a\nb\nc\n", "x\ny\n")))
    with pytest.raises(UserError) as e:
        load_corpus(_files(tmp_path / "c"))
    msg = _one_line_error(e)
    assert "train.de has 3 lines" in msg and "train.en has 2" in msg


def test_files_empty_file(tmp_path):
    _write_corpus(tmp_path / "c", dict(SMALL, test=("", "")))
    with pytest.raises(UserError) as e:
        load_corpus(_files(tmp_path / "c"))
    assert "test.de is empty" in _one_line_error(e)


def test_files_not_utf8(tmp_path):
    folder = _write_corpus(tmp_path / "c")
    (folder / "train.en").write_bytes("Hello\nGr\u00fc\u00dfe\n".encode("latin-1"))
    with pytest.raises(UserError) as e:
        load_corpus(_files(folder))
    msg = _one_line_error(e)
    assert "train.en line 2 is not valid UTF-8" in msg and "0xfc" in msg


def test_files_corrupt_gzip(tmp_path):
    folder = _write_corpus(tmp_path / "c")
    (folder / "valid.en").unlink()
    (folder / "valid.en.gz").write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match="valid.en.gz"):
        load_corpus(_files(folder))


def test_user_test_files_are_scored_line_by_line_even_with_repeated_sources(tmp_path):
    """Grouping translations by source is for Tatoeba; a user's parallel test file keeps its lines."""
    from attnlab.config import TextDataConfig
    from attnlab.data.text import load_corpus

    for split, de, en in [("train", ["a b", "c d"], ["x y", "z w"]), ("valid", ["a"], ["x"]),
                          ("test", ["gut", "gut", "neu"], ["good", "fine", "new"])]:
        (tmp_path / f"{split}.de").write_text("\n".join(de) + "\n", encoding="utf-8")
        (tmp_path / f"{split}.en").write_text("\n".join(en) + "\n", encoding="utf-8")
    data = load_corpus(TextDataConfig(name="files", path=str(tmp_path)))
    assert data.test.sources == ["gut", "gut", "neu"]
    assert data.test.references == [["good"], ["fine"], ["new"]]
