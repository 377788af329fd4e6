"""attnlab.report on hand-made run folders: grouping, statistics, tables, plots and the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytest
import yaml

from attnlab import report
from attnlab import significance as sig
from attnlab.errors import UserError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# attention -> BLEU of seeds 0, 1, 2 (None: no such seed)
BLEU = {"dot": [20.0, 22.0, 24.0], "none": [10.0, 11.0], "general": [15.0]}


def make_run(
    folder: Path,
    overrides: list[str],
    results: Optional[dict[str, Any]],
    valid: Optional[list[dict[str, Any]]] = None,
    config: Optional[dict[str, Any]] = None,
) -> Path:
    """A run folder as `python -m attnlab` writes it; ``results=None`` = interrupted."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if config is not None:
        (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    records = [{"kind": "train", "step": 5, "loss": 3.0, "lr": 1e-3}] + [{"kind": "valid", **r} for r in valid or []]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if results is not None:
        (folder / "results.json").write_text(json.dumps(results))
    return folder


def translation_config(attention: str, seed: int) -> dict[str, Any]:
    """The part of a translation run's .hydra/config.yaml that the report looks at."""
    return {
        "task": {"name": "translation", "models": ["rnn_attn", "transformer"]},
        "model": {"name": "rnn_attn", "hidden_dim": 32},
        "attention": {"score": attention},
        "trainer": {"epochs": 2, "progress": False},
        "seed": seed,
    }


def translation_run(root: Path, attention: str, seed: int, bleu: Optional[float]) -> Path:
    """A translation run of the rnn_attn model with this attention and seed (bleu None: interrupted)."""
    overrides = ["task=translation", "model=rnn_attn", f"attention={attention}", f"seed={seed}"]
    results = None
    if bleu is not None:
        results = {"task": "translation", "model": "rnn_attn", "attention": attention, "seed": seed}
        num_params = 1000 if attention == "none" else 1234
        results.update(bleu=bleu, chrf=bleu * 2, num_params=num_params, train_seconds=10.0 + seed)
    valid = [{"epoch": 1, "step": 10, "bleu": bleu / 2}, {"epoch": 2, "step": 20, "bleu": bleu}] if bleu else []
    folder = root / ",".join(sorted(overrides))
    return make_run(folder, overrides, results, valid, config=translation_config(attention, seed))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A sweep folder: 3 attention variants, 6 finished runs and one interrupted run."""
    root = tmp_path / "multirun" / "2024-01-01_00-00-00"
    for attention, scores in BLEU.items():
        for seed, bleu in enumerate(scores):
            translation_run(root, attention, seed, bleu)
    translation_run(root, "general", 1, None)  # interrupted
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def by_variant(rows: list[report.Row]) -> dict[str, report.Row]:
    return {r.variant: r for r in rows}


# ----------------------------------------------------------------------------- loading and grouping


def test_load_runs_finds_every_run_and_marks_the_interrupted_one(sweep: Path) -> None:
    runs = report.load_runs(sweep)
    assert len(runs) == 7
    incomplete = [r for r in runs if not r.complete]
    assert [r.path.name for r in incomplete] == ["attention=general,model=rnn_attn,seed=1,task=translation"]
    assert "no results.json" in incomplete[0].problem
    assert {r.task for r in runs} == {"translation"}
    run = next(r for r in runs if r.complete and r.seed == 2)
    assert run.value("bleu") == 24.0 and run.overrides[2] == "attention=dot"
    assert run.config["model"]["hidden_dim"] == 32
    assert [r["step"] for r in run.valid_records()] == [10, 20]


def test_summarize_groups_seeds_and_computes_mean_and_sample_std(sweep: Path) -> None:
    rows = report.summarize(report.load_runs(sweep))
    assert [r.variant for r in rows] == ["attention=dot", "attention=general", "attention=none"]  # best BLEU first
    dot, general, none = rows
    assert dot.n_seeds == 3 and dot.seeds == [0, 1, 2] and dot.incomplete == 0
    assert dot.stats["bleu"].mean == pytest.approx(22.0)
    assert dot.stats["bleu"].std == pytest.approx(2.0)  # sample std: sqrt((4 + 0 + 4) / 2)
    assert dot.stats["chrf"].mean == pytest.approx(44.0) and dot.stats["chrf"].std == pytest.approx(4.0)
    assert none.stats["bleu"].mean == pytest.approx(10.5)
    assert none.stats["bleu"].std == pytest.approx(0.5**0.5)
    assert general.n_seeds == 1 and general.incomplete == 1
    assert general.stats["bleu"].mean == 15.0 and general.stats["bleu"].std is None
    assert general.stats["bleu"].text() == "15.00 ± n/a"
    assert report.Stat([6.53864]).text() == "6.54 ± n/a"
    assert report.Stat([0.15, 0.25]).text() == "0.20 ± 0.07"  # a BLEU below 1 is still a BLEU
    assert report.Stat([0.9, 0.94], fraction=True).text() == "0.9200 ± 0.0283"
    assert dot.train_seconds.mean == pytest.approx(11.0)
    assert dot.num_params == [1234] and none.num_params == [1000]


def test_metric_choice_and_sort_direction(sweep: Path) -> None:
    runs = report.load_runs(sweep)
    for run in runs:
        if run.results:
            run.results["valid_loss"] = 100.0 - run.results["bleu"]
    rows = report.summarize(runs, "valid_loss")
    assert [r.variant for r in rows] == ["attention=dot", "attention=general", "attention=none"]  # lowest loss first
    assert rows[0].metric_names == ["valid_loss"] and rows[0].primary.mean == pytest.approx(78.0)


def test_variants_are_grouped_by_config_not_by_overrides(tmp_path: Path) -> None:
    """A run that got attention=dot from the defaults is a seed of the explicit attention=dot variant."""
    config = translation_config("dot", 5)
    config["trainer"]["progress"] = True  # not a variant setting
    results = {"task": "translation", "seed": 5, "bleu": 30.0}
    make_run(tmp_path / "other_sweep" / "seed=5", ["seed=5"], results, config=config)
    translation_run(tmp_path / "sweep", "dot", 0, 20.0)
    translation_run(tmp_path / "sweep", "none", 0, 10.0)
    rows = by_variant(report.summarize(report.load_runs(tmp_path)))
    assert set(rows) == {"attention=dot", "attention=none"}
    assert rows["attention=dot"].n_seeds == 2 and rows["attention=dot"].stats["bleu"].mean == pytest.approx(25.0)


def test_runs_without_saved_config_are_grouped_by_their_results(tmp_path: Path) -> None:
    for i, (attention, bleu) in enumerate([("dot", 20.0), ("dot", 21.0), ("additive", 25.0)]):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps({"task": "translation", "attention": attention, "bleu": bleu}))
    rows = report.summarize(report.load_runs(tmp_path))
    assert [(r.variant, r.n_seeds) for r in rows] == [("attention=additive", 1), ("attention=dot", 2)]
    assert rows[1].stats["bleu"].mean == pytest.approx(20.5)
    assert rows[1].seeds == [None, None]


def test_mixed_tasks_are_reported_separately_with_their_own_metrics(sweep: Path) -> None:
    for seed, accuracy in enumerate([0.90, 0.94]):
        make_run(
            sweep / f"vision_seed={seed}",
            ["task=vision", f"seed={seed}"],
            {"task": "vision", "model": "vit", "seed": seed, "accuracy": accuracy, "num_params": 500},
            [{"epoch": 1, "step": 7, "accuracy": accuracy}],
            config={"task": {"name": "vision"}, "model": {"name": "vit"}, "seed": seed},
        )
    rows = report.summarize(report.load_runs(sweep))
    assert [r.task for r in rows] == ["translation"] * 3 + ["vision"]
    vision = rows[-1]
    assert vision.metric_names == ["accuracy"] and rows[0].metric_names == ["bleu", "chrf"]
    assert vision.variant == "task=vision"  # a lone variant is named by its overrides
    assert vision.stats["accuracy"].mean == pytest.approx(0.92)
    assert vision.stats["accuracy"].std == pytest.approx(0.04 / 2**0.5)
    assert vision.stats["accuracy"].text() == "0.9200 ± 0.0283"


def test_repeated_seeds_and_torn_metrics_lines(sweep: Path) -> None:
    copy = translation_run(sweep / "again", "dot", 0, 20.0)
    with (copy / "metrics.jsonl").open("a") as f:
        f.write('{"kind": "valid", "st')  # a crash mid-write
    runs = report.load_runs(sweep)
    assert len(next(r for r in runs if r.path == copy).metrics) == 3
    rows = report.summarize(runs)
    assert by_variant(rows)["attention=dot"].n_seeds == 4
    assert report.warnings_for(rows)[1:] == ["translation / attention=dot: seed 0 appears in several runs"]


def test_mean_curve_averages_the_kth_validation_over_seeds(sweep: Path) -> None:
    dot = by_variant(report.summarize(report.load_runs(sweep)))["attention=dot"]
    curve = report.mean_curve(dot.runs, "bleu")
    assert [(s, m) for s, m, _ in curve] == [(10.0, 11.0), (20.0, 22.0)]
    assert curve[1][2] == pytest.approx(2.0)


def test_curves_show_training_loss_when_no_run_validated_twice(tmp_path: Path) -> None:
    results = {"task": "translation", "model": "rnn_attn", "attention": "dot", "seed": 0, "bleu": 9.0}
    folder = make_run(tmp_path / "run", ["attention=dot"], results, valid=[{"step": 5, "bleu": 9.0}],
                      config=translation_config("dot", 0))
    rows = report.summarize(report.load_runs(tmp_path))
    assert report.curve_source(rows) == ("loss", "train")
    assert report.mean_curve(rows[0].runs, "loss", "train") == [(5.0, 3.0, 0.0)]
    with (folder / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"kind": "valid", "step": 9, "bleu": 12.0}) + "\n")
    assert report.curve_source(report.summarize(report.load_runs(tmp_path))) == ("bleu", "valid")


def test_empty_or_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(UserError, match="no runs in"):
        report.load_runs(tmp_path / "empty")
    with pytest.raises(UserError, match="is not a folder"):
        report.load_runs(tmp_path / "missing")


# ----------------------------------------------------------------------------- outputs


def test_write_report_writes_table_csv_and_valid_pngs(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = report.write_report(sweep, out)
    assert [p.name for p in paths] == list(report.OUTPUTS)
    for png in paths[2:]:
        assert png.read_bytes()[:8] == PNG_MAGIC
        import matplotlib.image

        height, width, _ = matplotlib.image.imread(png).shape
        assert height > 100 and width > 100

    with (out / "report.csv").open() as f:
        table = {r["variant"]: r for r in csv.DictReader(f)}
    assert list(table) == ["attention=dot", "attention=general", "attention=none"]
    assert float(table["attention=dot"]["bleu_mean"]) == pytest.approx(22.0)
    assert float(table["attention=dot"]["bleu_std"]) == pytest.approx(2.0)
    assert table["attention=general"]["bleu_std"] == "n/a"
    assert table["attention=general"]["incomplete"] == "1"
    assert table["attention=none"]["num_params"] == "1000" and table["attention=dot"]["seeds"] == "0 1 2"

    md = (out / "report.md").read_text()
    assert "| `attention=dot` | 3 | 22.00 ± 2.00 | 44.00 ± 4.00 | best | 1,234 | 11.0 | 0 |" in md
    no_test = "n/a (the runs have no saved config (.hydra/config.yaml) to find their test split)"
    assert f"| `attention=general` | 1 | 15.00 ± n/a | 30.00 ± n/a | {no_test} | 1,234 | 10.0 | 1 |" in md
    assert "Common settings: `task=translation model=rnn_attn`" in md
    assert "`attention=general,model=rnn_attn,seed=1,task=translation`: no results.json" in md
    assert "![metric_by_variant](metric_by_variant.png)" in md
    assert "fewer than 3 seeds, so no difference with them is called significant: attention=general (1), attention=none (2)" in md
    assert not (sweep / "report.md").exists()


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "attnlab.report", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def test_cli_writes_into_the_sweep_folder_and_exits_0(sweep: Path) -> None:
    done = run_cli(sweep, "--metric", "chrf")
    assert done.returncode == 0, done.stderr
    assert all((sweep / name).is_file() for name in report.OUTPUTS)
    assert "| variant | seeds | chrf |" in (sweep / "report.md").read_text()


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda p: p.mkdir(), [], "error: no runs in"),
        (lambda p: None, [], "is not a folder"),
        (
            lambda p: translation_run(p, "dot", 0, 20.0),
            ["--metric", "blue"],
            "error: no run has metric=blue; metrics found: bleu, chrf",
        ),
    ],
    ids=["empty", "missing", "unknown-metric"],
)
def test_cli_user_mistakes_exit_2_with_one_line(tmp_path: Path, make: Any, args: list[str], message: str) -> None:
    make(tmp_path / "runs")
    done = run_cli(tmp_path / "runs", *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- significance, health, length


def shipped_test_references(n: int) -> list[list[str]]:
    from attnlab.config import TextDataConfig
    from attnlab.data.text import load_corpus
    from omegaconf import OmegaConf

    data = OmegaConf.merge(OmegaConf.structured(TextDataConfig), {"name": "tatoeba_deen", "max_eval_sentences": n})
    return load_corpus(data).test.references


def scored_translation_run(root: Path, attention: str, seed: int, hyps: list[str], health: dict[str, float]) -> Path:
    """A translation run with hypotheses.txt on the first 30 shipped test sentences."""
    overrides = ["task=translation", f"attention={attention}", f"seed={seed}"]
    config = translation_config(attention, seed)
    config["data"] = {"name": "tatoeba_deen", "max_eval_sentences": 30}
    results = {"task": "translation", "model": "rnn_attn", "attention": attention, "seed": seed, "bleu": 1.0,
               "chrf": 1.0, "attention_health": health,
               "bleu_by_length": {"1-4": {"sentences": 12, "bleu": 40.0 + seed}, "5-6": {"sentences": 18, "bleu": 20.0}}}
    folder = make_run(root / f"{attention}-{seed}", overrides, results, config=config)
    (folder / "hypotheses.txt").write_text("".join(h + "\n" for h in hyps))
    return folder


def test_report_marks_significance_health_and_length_buckets(tmp_path: Path) -> None:
    refs = shipped_test_references(30)
    healthy = {"entropy": 1.2, "entropy_norm": 0.5, "max_weight": 0.55, "eos_share": 0.05, "eos_weight": 0.08}
    sink = {"entropy": 0.01, "entropy_norm": 0.01, "max_weight": 0.99, "eos_share": 0.93, "eos_weight": 0.95}
    for seed in range(3):
        # "good" repeats a reference (seed 2 garbles one sentence); "sink" outputs one word
        good = [r[0] for r in refs]
        good[seed] = "no" if seed == 2 else good[seed]
        scored_translation_run(tmp_path, "additive", seed, good, healthy)
        scored_translation_run(tmp_path, "dot", seed, ["The"] * 30, sink)
    for run in tmp_path.iterdir():  # the real scores, as the run would have written them
        results = json.loads((run / "results.json").read_text())
        from attnlab.metrics import corpus_scores

        hyps = (run / "hypotheses.txt").read_text().splitlines()
        results.update(corpus_scores(hyps, refs).as_dict())
        (run / "results.json").write_text(json.dumps(results))

    report.write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    additive = next(line for line in md.splitlines() if line.startswith("| `attention=additive`"))
    dot = next(line for line in md.splitlines() if line.startswith("| `attention=dot`"))
    assert "| best |" in additive and "0.50 / 0.55 / 5% |" in additive and "COLLAPSED" not in additive
    assert ", 3 seeds: significant |" in dot and "p=0.00" in dot and "0.01 / 0.99 / 93% COLLAPSED |" in dot
    assert "| variant | 1-4 words (12) | 5-6 words (18) |" in md
    assert "| `attention=additive` | 41.00 ± 1.00 | 20.00 ± 0.00 |" in md

    with (tmp_path / "report.csv").open() as f:
        table = {r["variant"]: r for r in csv.DictReader(f)}
    assert table["attention=dot"]["vs_best"] == "significant" and float(table["attention=dot"]["vs_best_delta"]) < -50
    assert table["attention=dot"]["attention_collapsed"] == "True"
    assert table["attention=additive"]["vs_best"] == "best" and float(table["attention=additive"]["bleu_len_1-4"]) == 41.0


def vision_run(root: Path, pool: str, seed: int, correct: list[bool], health: dict | None = None) -> Path:
    overrides = ["task=vision", f"model.pool={pool}", f"seed={seed}"]
    config = {"task": {"name": "vision"}, "model": {"name": "vit", "pool": pool}, "seed": seed}
    accuracy = sum(correct) / len(correct)
    results = {"task": "vision", "model": "vit", "seed": seed, "accuracy": accuracy}
    if health is not None:
        results["attention_health"] = health
    folder = make_run(root / f"{pool}-{seed}", overrides, results, config=config)
    lines = ["index,label,predicted,probability"]
    lines += [f"{i},{i % 10},{i % 10 if ok else (i + 1) % 10},0.9" for i, ok in enumerate(correct)]
    (folder / "test_predictions.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_accuracy_differences_are_tested_per_image_and_one_seed_is_never_enough(tmp_path: Path) -> None:
    n = 200
    for seed in range(2):  # two seeds only
        vision_run(tmp_path, "mean", seed, [i % 10 != 0 for i in range(n)])  # 90 %
        vision_run(tmp_path, "cls", seed, [i % 5 != 0 for i in range(n)])  # 80 %, wrong where mean is too
    rows = report.summarize(report.load_runs(tmp_path))
    tests = report.compare_to_best(rows)
    test = tests[("vision", "model.pool=cls")]
    assert test.delta == pytest.approx(-0.1) and test.p_value < 0.01 and test.pairs == 2
    assert report.significance.verdict(test) == "too few seeds"
    assert "-0.1000, p=0.001, 2 seeds: too few seeds" in report.comparison_text(test, fraction=True)
    # the same test on validation predictions, for choices (--metric best_valid_accuracy)
    for run in tmp_path.iterdir():
        (run / "valid_predictions.csv").write_text((run / "test_predictions.csv").read_text())
        results = json.loads((run / "results.json").read_text())
        (run / "results.json").write_text(json.dumps({**results, "best_valid_accuracy": results["accuracy"]}))
    valid = report.compare_to_best(report.summarize(report.load_runs(tmp_path), "best_valid_accuracy"))
    assert valid[("vision", "model.pool=cls")].delta == pytest.approx(-0.1)
    (tmp_path / "cls-1" / "test_predictions.csv").unlink()
    tests = report.compare_to_best(report.summarize(report.load_runs(tmp_path)))
    assert "test_predictions.csv missing" in tests[("vision", "model.pool=cls")]


@pytest.mark.parametrize(
    ("pool", "health", "cell"),
    [
        ("cls", {"entropy_norm": 0.62, "max_weight": 0.41, "cls_share": 0.12, "cls_weight": 0.1}, "0.62 / 0.41 / 12%"),
        ("cls", {"entropy_norm": 0.55, "max_weight": 0.6, "cls_share": 0.8, "cls_weight": 0.6}, "0.55 / 0.60 / 80% CLS sink"),
        ("cls", {"entropy_norm": 0.02, "max_weight": 0.99, "cls_share": 0.3, "cls_weight": 0.3}, "0.02 / 0.99 / 30% COLLAPSED"),
        ("mean", {"entropy_norm": 0.7, "max_weight": 0.35}, "0.70 / 0.35"),  # no CLS token, no share
    ],
    ids=["healthy", "cls-sink", "one-hot", "no-cls"],
)
def test_report_shows_vision_attention_health(tmp_path: Path, pool: str, health: dict, cell: str) -> None:
    layers = {"layer1": {"head1": health, "mean": health}}
    vision_run(tmp_path, pool, 0, [True, False], {**health, "rows": 9.0, "images": 1.0, "layers": layers})
    report.write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| variant |"))
    row = next(line for line in md.splitlines() if line.startswith("| `"))
    assert "| attention |" in header and "the CLS key" in md
    assert f"| {cell} |" in row
    with (tmp_path / "report.csv").open() as f:
        record = next(csv.DictReader(f))
    assert record["attention_collapsed"] == str("COLLAPSED" in cell)
    assert record["attention_cls_sink"] == str("CLS sink" in cell)
    assert record["attention_cls_share"] == ("n/a" if pool == "mean" else str(health["cls_share"]))


def test_evaluations_group_by_the_config_they_scored(tmp_path: Path):
    """mode=evaluate runs: each seed's checkpoint (another path each) scored with one decoding
    setting is one variant with 3 seeds; the trained recipes and the settings tell variants apart."""
    for recipe in ("tatoeba_deen", "tatoeba_deen_long"):
        for penalty in (0.6, 1.0):
            for seed in range(3):
                config = {**translation_config("dot", seed), "mode": "evaluate",
                          "checkpoint": f"{recipe}_{seed}/best.pt", "data": {"name": recipe},
                          "decode": {"length_penalty": penalty}}
                overrides = ["mode=evaluate", f"checkpoint={recipe}_{seed}/best.pt",
                             f"decode.length_penalty={penalty}"]
                # an evaluation's results carry the seed of the run that trained its checkpoint
                results = {"task": "translation", "mode": "evaluate", "seed": seed, "bleu": 20.0 + seed,
                           "evaluated_config": config}
                make_run(tmp_path / f"{recipe}_{penalty}_{seed}", overrides, results,
                         config={"mode": "evaluate", "seed": 0, "checkpoint": config["checkpoint"]})
    rows = report.summarize(report.load_runs(tmp_path), "bleu")
    assert len(rows) == 4 and all(len(row.complete_runs) == 3 for row in rows)
    assert all(sorted(r.seed for r in row.complete_runs) == [0, 1, 2] for row in rows)
    names = sorted(row.variant for row in rows)
    assert any("tatoeba_deen_long" in n and "0.6" in n for n in names), names


@pytest.mark.parametrize(
    ("layer1", "cell"),
    [
        ({"entropy_norm": 0.5, "max_weight": 0.55, "eos_share": 0.05}, "0.50 / 0.55 / 5% |"),
        ({"entropy_norm": 0.05, "max_weight": 0.7, "eos_share": 0.8}, "0.50 / 0.55 / 5% COLLAPSED in layer1 |"),
    ],
    ids=["healthy", "first-layer-on-eos"],
)
def test_report_marks_a_collapsed_layer_that_the_last_layer_hides(tmp_path: Path, layer1: dict, cell: str) -> None:
    """The flat fields are the last layer's mean of heads; a lower layer's mean of heads on </s>
    in every seed's run shows in the cell, named."""
    healthy = {"entropy": 1.2, "entropy_norm": 0.5, "max_weight": 0.55, "eos_share": 0.05, "eos_weight": 0.08}
    for seed in range(2):
        layers = {"layer1": {"head1": healthy, "mean": {**healthy, **layer1}}, "layer2": {"head1": healthy, "mean": healthy}}
        make_run(tmp_path / f"run{seed}", ["task=translation", f"seed={seed}"],
                 {"task": "translation", "seed": seed, "bleu": 20.0, "chrf": 40.0,
                  "attention_health": {**healthy, "layers": layers}}, config=translation_config("dot", seed))
    report.write_report(tmp_path)
    row = next(line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("| `"))
    assert cell in row
    with (tmp_path / "report.csv").open() as f:
        assert next(csv.DictReader(f))["attention_collapsed"] == str("COLLAPSED" in cell)


@pytest.mark.parametrize("other_split,comparable", [("test_short", True), ("test_long", False)])
def test_runs_compare_item_by_item_when_their_test_sentences_agree(tmp_path: Path, other_split, comparable):
    """Checkpoints of both Tatoeba datasets scored on one file are compared item by item, though
    their configs name other datasets; another file is refused."""
    refs = shipped_test_references(30)
    for seed in range(3):
        for name, split in (("tatoeba_deen", "test_short"), ("tatoeba_deen_long", other_split)):
            run = scored_translation_run(tmp_path / name, "dot", seed, [r[0] for r in refs][: 30 - seed] + ["x"] * seed, {})
            config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
            config["data"] = {"name": name, "test_split": split, "max_eval_sentences": 30}
            (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    tests = report.compare_to_best(report.summarize(report.load_runs(tmp_path), "bleu"))
    (verdict,) = tests.values()
    assert isinstance(verdict, str) != comparable, verdict
    if not comparable:
        assert verdict == "the runs were tested on different test splits"


def test_the_time_cap_is_not_a_variant_but_a_run_it_stopped_is_flagged(tmp_path: Path) -> None:
    for seed, cap in ((0, "0"), (1, "60"), (2, "60")):
        run = translation_run(tmp_path, "dot", seed, 20.0 + seed)
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(
            [*yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()), f"trainer.max_minutes={cap}"]))
        config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
        config["trainer"]["max_minutes"] = float(cap)
        (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
        results = json.loads((run / "results.json").read_text())
        results["stop_reason"] = "time cap of 60.0 min reached" if seed == 2 else "2600 steps done"
        (run / "results.json").write_text(json.dumps(results))
    (row,) = report.summarize(report.load_runs(tmp_path))
    assert row.n_seeds == 3
    assert report.warnings_for([row]) == [
        f"translation / {row.variant}: seed 2 stopped on the time cap (trainer.max_minutes) before its step "
        "budget; rerun it with trainer.max_minutes=0"]


def predictions_csv(path: Path, correct: list[bool], shift: int) -> None:
    lines = ["index,label,predicted,probability"]
    lines += [f"{i},{(i + shift) % 10},{(i + shift) % 10 if ok else (i + shift + 1) % 10},0.9" for i, ok in enumerate(correct)]
    path.write_text("\n".join(lines) + "\n")


def make_fold_runs(root: Path, folds: int = 3, seeds=(0,), num_train: Optional[int] = None) -> None:
    """Two variants (mean, cls pooling), each run validating on its own fold's images (data.cv_fold)
    and tested on one shared test set; cls errs on every 5th image, mean on every 10th."""
    for pool, wrong_every in (("mean", 10), ("cls", 5)):
        for seed in seeds:
            for fold in range(folds):
                overrides = ["task=vision", f"model.pool={pool}", f"seed={seed}", f"data.cv_folds={folds}",
                             f"data.cv_fold={fold}"]
                config = {"task": {"name": "vision"}, "model": {"name": "vit", "pool": pool}, "seed": seed,
                          "data": {"name": "digits", "cv_folds": folds, "cv_fold": fold}}
                n = 100 - fold // 2  # folds of unequal sizes, as 1438 images in 5 folds are
                correct = [(i + seed) % wrong_every != 0 for i in range(n)]
                results = {"task": "vision", "model": "vit", "seed": seed, "valid_accuracy": sum(correct) / n,
                           "accuracy": 1 - 1 / wrong_every}
                if num_train:
                    results["num_train_images"] = num_train
                folder = make_run(root / f"{pool}-s{seed}-fold{fold}", overrides, results, config=config)
                predictions_csv(folder / "valid_predictions.csv", correct, fold)
                predictions_csv(folder / "test_predictions.csv", [(i + seed + fold) % wrong_every != 0 for i in range(50)], 0)


def test_cross_validation_folds_are_one_variant_paired_fold_by_fold(tmp_path: Path) -> None:
    make_fold_runs(tmp_path)
    rows = by_variant(report.summarize(report.load_runs(tmp_path), "valid_accuracy"))
    assert set(rows) == {"model.pool=mean", "model.pool=cls"}  # the fold is not a variant
    assert rows["model.pool=cls"].seeds == ["0/fold0", "0/fold1", "0/fold2"]
    assert not report.warnings_for(list(rows.values()))  # three folds of one seed are not repeated seeds
    pairs = report.paired_runs(rows["model.pool=cls"].complete_runs, rows["model.pool=mean"].complete_runs)
    assert [(a.path.name, b.path.name) for a, b in pairs] == [(f"cls-s0-fold{k}", f"mean-s0-fold{k}") for k in range(3)]
    test = report.compare_to_best(list(rows.values()))[("vision", "model.pool=cls")]
    assert test.pairs == 3 and test.delta == pytest.approx(-0.1, abs=0.002) and test.n_items == 299
    assert test.cv_p_value == pytest.approx(sig.corrected_resampled_t(test.pair_deltas, 1 / 2))  # 3 folds: 1/(K-1)
    assert ", corrected t p=" in report.comparison_text(test, fraction=True)
    assert ", 3 folds: " in report.comparison_text(test, fraction=True)


def test_fold_runs_on_the_shared_test_set_are_paired_on_its_images(tmp_path: Path) -> None:
    make_fold_runs(tmp_path)
    rows = list(report.summarize(report.load_runs(tmp_path), "accuracy"))
    test = report.compare_to_best(rows)[("vision", "model.pool=cls")]
    assert test.n_items == 50 and test.cv_p_value is None  # one draw of the 50 test images for every pair


def test_repeated_folds_are_averaged_per_fold_and_the_recorded_training_size_is_used(tmp_path: Path) -> None:
    make_fold_runs(tmp_path, seeds=(0, 1), num_train=400)
    rows = list(report.summarize(report.load_runs(tmp_path), "valid_accuracy"))
    test = report.compare_to_best(rows)[("vision", "model.pool=cls")]
    assert test.pairs == 6
    by_fold = {}
    for delta, name in zip(test.pair_deltas, ["0/fold0", "0/fold1", "0/fold2", "1/fold0", "1/fold1", "1/fold2"]):
        by_fold.setdefault(name[-1], []).append(delta)
    means = [float(np.mean(v)) for v in by_fold.values()]
    fraction = np.mean([100 / 400, 100 / 400, 99 / 400, 100 / 400, 100 / 400, 99 / 400])  # each fold's n_valid / n_train
    assert test.cv_p_value == pytest.approx(sig.corrected_resampled_t(means, fraction))


def test_runs_with_different_fold_counts_are_not_compared(tmp_path: Path) -> None:
    make_fold_runs(tmp_path / "three")
    make_fold_runs(tmp_path / "four", folds=4)
    for run in (tmp_path / "four").iterdir():  # the same variants, the same fold numbers 0-2, another K
        if run.name.startswith("cls") and not run.name.endswith("fold3"):
            run.rename(tmp_path / "three" / ("k4-" + run.name))
    rows = by_variant(report.summarize(report.load_runs(tmp_path / "three"), "valid_accuracy"))
    tests = report.compare_to_best(list(rows.values()))
    assert any("different fold counts" in str(t) for t in tests.values())
