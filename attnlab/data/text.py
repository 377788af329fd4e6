"""Parallel text corpora for translation: the shipped Tatoeba subset, Multi30k, and user files.

Every corpus is loaded into the same shape, :class:`ParallelData`, with three :class:`Split`\\ s.
A split lists each **unique** source sentence once together with all its reference translations,
so evaluation can use multi-reference BLEU (Tatoeba often has several translations of one
sentence); :meth:`Split.pairs` expands it back to one (source, target) pair per reference for
training. Corpora are registered by name in :data:`DATASETS` and chosen with ``data.name``:

- ``tatoeba_deen``: German-English pairs of at most 10 words a side shipped in
  ``attnlab/data/tatoeba_deen`` (no network; built by ``scripts/make_tatoeba_subset.py``, which
  splits by connected groups of sentences so no valid/test sentence occurs in training on either
  side); ``data.test_split=test_long`` scores on its pairs of 11-16 words instead, ``valid``,
  ``valid_short`` or ``valid_long`` on a validation file (to choose decoding settings).
- ``tatoeba_deen_long``: the same with the longer pairs (up to 16 words) in every split.
- ``multi30k``: the Multi30k task-1 raw text (en, de, fr, cs), downloaded once into the cache.
- ``files``: a folder of one-sentence-per-line files ``{train,valid,<test_split>}.<lang>[.gz]``.

All text is whitespace-normalised (:func:`normalize_space`); pairs with an empty side are skipped
and counted in :attr:`ParallelData.skipped`.
"""

from __future__ import annotations

import gzip
import random
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from attnlab.config import TextDataConfig
from attnlab.data.download import RemoteFile, fetch
from attnlab.errors import UserError
from attnlab.registry import Registry

Pair = tuple[str, str]
SPLITS = ("train", "valid", "test")
# invisible characters dropped by normalize_space: zero-width space, word joiner, BOM, soft hyphen
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u00ad]")


def normalize_space(text: str) -> str:
    """Drop invisible characters, turn any run of Unicode whitespace into one space, strip."""
    if not text.isascii():
        text = _INVISIBLE.sub("", text)
    return " ".join(text.split())


# ----------------------------------------------------------------------------- data model


@dataclass
class Split:
    """Unique source sentences, each with all of its reference translations. Synthetic data
    (:mod:`attnlab.data.synthetic`) also carries each sentence's gold alignment (the source
    position each target token reads, -1 = none) and its nominal length."""

    sources: list[str]
    references: list[list[str]]
    alignments: list[list[int]] | None = None
    lengths: list[int] | None = None

    def __post_init__(self) -> None:
        if len(self.sources) != len(self.references):
            raise ValueError(
                f"{len(self.sources)} sources but {len(self.references)} reference lists"
            )
        for extra in (self.alignments, self.lengths):
            if extra is not None and len(extra) != len(self.sources):
                raise ValueError(f"{len(self.sources)} sources but {len(extra)} alignments or lengths")

    @classmethod
    def from_pairs(cls, pairs: Iterable[Pair], group: bool = True) -> Split:
        """Group (source, target) pairs by source, in order of first appearance; duplicate pairs
        are kept, so :meth:`pairs` gives back every input pair. ``group=False`` keeps one entry
        per line (line-by-line scoring of a parallel test file)."""
        if not group:
            pairs = list(pairs)
            return cls([src for src, _ in pairs], [[tgt] for _, tgt in pairs])
        grouped: dict[str, list[str]] = {}
        for src, tgt in pairs:
            grouped.setdefault(src, []).append(tgt)
        return cls(list(grouped), list(grouped.values()))

    def pairs(self) -> list[Pair]:
        """One (source, target) pair per reference: the training examples."""
        return [(src, tgt) for src, refs in zip(self.sources, self.references) for tgt in refs]

    def head(self, n: int) -> Split:
        """The first ``n`` sources with their references (all of them when ``n <= 0``)."""
        if n <= 0:
            return self
        cut = (lambda xs: None if xs is None else xs[:n])  # noqa: E731
        return Split(self.sources[:n], self.references[:n], cut(self.alignments), cut(self.lengths))

    def reference_streams(self) -> list[list[str | None]]:
        """References as sacrebleu wants them (:func:`attnlab.metrics.reference_streams`)."""
        from attnlab.metrics import reference_streams

        return reference_streams(self.references)

    def __len__(self) -> int:
        return len(self.sources)


