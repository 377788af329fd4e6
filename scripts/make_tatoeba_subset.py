"""Build the shipped German-English corpus ``attnlab/data/tatoeba_deen`` from a Tatoeba file.

Usage::

    python scripts/make_tatoeba_subset.py eng-deu.txt.gz attnlab/data/tatoeba_deen

SOURCE_GZ is a manythings.org/Tatoeba ``deu.txt`` (one pair per line, ``English<TAB>German``,
an optional third attribution column is ignored), gzip-compressed.

Steps: normalise whitespace; keep pairs with at most ``--max-words`` words on each side; drop
exact duplicate pairs; group the pairs into connected components of the German<->English
sentence graph (two pairs are connected when they share a German or an English sentence); draw
German sentences at random (fixed seed) and move each one's whole component into test until it
has ``--test-sources`` German sentences, then into valid likewise; everything else is train.
Because whole components move, no valid/test sentence (German or English) occurs in train.
Writes ``{train,valid,test}.tsv.gz`` (columns en, de; gzip with mtime 0, so reruns are
byte-identical), ``README.md`` with the counts and ``ATTRIBUTION.md``.

Longer pairs (``--long-max-words``, default 16): pairs whose longer side has more than
``--max-words`` and at most ``--long-max-words`` words go to ``long_{train,valid,test}.tsv.gz``
without changing the short files. The components are recomputed over short and long pairs
together: a long pair joins the split of the short pairs it is connected to; long pairs whose
component joins short pairs of two different splits are dropped (they would carry a sentence
across splits); components of long pairs only are drawn at random into long test, then long
valid (``--long-test-sources``, ``--long-valid-sources`` German sentences in all), the rest is
long train. So no sentence of any valid or test file occurs in any train file.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import random
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from attnlab.data.text import normalize_space  # noqa: E402

Pair = tuple[str, str]  # (en, de)


def read_pairs(source: Path) -> list[Pair]:
    """(English, German) pairs of a manythings file, whitespace-normalised."""
    pairs = []
    with gzip.open(source, "rt", encoding="utf-8", newline="\n") as f:
        for number, line in enumerate(f, start=1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                sys.exit(f"{source} line {number}: expected English<TAB>German")
            pairs.append((normalize_space(fields[0]), normalize_space(fields[1])))
    return pairs


def filter_pairs(pairs: list[Pair], max_words: int) -> list[Pair]:
    """Non-empty pairs with at most ``max_words`` words a side, exact duplicates removed."""
    kept = (p for p in pairs if all(0 < len(side.split()) <= max_words for side in p))
    return list(dict.fromkeys(kept))


def components(pairs: list[Pair]) -> dict[Pair, tuple[str, str]]:
    """Map each pair to the root of its connected component (union-find on sentences)."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for en, de in pairs:
        a, b = find(("en", en)), find(("de", de))
        if a != b:
            parent[a] = b
    return {p: find(("de", p[1])) for p in pairs}


def split_by_component(
    pairs: list[Pair], n_test: int, n_valid: int, seed: int
) -> dict[str, list[Pair]]:
    """Assign whole components to test, then valid, by drawing German sentences at random."""
    root_of = components(pairs)
    members: dict[tuple[str, str], list[Pair]] = defaultdict(list)
    german: dict[tuple[str, str], set[str]] = defaultdict(set)
    for p in pairs:
        members[root_of[p]].append(p)
        german[root_of[p]].add(p[1])
    rng = random.Random(seed)
    sources = list(dict.fromkeys(de for _, de in pairs))
    rng.shuffle(sources)
    root_of_german = {p[1]: root_of[p] for p in pairs}
    out: dict[str, list[Pair]] = {"test": [], "valid": []}
    taken: set[tuple[str, str]] = set()
    targets = iter([("test", n_test), ("valid", n_valid)])
    split, wanted = next(targets)
    count = 0
    for de in sources:
        root = root_of_german[de]
        if root in taken:
            continue
        taken.add(root)
        out[split].extend(members[root])
        count += len(german[root])
        if count >= wanted:
            nxt = next(targets, None)
            if nxt is None:
                break
            (split, wanted), count = nxt, 0
    train = [p for p in pairs if root_of[p] not in taken]
    rng.shuffle(train)  # so that data.max_train_pairs=N keeps a random sample
    out["train"] = train
    return out