@dataclass
class ParallelData:
    """A corpus in one translation direction; ``skipped`` counts dropped lines, e.g.
    ``{"train_empty": 3}`` for three training lines with an empty side."""

    src_lang: str
    tgt_lang: str
    train: Split
    valid: Split
    test: Split
    skipped: dict[str, int] = field(default_factory=dict)
    symbols: list[str] = field(default_factory=list)  # synthetic data: every symbol it can write


@dataclass
class RawSplit:
    """What a corpus reader returns for one split: pairs in the requested direction, where
    they came from (for error messages), and whether pairs with one source are that source's
    several references (Tatoeba) rather than separate lines of a parallel file."""

    pairs: list[Pair]
    origin: str
    multi_reference: bool = False


# A reader returns the raw splits of a corpus, or (generated data) the finished ParallelData.
Reader = Callable[[TextDataConfig], "dict[str, RawSplit] | ParallelData"]
DATASETS: Registry[Reader] = Registry("dataset")


def load_corpus(cfg: TextDataConfig) -> ParallelData:
    """Load the corpus ``cfg.name`` in direction ``cfg.src_lang -> cfg.tgt_lang``.

    Applies ``cfg.max_train_pairs`` (first N training pairs) and ``cfg.max_eval_sentences``
    (first N valid and test sources).
    """
    reader = DATASETS.get(cfg.name)
    if cfg.src_lang == cfg.tgt_lang:
        raise UserError(
            f"data.src_lang and data.tgt_lang are both '{cfg.src_lang}'; pick two languages"
        )
    raw = reader(cfg)
    if isinstance(raw, ParallelData):  # generated data (the attention gym): already clean and grouped
        return replace(
            raw, train=raw.train.head(cfg.max_train_pairs), valid=raw.valid.head(cfg.max_eval_sentences),
            test=raw.test.head(cfg.max_eval_sentences))
    skipped: dict[str, int] = {}
    splits: dict[str, Split] = {}
    for name in SPLITS:
        pairs, skipped[f"{name}_empty"] = _clean_pairs(raw[name].pairs)
        if not pairs:
            raise UserError(
                f"the {name} split has no line with text on both sides ({raw[name].origin}); "
                "check that the files are the right ones"
            )
        if name == "train" and cfg.max_train_pairs > 0:
            pairs = pairs[: cfg.max_train_pairs]
        # Tatoeba lists each translation of a sentence as its own pair: group them into
        # multi-reference sentences. Line-aligned files (Multi30k, yours) stay line by line.
        split = Split.from_pairs(pairs, group=name == "train" or raw[name].multi_reference)
        splits[name] = split if name == "train" else split.head(cfg.max_eval_sentences)
    return ParallelData(cfg.src_lang, cfg.tgt_lang, **splits, skipped=skipped)


def _clean_pairs(pairs: list[Pair]) -> tuple[list[Pair], int]:
    """Normalise whitespace; drop pairs with an empty side. Returns (kept, number dropped)."""
    kept = [(normalize_space(s), normalize_space(t)) for s, t in pairs]
    kept = [(s, t) for s, t in kept if s and t]
    return kept, len(pairs) - len(kept)


def _check_languages(cfg: TextDataConfig, dataset: str, available: Iterable[str]) -> None:
    available = sorted(available)
    for key in ("src_lang", "tgt_lang"):
        lang = getattr(cfg, key)
        if lang not in available:
            raise UserError(
                f"data.{key}={lang} is not available in {dataset}; "
                f"available: {', '.join(available)}"
            )


# ----------------------------------------------------------------------------- reading files


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file, plain or ``.gz``, split on ``\\n`` only (a stray U+2028 or form
    feed inside a sentence must not shift the alignment of parallel files); ``\\r`` endings and a
    leading BOM are removed. Raises :class:`UserError` for unreadable or non-UTF-8 files."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        kind = "gzip" if path.suffix == ".gz" else "text"
        raise UserError(f"cannot read {path}: {e}; is it a valid {kind} file?") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise UserError(
            f"{path} line {line} is not valid UTF-8 (byte 0x{data[e.start]:02x} at column "
            f"{column}); convert the file to UTF-8"
        ) from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_parallel(src: Path, tgt: Path) -> list[Pair]:
    """Zip two line-aligned files into pairs; both must be non-empty and of equal length."""
    src_lines, tgt_lines = read_lines(src), read_lines(tgt)
    for path, lines in ((src, src_lines), (tgt, tgt_lines)):
        if not lines:
            raise UserError(f"{path} is empty; it should hold one sentence per line")
    if len(src_lines) != len(tgt_lines):
        raise UserError(
            f"{src} has {len(src_lines)} lines but {tgt} has {len(tgt_lines)}; "
            "parallel files need one sentence per line, line i translating line i"
        )
    return list(zip(src_lines, tgt_lines))