def split_long_pairs(
    splits: dict[str, list[Pair]], longer: list[Pair], n_test: int, n_valid: int, seed: int
) -> tuple[dict[str, list[Pair]], int]:
    """Assign the longer pairs to splits without moving any short pair (see the module
    docstring). Returns ``({"train": ..., "valid": ..., "test": ...}, number dropped)``."""
    short_split = {p: name for name, pairs in splits.items() for p in pairs}
    root_of = components([*short_split, *longer])
    splits_of_root: dict[tuple[str, str], set[str]] = defaultdict(set)
    for p, name in short_split.items():
        splits_of_root[root_of[p]].add(name)
    out: dict[str, list[Pair]] = {"train": [], "valid": [], "test": []}
    orphans: dict[tuple[str, str], list[Pair]] = defaultdict(list)
    dropped = 0
    for p in longer:
        names = splits_of_root.get(root_of[p])
        if not names:
            orphans[root_of[p]].append(p)
        elif len(names) == 1:
            out[next(iter(names))].append(p)
        else:
            dropped += 1
    rng = random.Random(seed)
    roots = sorted(orphans)
    rng.shuffle(roots)
    for name, wanted in (("test", n_test), ("valid", n_valid)):
        while roots and len({de for _, de in out[name]}) < wanted:
            out[name].extend(orphans[roots.pop()])
    for root in roots:
        out["train"].extend(orphans[root])
    rng.shuffle(out["train"])
    return out, dropped


def write_tsv_gz(path: Path, pairs: list[Pair]) -> None:
    """Deterministic gzip (no name, mtime 0) of ``en<TAB>de`` lines."""
    text = "".join(f"{en}\t{de}\n" for en, de in pairs).encode("utf-8")
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
            f.write(text)


def stats_table(splits: dict[str, list[Pair]], folder: Path) -> str:
    rows = [
        "| split | pairs | unique German | unique English | file bytes |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in [n for n in ("train", "valid", "test", "long_train", "long_valid", "long_test") if n in splits]:
        pairs = splits[name]
        size = (folder / f"{name}.tsv.gz").stat().st_size
        german, english = len({de for _, de in pairs}), len({en for en, _ in pairs})
        rows.append(f"| {name} | {len(pairs)} | {german} | {english} | {size} |")
    return "\n".join(rows)


def write_readme(
    folder: Path, source: Path, args: argparse.Namespace, n_read: int, n_kept: int, splits: dict,
    n_long: int = 0, n_dropped: int = 0,
) -> None:
    """README.md with the counts and the exact command that made the folder."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    (folder / "README.md").write_text(
        f"""# tatoeba_deen: the shipped German-English corpus

A filtered subset of the Tatoeba German-English sentence pairs (manythings.org release of
2018-05-13), shipped so that the default translation run needs no network. Licence: CC-BY 2.0 FR,
see ATTRIBUTION.md.

Files: `train.tsv.gz`, `valid.tsv.gz`, `test.tsv.gz` (pairs of at most {args.max_words} words a
side: the default corpus) and `long_train.tsv.gz`, `long_valid.tsv.gz`, `long_test.tsv.gz` (pairs
whose longer side has {args.max_words + 1}-{args.long_max_words} words); UTF-8, one pair per line, two columns
`English<TAB>German`, no header. Read by `attnlab.data.text`, which groups the pairs by source
sentence (multi-reference evaluation) in either direction: `data=tatoeba_deen` reads the short
files (`data.test_split=test_long` or `valid_long` scores a checkpoint on the longer pairs
instead), `data=tatoeba_deen_long` trains, validates and tests on both.

## Counts

{stats_table(splits, folder)}

Source file: `{source.name}`, {n_read} pairs, sha256
`{digest}`.
Kept after the filters below: {n_kept} pairs of at most {args.max_words} words, and
{n_long} longer pairs, of which {n_dropped} were dropped because they connect sentences of two
different splits.

## How it was made

    python scripts/make_tatoeba_subset.py {source.name} attnlab/data/tatoeba_deen \\
        --max-words {args.max_words} --test-sources {args.test_sources} \\
        --valid-sources {args.valid_sources} --seed {args.seed} \\
        --long-max-words {args.long_max_words} --long-test-sources {args.long_test_sources} \\
        --long-valid-sources {args.long_valid_sources}

1. Whitespace normalised (`attnlab.data.text.normalize_space`: any Unicode space run becomes one
   space; zero-width space, word joiner, BOM and soft hyphen are dropped; ends stripped).
2. Kept pairs with at most {args.max_words} words (whitespace-separated) on each side; nothing else
   filtered. Exact duplicate pairs removed.
3. Split by connected component of the sentence graph (German and English sentences are nodes,
   pairs are edges): German sentences are drawn at random (seed {args.seed}) and each drawn
   sentence's whole component goes to test until test holds at least {args.test_sources} German
   sentences, then to valid until it holds at least {args.valid_sources}. All other pairs are train,
   shuffled (seed {args.seed}) so that `data.max_train_pairs=N` keeps a random sample.
   No valid or test sentence, German or English, occurs in train (tested in
   `tests/test_text_data.py`).
4. The longer pairs (longer side {args.max_words + 1}-{args.long_max_words} words, both sides at most
   {args.long_max_words}): components recomputed over all pairs; a long pair joins the split of the
   short pairs it is connected to, is dropped when it connects two splits, and components of
   long pairs only are drawn (seed {args.seed}) into long test until it holds at least
   {args.long_test_sources} German sentences, then long valid ({args.long_valid_sources}); the rest is
   long train. No sentence of a valid or test file, short or long, occurs in a train file
   (tested in `tests/test_tatoeba_long.py`).

The source warns: "The data from the Tatoeba Project contains errors."
""",
        encoding="utf-8",
    )


ATTRIBUTION = """# Attribution

The sentence pairs in this folder are a filtered subset of sentences from the Tatoeba Project
(https://tatoeba.org), as distributed by www.manythings.org/anki (file `deu-eng.zip`, `deu.txt`,
release dated 2018-05-13).

Attribution: www.manythings.org/anki and tatoeba.org

License: Creative Commons Attribution 2.0 France (CC-BY 2.0 FR),
https://creativecommons.org/licenses/by/2.0/fr/
(terms of use: https://tatoeba.org/eng/terms_of_use).
The manythings release states: "These files have been released under the same license as the
source." (http://creativecommons.org/licenses/by/2.0)

Changes made: whitespace normalised, pairs longer than 16 words on either side removed, exact
duplicates removed, pairs split into train/valid/test and into pairs of at most 10 words a side
(train/valid/test.tsv.gz) and longer ones (long_*.tsv.gz), a few longer pairs that connected two
splits removed (see README.md). The release used carries no
per-sentence contributor column; the individual sentences' authors are credited on tatoeba.org.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source_gz", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--max-words", type=int, default=10)
    parser.add_argument("--test-sources", type=int, default=2000)
    parser.add_argument("--valid-sources", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--long-max-words", type=int, default=16)
    parser.add_argument("--long-test-sources", type=int, default=1000)
    parser.add_argument("--long-valid-sources", type=int, default=500)
    args = parser.parse_args(argv)

    pairs = read_pairs(args.source_gz)
    kept = filter_pairs(pairs, args.max_words)
    splits = split_by_component(kept, args.test_sources, args.valid_sources, args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, split_pairs in splits.items():
        write_tsv_gz(args.out_dir / f"{name}.tsv.gz", split_pairs)
    short = set(kept)
    longer = [p for p in filter_pairs(pairs, args.long_max_words) if p not in short]
    long_splits, dropped = split_long_pairs(
        splits, longer, args.long_test_sources, args.long_valid_sources, args.seed
    )
    for name, split_pairs in long_splits.items():
        write_tsv_gz(args.out_dir / f"long_{name}.tsv.gz", split_pairs)
    splits = {**splits, **{f"long_{n}": p for n, p in long_splits.items()}}
    write_readme(args.out_dir, args.source_gz, args, len(pairs), len(kept), splits, len(longer), dropped)
    (args.out_dir / "ATTRIBUTION.md").write_text(ATTRIBUTION, encoding="utf-8")
    print(stats_table(splits, args.out_dir))


if __name__ == "__main__":
    main()