# ----------------------------------------------------------------------------- tatoeba_deen

TATOEBA_DIR = Path(__file__).resolve().parent / "tatoeba_deen"
TATOEBA_COLUMNS = ("en", "de")  # the column order of the shipped .tsv.gz files


# data.test_split of the shipped corpora -> the files scored as the test split. "test" and "valid"
# are the dataset's own splits (tatoeba_deen: the pairs of at most 10 words; tatoeba_deen_long:
# both lengths); the other names pick one length, so checkpoints trained on either dataset can
# be scored on the same sentences (validation splits: to choose decoding settings).
TATOEBA_SPLIT_FILES = {
    "test_short": ("test",),
    "test_long": ("long_test",),
    "valid_short": ("valid",),
    "valid_long": ("long_valid",),
}
TATOEBA_OWN_SPLITS = {
    "tatoeba_deen": {"train": ("train",), "valid": ("valid",), "test": ("test",)},
    "tatoeba_deen_long": {"train": ("train", "long_train"), "valid": ("valid", "long_valid"),
                          "test": ("test", "long_test")},
}


def _tatoeba_file(name: str, cfg: TextDataConfig) -> RawSplit:
    path = TATOEBA_DIR / f"{name}.tsv.gz"
    s, t = TATOEBA_COLUMNS.index(cfg.src_lang), TATOEBA_COLUMNS.index(cfg.tgt_lang)
    rows = [line.split("\t") for line in read_lines(path)]
    return RawSplit([(r[s], r[t]) for r in rows], origin=str(path), multi_reference=True)


def _read_tatoeba(cfg: TextDataConfig, dataset: str) -> dict[str, RawSplit]:
    """train / valid / test of ``dataset``, the test files chosen by ``cfg.test_split``. Evaluation
    splits that join files are interleaved in a fixed random order, so that the first
    ``decode.valid_sentences`` validation sentences mix both lengths."""
    _check_languages(cfg, dataset, TATOEBA_COLUMNS)
    files = dict(TATOEBA_OWN_SPLITS[dataset])
    choices = ["test", "valid", *TATOEBA_SPLIT_FILES]
    if cfg.test_split not in choices:
        raise UserError(f"data.test_split={cfg.test_split} is not a split of {dataset}; valid: {', '.join(choices)}")
    files["test"] = files[cfg.test_split] if cfg.test_split in ("test", "valid") else TATOEBA_SPLIT_FILES[cfg.test_split]
    out = {}
    for name, names in files.items():
        parts = [_tatoeba_file(f, cfg) for f in names]
        pairs = [p for part in parts for p in part.pairs]
        if name != "train" and len(parts) > 1:
            random.Random(0).shuffle(pairs)
        out[name] = RawSplit(pairs, origin=" + ".join(part.origin for part in parts), multi_reference=True)
    return out


@DATASETS.register("tatoeba_deen")
def read_tatoeba_deen(cfg: TextDataConfig) -> dict[str, RawSplit]:
    """The shipped German-English Tatoeba subset of pairs of at most 10 words a side (see
    ``tatoeba_deen/README.md``); ``data.test_split`` scores another file instead (valid_short,
    test_long, valid_long: :data:`TATOEBA_SPLIT_FILES`)."""
    return _read_tatoeba(cfg, "tatoeba_deen")


@DATASETS.register("tatoeba_deen_long")
def read_tatoeba_deen_long(cfg: TextDataConfig) -> dict[str, RawSplit]:
    """The shipped corpus with its longer pairs (up to 16 words a side) in every split; its test
    split holds both lengths unless ``data.test_split`` names one file."""
    return _read_tatoeba(cfg, "tatoeba_deen_long")


# ----------------------------------------------------------------------------- multi30k

MULTI30K_COMMIT = "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
MULTI30K_URL = (
    f"https://raw.githubusercontent.com/multi30k/dataset/{MULTI30K_COMMIT}/data/task1/raw/"
)
MULTI30K_TEST_DEFAULT = "test_2016_flickr"  # what data.test_split=test means for multi30k
# sha256 of each task-1 raw .gz file at MULTI30K_COMMIT
MULTI30K_SHA256 = {
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
    "test_2017_flickr.fr.gz": "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496",
    "test_2017_mscoco.en.gz": "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58",
    "test_2017_mscoco.de.gz": "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338",
    "test_2017_mscoco.fr.gz": "754f3072ba9f124569ba5258b32730fc1d214bbf8e0c6dfb2b74401676220db0",
    "test_2018_flickr.en.gz": "ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d",
    "test_2018_flickr.de.gz": "ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608",
    "test_2018_flickr.fr.gz": "fb2b83fcceb937a4f7e3e93c1c51c22aba92f1e342391e6b5ba392b16a920501",
    "test_2018_flickr.cs.gz": "7d0a9db904f94c554a8c58049a9f3a5357c27f46cc3d710d70cb0b4a2585b8c2",
}


def multi30k_languages() -> dict[str, list[str]]:
    """Multi30k split name -> the languages it has, e.g. ``{"train": ["cs", "de", "en", "fr"]}``."""
    out: dict[str, list[str]] = {}
    for name in MULTI30K_SHA256:
        split, lang, _ = name.split(".")
        out.setdefault(split, []).append(lang)
    return {split: sorted(langs) for split, langs in out.items()}


def multi30k_file(split: str, lang: str) -> RemoteFile:
    """The :class:`RemoteFile` of one Multi30k split in one language."""
    name = f"{split}.{lang}.gz"
    return RemoteFile(name, MULTI30K_URL + name, MULTI30K_SHA256[name])


@DATASETS.register("multi30k")
def read_multi30k(cfg: TextDataConfig) -> dict[str, RawSplit]:
    """Multi30k task 1 (Elliott et al., 2016): valid = ``val``, test = ``cfg.test_split``."""
    languages = multi30k_languages()
    test = MULTI30K_TEST_DEFAULT if cfg.test_split == "test" else cfg.test_split
    if test not in languages or not test.startswith("test"):
        tests = [s for s in languages if s.startswith("test")]
        raise UserError(
            f"unknown multi30k test split '{cfg.test_split}'; valid choices: test (= "
            f"{MULTI30K_TEST_DEFAULT}), {', '.join(tests)}"
        )
    out = {}
    for name, split in (("train", "train"), ("valid", "val"), ("test", test)):
        _check_languages(cfg, f"multi30k split {split}", languages[split])
        src, tgt = (
            fetch(multi30k_file(split, lang), "multi30k", cfg.cache_dir)
            for lang in (cfg.src_lang, cfg.tgt_lang)
        )
        out[name] = RawSplit(read_parallel(src, tgt), origin=f"{src} + {tgt}")
    return out


# ----------------------------------------------------------------------------- files


@DATASETS.register("files")
def read_files(cfg: TextDataConfig) -> dict[str, RawSplit]:
    """User data: ``cfg.path`` holds ``{train,valid,<test_split>}.<lang>``, plain or ``.gz``."""
    splits = (("train", "train"), ("valid", "valid"), ("test", cfg.test_split))
    langs = (cfg.src_lang, cfg.tgt_lang)
    expected = [f"{split}.{lang}" for _, split in splits for lang in langs]
    hint = f"expected files {', '.join(expected)} (plain or .gz, one sentence per line)"
    if not cfg.path:
        raise UserError(f"data=files needs data.path=DIR, a folder with {hint}")
    folder = Path(cfg.path).expanduser()
    if not folder.is_dir():
        raise UserError(f"data.path={cfg.path} is not a folder; it should hold {hint}")
    out = {}
    for name, split in splits:
        src, tgt = (_find_text_file(folder, f"{split}.{lang}", hint) for lang in langs)
        out[name] = RawSplit(read_parallel(src, tgt), origin=f"{src} + {tgt}")
    return out


def _find_text_file(folder: Path, stem: str, hint: str) -> Path:
    """``folder/stem`` or ``folder/stem.gz``; exactly one of them must exist."""
    found = [p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()]
    if not found:
        raise UserError(f"{folder} has no {stem} (or {stem}.gz); {hint}")
    if len(found) > 1:
        raise UserError(f"{folder} has both {stem} and {stem}.gz; keep only one of them")
    return found[0]


from attnlab.data import synthetic as _synthetic  # noqa: E402,F401  (registers "synthetic"; imports this module)
