"""Compare attention variants: a table and two plots from a folder of runs.

    python -m attnlab.report multirun/2024-05-01_12-00-00             # writes report.* there
    python -m attnlab.report multirun/... --out reports/ --metric chrf

A *run* is any folder with a ``results.json``, a ``metrics.jsonl`` or a ``.hydra/`` folder (the
contract in :mod:`attnlab.runlog`); the report walks the whole tree below DIR, so a Hydra sweep
folder, a folder of sweeps or a hand-made folder of runs all work. A run without ``results.json``
was interrupted: it is listed as *incomplete* and left out of the statistics.

Runs are grouped into *variants*: same task and same config except the seed (and a few settings
that do not change what is learned, :data:`NOT_A_VARIANT`). A variant is named by the overrides
that differ between the variants of its task, e.g. ``attention=dot``. Each row gives the number
of seeds, the metric mean and *sample* standard deviation over seeds ("n/a" for one seed), the
parameter count and the mean training time. Tasks are reported separately.

Beside each variant: its **attention health** (on the test set: normalised entropy, mean largest
weight and share of rows peaking on the sink -- the source ``</s>`` in the decoding for
translation, the CLS key for vision --, mean over seeds; ``COLLAPSED`` when
:func:`attnlab.attention.health.collapsed` says so, ``COLLAPSED in layer1`` when it says so of
one layer's mean of heads only (``attention_health.layers``), ``CLS sink`` for a ViT whose patches mostly
peak on CLS), **BLEU by source length** for translation
(``bleu_by_length`` of results.json), and a **paired significance test against the best variant**
of its task (:mod:`attnlab.significance`: paired bootstrap over the test sentences or images,
seeds paired by seed number (and by fold under cross-validation, ``data.cv_folds``); BLEU/chrF
from each run's ``hypotheses.txt`` against the references of the test split the run used,
accuracy from ``test_predictions.csv``). A difference is called
*significant* only with p < 0.05, at least three seed pairs, and every pair pointing the same way;
folds of a cross-validation, compared on validation, also need p < 0.05 in the corrected resampled
t-test over the folds (Nadeau & Bengio 2003), since their training sets overlap.

Outputs (in DIR, or ``--out``): ``report.md``, ``report.csv``, ``metric_by_variant.png`` (bars with
error bars) and ``learning_curves.png`` (validation metric against step, mean over seeds); for the
attention gym (``data=synthetic``) also the scores per test length and ``accuracy_by_length.png``
(the training lengths shaded), and for ``data=placed_digits`` each attention map's pointing game
and deletion AUC.

The notebooks use the Python API::

    runs = load_runs("multirun/...")
    rows = summarize(runs)                  # list[Row], sorted best first within each task
    tests = compare_to_best(rows)           # {(task, variant): Comparison or why none}
    records(rows, tests)                    # list of flat dicts (pandas.DataFrame(records(rows)))
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import yaml

from attnlab import significance
from attnlab.attention.health import cls_sink, collapsed
from attnlab.runlog import TIME_CAP_STOP, read_metrics
from attnlab.errors import UserError

# The metrics reported by default, per task (the first one sorts the table and is plotted).
TASK_METRICS: dict[str, tuple[str, ...]] = {"translation": ("bleu", "chrf"), "vision": ("accuracy",)}
# Metrics where smaller is better (sorted ascending); every other metric sorts descending.
LOWER_IS_BETTER = ("loss", "ppl", "perplexity", "error", "wer", "ter")
# results.json fields that are not metrics (used to guess the metrics of an unknown task).
NOT_METRICS = {"seed", "num_params", "train_seconds", "torch_threads", "epoch", "step", "steps"}
# The attention-health fields shown in the report (results.json "attention_health"), per task: the
# third is the share of rows peaking on the sink to watch (a translation's </s>, a ViT's CLS key).
HEALTH_SHOWN: dict[str, tuple[str, ...]] = {
    "translation": ("entropy_norm", "max_weight", "eos_share"),
    "vision": ("entropy_norm", "max_weight", "cls_share"),
}
# Metrics with a paired test (per-item statistics saved by the run).
PAIRED_METRICS = ("bleu", "chrf", "accuracy", "valid_accuracy", "best_valid_accuracy")
# Where a vision run keeps the per-image predictions behind each accuracy metric.
PREDICTIONS = {
    "accuracy": "test_predictions.csv",
    "valid_accuracy": "valid_predictions.csv",  # the tested weights on validation
    "best_valid_accuracy": "valid_predictions.csv",  # the same weights unless the run averaged checkpoints
}
# scored on each run's own validation images: under cross-validation, each fold's (test is shared)
VALID_PREDICTIONS = {"valid_accuracy", "best_valid_accuracy"}
# Config keys that do not define a variant: runs that differ only in these are seeds of one variant.
# trainer.max_minutes is a safety cap that never shapes the schedule (a run it stopped is flagged
# by warnings_for); checkpoint: an evaluation's config says what it scored.
# data.cv_fold: the folds of a cross-validation are paired like seeds (Run.pair).
NOT_A_VARIANT = {"seed", "data.cv_fold", "resume", "data.cache_dir", "trainer.progress", "trainer.max_minutes", "checkpoint"}
# results.json fields that tell variants apart when a run has no saved config.
IDENTITY = ("model", "data", "attention", "mode")
OUTPUTS = ("report.md", "report.csv", "metric_by_variant.png", "learning_curves.png")


# ----------------------------------------------------------------------------- loading runs


@dataclass
class Run:
    """One run folder, as written by ``python -m attnlab`` (see :mod:`attnlab.runlog`)."""

    path: Path
    config: dict[str, Any]  # .hydra/config.yaml ({} when absent)
    overrides: list[str]  # .hydra/overrides.yaml ([] when absent)
    results: Optional[dict[str, Any]]  # results.json; None = incomplete (interrupted or unreadable)
    metrics: list[dict[str, Any]]  # metrics.jsonl records ("kind": "train" or "valid")
    problem: str = ""  # why the run is incomplete

    @property
    def complete(self) -> bool:
        return self.results is not None

    @property
    def task(self) -> str:
        return str(self._field("task", "task.name") or "unknown")

    @property
    def seed(self) -> Any:
        return self._field("seed", "seed")

    @property
    def cv_fold(self) -> Optional[int]:
        """The cross-validation fold this run validated on (``data.cv_folds`` > 1), else None."""
        return int(self._field("cv_fold", "data.cv_fold") or 0) if self.cv_folds is not None else None

    @property
    def cv_folds(self) -> Optional[int]:
        """K of a K-fold cross-validation run (``data.cv_folds`` > 1), else None."""
        folds = self._field("cv_folds", "data.cv_folds")
        return int(folds) if folds is not None and int(folds) > 1 else None

    @property
    def pair(self) -> Any:
        """What pairs this run with a run of another variant: its seed, and its fold under
        cross-validation, e.g. ``0/fold2``."""
        return self.seed if self.cv_fold is None else f"{self.seed}/fold{self.cv_fold}"

    def value(self, metric: str) -> Optional[float]:
        """The final value of ``metric`` in results.json; None when absent or not a finite number."""
        return _finite(self.results.get(metric)) if self.results else None

    def nested(self, key: str) -> dict[str, Any]:
        """A dict-valued results.json field (``attention_health``, ``bleu_by_length``); {} when absent."""
        value = self.results.get(key) if self.results else None
        return value if isinstance(value, dict) else {}

    def valid_records(self) -> list[dict[str, Any]]:
        return self.records("valid")

    def records(self, kind: str) -> list[dict[str, Any]]:
        """The metrics.jsonl records of one kind: "train" or "valid"."""
        return [r for r in self.metrics if r.get("kind") == kind]

    def _field(self, result_key: str, config_key: str) -> Any:
        """A field from results.json, else the config, else the overrides."""
        if self.results and self.results.get(result_key) is not None:
            return self.results[result_key]
        return self._config(config_key)

    def _config(self, key: str) -> Any:
        """A config value: from .hydra/config.yaml, else the overrides."""
        return self._flat_config.get(key)

    @cached_property
    def _flat_config(self) -> dict[str, Any]:
        """The config as dotted keys, flattened once (seed and fold are read for every pairing)."""
        return flatten(self.config) if self.config else parse_overrides(self.overrides)


def is_run_dir(path: Path) -> bool:
    """A folder that holds a run: its results, its metrics or Hydra's record of its config."""
    return any((path / name).exists() for name in ("results.json", "metrics.jsonl", ".hydra/overrides.yaml"))


def find_run_dirs(root: Path) -> list[Path]:
    """Every run folder below ``root`` (``root`` itself included), sorted; runs do not nest."""
    found = []
    for current, dirs, _files in os.walk(root):
        here = Path(current)
        if is_run_dir(here):
            found.append(here)
            dirs.clear()
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(found)


def load_run(path: Path) -> Run:
    """Read one run folder; a missing or unreadable results.json makes it incomplete, not an error."""
    path = Path(path)
    results, problem = _read_results(path / "results.json")
    evaluated = (results or {}).get("evaluated_config")  # mode=evaluate: the checkpoint's config as scored
    return Run(
        path=path,
        config=evaluated if isinstance(evaluated, dict) else _read_yaml(path / ".hydra" / "config.yaml") or {},
        overrides=[str(o) for o in _read_yaml(path / ".hydra" / "overrides.yaml") or []],
        results=results,
        metrics=read_metrics(path / "metrics.jsonl"),
        problem=problem,
    )


def load_runs(root: str | os.PathLike[str]) -> list[Run]:
    """All runs below ``root``; :class:`UserError` when ``root`` is missing or holds no run."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; give a sweep folder (e.g. multirun/<date>) or a folder of runs")
    runs = [load_run(p) for p in find_run_dirs(root)]
    if not runs:
        raise UserError(f"no runs in {root} (a run folder has a results.json, metrics.jsonl or .hydra/)")
    return runs


def _read_results(path: Path) -> tuple[Optional[dict[str, Any]], str]:
    if not path.is_file():
        return None, "no results.json (interrupted or still running)"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return None, f"unreadable results.json ({err})"
    if not isinstance(results, dict):
        return None, "results.json is not a JSON object"
    return results, ""


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None


def _finite(value: Any) -> Optional[float]:
    """``value`` as a float when it is a finite number (bools and "nan" strings are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def parse_overrides(overrides: Iterable[str]) -> dict[str, str]:
    """``["+a.b=1", "seed=0"]`` -> ``{"a.b": "1", "seed": "0"}`` (Hydra's prefixes dropped)."""
    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep:
            parsed[key.lstrip("+~")] = value
    return parsed


# ----------------------------------------------------------------------------- statistics


@dataclass
class Stat:
    """Mean and sample standard deviation of one quantity over the seeds of a variant."""

    values: list[float]
    fraction: bool = False  # a value in [0, 1] such as accuracy: four decimals instead of two

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> Optional[float]:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> Optional[float]:
        """Sample standard deviation (n - 1 in the denominator); None below two values."""
        return statistics.stdev(self.values) if self.n >= 2 else None

    def text(self) -> str:
        """``"23.41 ± 0.52"``, ``"23.41 ± n/a"`` for one value, ``"n/a"`` for none."""
        if self.mean is None:
            return "n/a"
        digits = 4 if self.fraction else 2
        std = "n/a" if self.std is None else f"{self.std:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {std}"


# Metrics that are fractions in [0, 1]; the others (BLEU, chrF, losses) print with two decimals.
FRACTION_METRICS = {"accuracy", "valid_accuracy", "best_valid_accuracy", "exact_match", "token_accuracy", "alignment_accuracy",
                    "alignment_error_rate", "best_head_alignment_accuracy", "pointing_best_score"}
# The attention gym (attnlab.data.synthetic): runs that report these are scored by them, not by BLEU.
GYM_METRICS = ("exact_match", "token_accuracy", "alignment_accuracy")
# The per-length columns of the gym's table and plot (results.json "by_length").
GYM_BY_LENGTH = ("exact_match", "alignment_accuracy")


# ----------------------------------------------------------------------------- summary rows


@dataclass
class Row:
    """One variant: its runs (all seeds, incomplete ones included) and their statistics."""

    task: str
    variant: str
    runs: list[Run]
    metric_names: list[str]  # the first one sorts the table and is plotted
    stats: dict[str, Stat] = field(default_factory=dict)

    @property
    def complete_runs(self) -> list[Run]:
        return [r for r in self.runs if r.complete]

    @property
    def n_seeds(self) -> int:
        return len(self.complete_runs)

    @property
    def incomplete(self) -> int:
        return len(self.runs) - self.n_seeds

    @property
    def seeds(self) -> list[Any]:
        """The seeds of the complete runs (with their folds under cross-validation: :attr:`Run.pair`)."""
        return sorted((r.pair for r in self.complete_runs), key=str)

    @property
    def primary(self) -> Stat:
        return self.stats[self.metric_names[0]]

    @property
    def train_seconds(self) -> Stat:
        return _stat(self.complete_runs, "train_seconds")

    @property
    def num_params(self) -> list[int]:
        """The distinct parameter counts of the complete runs (one, unless the runs disagree)."""
        return sorted({int(v) for r in self.complete_runs if (v := r.value("num_params")) is not None})

    def health(self) -> dict[str, Stat]:
        """Mean over seeds of each attention-health field (empty when the runs report none)."""
        runs = [r for r in self.complete_runs if r.nested("attention_health")]
        if not runs:
            return {}
        return {k: Stat([v for r in runs if (v := _finite(r.nested("attention_health").get(k))) is not None])
                for k in HEALTH_SHOWN.get(self.task, HEALTH_SHOWN["translation"])}

    def health_text(self) -> str:
        """``"0.41 / 0.52 / 3%"`` (normalised entropy / largest weight / rows peaking on the sink:
        </s> for translation, CLS for vision; without a CLS token, ``model.pool=mean``, the share
        is left out), ``COLLAPSED`` appended when the means look collapsed; "n/a" without attention
        health. Where a gold alignment says the sharp attention is right (the gym: alignment
        accuracy >= 0.5), it is marked ``aligned`` instead: one-hot weights on the right position
        are not a collapse. A ViT whose patch rows mostly peak on CLS is marked ``CLS sink``, not
        collapsed: a known habit of ViTs that need not hurt them (Darcet et al. 2024)."""
        stats = self.health()
        if not stats or any(stats[k].mean is None for k in ("entropy_norm", "max_weight")):
            return "n/a"
        means = {k: st.mean for k, st in stats.items() if st.mean is not None}
        share = next((means[k] for k in ("eos_share", "cls_share") if k in means), None)
        text = f"{means['entropy_norm']:.2f} / {means['max_weight']:.2f}"
        text += "" if share is None else f" / {100 * share:.0f}%"
        layers = self.collapsed_layers()
        if not collapsed(means) and not layers:
            return text + (" CLS sink" if cls_sink(means) else "")
        aligned = _stat(self.complete_runs, "alignment_accuracy").mean
        if aligned is not None and aligned >= 0.5:
            return text + " aligned"
        return text + (" COLLAPSED" if collapsed(means) else " COLLAPSED in " + ", ".join(layers))

    def collapsed_layers(self) -> list[str]:
        """The layers (``attention_health.layers``) whose ``mean`` entry, averaged over seeds,
        looks collapsed by :func:`~attnlab.attention.health.collapsed`: a Transformer's decoder
        layer whose mean of heads sits on </s> is hidden by the flat fields, which describe the
        last layer only. (A ViT layer's ``mean`` is the mean of its heads' numbers.)"""
        runs = [layers for r in self.complete_runs if isinstance(layers := r.nested("attention_health").get("layers"), dict)]
        out = []
        for name in dict.fromkeys(n for layers in runs for n in layers):
            means = {}
            for key in ("max_weight", "eos_share"):
                values = [v for layers in runs if (v := _finite(((layers.get(name) or {}).get("mean") or {}).get(key))) is not None]
                if values:
                    means[key] = statistics.fmean(values)
            if "max_weight" in means and collapsed(means):
                out.append(name)
        return out

    def length_buckets(self) -> dict[str, Stat]:
        """BLEU by source-length bucket (``bleu_by_length``), mean over seeds, buckets in order."""
        buckets = list(dict.fromkeys(b for r in self.complete_runs for b in r.nested("bleu_by_length")))
        out = {}
        for b in buckets:
            values = [_finite((r.nested("bleu_by_length").get(b) or {}).get("bleu")) for r in self.complete_runs]
            out[b] = Stat([v for v in values if v is not None])
        return out

    def by_length(self, metric: str) -> dict[int, Stat]:
        """The gym's ``by_length[n][metric]``, mean over seeds, by test length (ascending)."""
        lengths = sorted({int(n) for r in self.complete_runs for n in r.nested("by_length")})
        out = {}
        for n in lengths:
            values = [_finite((r.nested("by_length").get(str(n)) or {}).get(metric)) for r in self.complete_runs]
            if any(v is not None for v in values):
                out[n] = Stat([v for v in values if v is not None], fraction=True)
        return out

    def train_range(self) -> Optional[tuple[int, int]]:
        """The gym's training lengths [min, max] of the first run that reports them."""
        found = [r.results["train_len"] for r in self.complete_runs if r.results and r.results.get("train_len")]
        return (int(found[0][0]), int(found[0][1])) if found else None

    def map_scores(self, kind: str) -> dict[str, Stat]:
        """Placed digits: ``pointing_game`` or ``deletion_auc`` per attention map, mean over seeds."""
        runs = [r for r in self.complete_runs if r.nested(kind)]
        names = list(dict.fromkeys(k for r in runs for k in r.nested(kind)))
        return {k: Stat([v for r in runs if (v := _finite(r.nested(kind).get(k))) is not None], fraction=True)
                for k in names}

    def num_params_text(self, sep: str = ",") -> str:
        counts = [f"{c:,}".replace(",", sep) for c in self.num_params]
        return "-".join(counts) if counts else "n/a"


def _stat(runs: Sequence[Run], metric: str) -> Stat:
    return Stat([v for r in runs if (v := r.value(metric)) is not None], fraction=metric in FRACTION_METRICS)


def summarize(runs: Sequence[Run], metric: str | Sequence[str] | None = None) -> list[Row]:
    """Group runs into variants per task and compute their statistics.

    ``metric`` names the metric(s) to report (the first sorts the rows); by default each task's
    :data:`TASK_METRICS`. Rows come grouped by task (alphabetically) and, within a task, best
    first by the first metric; variants without a value come last.
    """
    chosen = [metric] if isinstance(metric, str) else list(metric or [])
    by_task: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_task[run.task].append(run)
    rows: list[Row] = []
    for task in sorted(by_task):
        names = chosen or default_metrics(task, by_task[task])
        groups = group_variants(by_task[task])
        for variant, members in zip(variant_names(groups), groups):
            rows.append(Row(task, variant, members, names, {m: _stat(members, m) for m in names}))
    return sort_rows(rows)


def default_metrics(task: str, runs: Sequence[Run]) -> list[str]:
    """The task's usual metrics found in its results, else every numeric result field."""
    present = {k for r in runs if r.results for k, v in r.results.items() if _finite(v) is not None}
    done = [r for r in runs if r.results]
    if done and all("exact_match" in r.results for r in done):  # the attention gym
        return [m for m in GYM_METRICS if m in present]
    usual = [m for m in TASK_METRICS.get(task, ()) if m in present]
    return usual or sorted(present - NOT_METRICS) or list(TASK_METRICS.get(task, ("loss",)))


def sort_rows(rows: list[Row]) -> list[Row]:
    """By task, then best first by each row's first metric, then by name."""

    def key(row: Row) -> tuple[Any, ...]:
        mean = row.primary.mean
        if mean is None:
            return (row.task, 1, 0.0, row.variant)
        sign = 1.0 if lower_is_better(row.metric_names[0]) else -1.0
        return (row.task, 0, sign * mean, row.variant)

    return sorted(rows, key=key)


def lower_is_better(metric: str) -> bool:
    return any(word in metric.lower() for word in LOWER_IS_BETTER)


def variant_settings(run: Run) -> dict[str, str]:
    """What defines the run's variant, minus :data:`NOT_A_VARIANT`, values as JSON text.

    The run's config; for a run without ``.hydra/config.yaml`` (a hand-made folder), the
    identity fields of its results.json (:data:`IDENTITY`) and its overrides.
    """
    if run.config:
        flat = flatten(run.config)
    else:
        flat = {k: run.results[k] for k in IDENTITY if run.results and k in run.results}
        flat.update(parse_overrides(run.overrides))
    return {k: json.dumps(v, sort_keys=True) for k, v in flat.items() if k not in NOT_A_VARIANT}


def group_variants(runs: Sequence[Run]) -> list[list[Run]]:
    """Runs with equal :func:`variant_settings`, in the order of their first run."""
    groups: dict[tuple[tuple[str, str], ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(sorted(variant_settings(run).items())), []).append(run)
    return list(groups.values())


def variant_names(groups: Sequence[Sequence[Run]]) -> list[str]:
    """Name each group by the overrides that differ between the groups, e.g. ``attention=dot``.

    When the overrides do not tell the groups apart (runs from different sweeps, hand-made runs),
    the differing config keys name them instead (``attention.score=dot``). A lone group is named
    by all its overrides. Names are unique.
    """
    overrides = [_variant_overrides(g) for g in groups]
    names = _differences(overrides) if len(groups) > 1 else [_join(o) for o in overrides]
    if len(set(names)) < len(names):
        names = _differences([{k: _plain(v) for k, v in variant_settings(g[0]).items()} for g in groups])
    return _dedupe([name or "defaults" for name in names])


def _variant_overrides(runs: Sequence[Run]) -> dict[str, str]:
    """The overrides of a group's runs (the first run's value where they disagree), minus the seed."""
    merged: dict[str, str] = {}
    for run in runs:
        for key, value in parse_overrides(run.overrides).items():
            if key not in NOT_A_VARIANT:
                merged.setdefault(key, value)
    return merged


def _differences(settings: Sequence[dict[str, str]]) -> list[str]:
    """For each dict, ``key=value`` for the keys whose value is not the same in all dicts."""
    keys = list(dict.fromkeys(k for s in settings for k in s))
    differing = [k for k in keys if len({s.get(k) for s in settings}) > 1]
    return [_join({k: s[k] for k in differing if k in s}) for s in settings]


def _join(settings: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in settings.items())


def _plain(json_value: str) -> str:
    value = json.loads(json_value)
    return value if isinstance(value, str) else json.dumps(value)


def _dedupe(names: list[str]) -> list[str]:
    seen: Counter[str] = Counter()
    unique = []
    for name in names:
        seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return unique


def common_overrides(rows: Sequence[Row]) -> str:
    """The overrides every variant of these rows shares (the sweep's fixed settings)."""
    settings = [_variant_overrides(r.runs) for r in rows]
    shared = {k: v for k, v in settings[0].items() if all(s.get(k) == v for s in settings[1:])} if settings else {}
    return _join(shared)


def warnings_for(rows: Sequence[Row]) -> list[str]:
    """Things that make a comparison less trustworthy: fewer than 3 seeds, repeated seeds,
    disagreeing parameter counts, runs cut short by the time cap."""
    notes = []
    few = [r for r in rows if 0 < r.n_seeds < significance.MIN_SEEDS]
    if few and len(rows) > 1:
        names = ", ".join(f"{r.variant} ({r.n_seeds})" for r in few)
        notes.append(f"fewer than {significance.MIN_SEEDS} seeds, so no difference with them is called significant: {names}")
    for row in rows:
        repeated = sorted((str(s) for s, c in Counter(map(str, row.seeds)).items() if c > 1))
        if repeated:
            notes.append(f"{row.task} / {row.variant}: seed {', '.join(repeated)} appears in several runs")
        if len(row.num_params) > 1:
            notes.append(f"{row.task} / {row.variant}: the runs have different parameter counts")
        capped = [str(r.pair) for r in row.complete_runs if str(r.results.get("stop_reason", "")).startswith(TIME_CAP_STOP)]
        if capped:
            notes.append(f"{row.task} / {row.variant}: seed {', '.join(capped)} stopped on the time cap "
                         "(trainer.max_minutes) before its step budget; rerun it with trainer.max_minutes=0")
    return notes


# ----------------------------------------------------------------------------- significance


def compare_to_best(
    rows: Sequence[Row], n_samples: int = significance.N_SAMPLES
) -> dict[tuple[str, str], significance.Comparison | str]:
    """Each variant against the best of its task (the first row) on the task's first metric:
    a :class:`attnlab.significance.Comparison` (delta = this variant minus the best), or a
    sentence saying why no test was possible. The best row itself has no entry."""
    out: dict[tuple[str, str], significance.Comparison | str] = {}
    references: dict[str, Any] = {}  # test-split references by data config, loaded once
    for task in dict.fromkeys(r.task for r in rows):
        task_rows = [r for r in rows if r.task == task and r.n_seeds]
        for row in task_rows[1:]:
            try:
                out[(task, row.variant)] = _compare(row, task_rows[0], references, n_samples)
            except _NoTest as why:
                out[(task, row.variant)] = str(why)
    return out


class _NoTest(Exception):
    """Why two variants cannot be compared item by item."""


def paired_runs(a: Sequence[Run], b: Sequence[Run]) -> list[tuple[Run, Run]]:
    """Runs of two variants paired by seed, and by fold under cross-validation (:attr:`Run.pair`;
    pairs present in both, in order)."""
    by_pair = {str(r.pair): r for r in b}
    return [(r, by_pair[str(r.pair)]) for r in sorted(a, key=lambda r: str(r.pair)) if str(r.pair) in by_pair]


def _compare(row: Row, best: Row, references: dict[str, Any], n_samples: int) -> significance.Comparison:
    metric = row.metric_names[0]
    if metric not in PAIRED_METRICS:
        raise _NoTest(f"no paired test for {metric}")
    pairs = paired_runs(row.complete_runs, best.complete_runs)
    if not pairs:
        raise _NoTest("no seed in common with the best variant")
    if metric in PREDICTIONS:
        a, b = zip(*((_correct(x, PREDICTIONS[metric]), _correct(y, PREDICTIONS[metric])) for x, y in pairs))
        if any(len(x) != len(y) or x[1] != y[1] for x, y in zip(a, b)):
            raise _NoTest("the runs were tested on different images")
        fraction = _fold_fraction(pairs, [len(x[0]) for x in a]) if metric in VALID_PREDICTIONS else None
        return significance.compare_accuracy(
            [x[0] for x in a], [y[0] for y in b], n_samples, shared_items=fraction is None, test_fraction=fraction,
            folds=[x.cv_fold for x, _ in pairs] if fraction is not None else None,
        )
    streams = _references(pairs[0][0], references)
    # the same sentences and references, whichever config named them (an evaluation of a model
    # trained on other data scored on this split compares item by item)
    if any(_references(run, references) != streams for pair in pairs for run in pair):
        raise _NoTest("the runs were tested on different test splits")
    hyps = [(_hypotheses(x, len(streams[0])), _hypotheses(y, len(streams[0]))) for x, y in pairs]
    return significance.compare_translations([h for h, _ in hyps], [h for _, h in hyps], streams, metric, n_samples)


def _fold_fraction(pairs: Sequence[tuple[Run, Run]], n_valid: Sequence[int]) -> Optional[float]:
    """A fold's n_valid/n_train when the pairs are cross-validation folds (each pair validated on
    its own images), for the corrected resampled t-test; None when they are not. Runs that do not
    record their training images (older runs) count 1/(K-1)."""
    folds = {run.cv_folds for pair in pairs for run in pair}
    if folds == {None}:
        return None
    if len(folds) > 1:
        raise _NoTest(f"the runs were cross-validated with different fold counts ({', '.join(map(str, folds))})")
    k = int(folds.pop())
    ratios = [n / float(x.results["num_train_images"]) if x.results.get("num_train_images") else 1.0 / (k - 1)
              for (x, _), n in zip(pairs, n_valid)]
    return statistics.mean(ratios)


def _correct(run: Run, name: str) -> tuple[list[bool], list[int]]:
    """Per-image correctness and the labels of a vision run's predictions file ``name``."""
    path = run.path / name
    if not path.is_file():
        raise _NoTest(f"{path.name} missing in {run.path.name} (made before runs saved predictions?)")
    with path.open(encoding="utf-8", newline="") as f:
        table = list(csv.DictReader(f))
    labels = [int(r["label"]) for r in table]
    return [int(r["predicted"]) == y for r, y in zip(table, labels)], labels


def _hypotheses(run: Run, n: int) -> list[str]:
    path = run.path / "hypotheses.txt"
    if not path.is_file():
        raise _NoTest(f"hypotheses.txt missing in {run.path.name}")
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    if len(lines) != n:
        raise _NoTest(f"{run.path.name}: {len(lines)} hypotheses for {n} test sentences")
    return lines


def _data_key(run: Run) -> str:
    return json.dumps(run.config.get("data"), sort_keys=True)


def _references(run: Run, cache: dict[str, Any]) -> list[list[Optional[str]]]:
    """The reference streams of the test split the run was scored on, rebuilt from its config."""
    if not run.config.get("data"):
        raise _NoTest("the runs have no saved config (.hydra/config.yaml) to find their test split")
    key = _data_key(run)
    if key not in cache:
        from omegaconf import OmegaConf

        from attnlab.config import TextDataConfig
        from attnlab.data.text import load_corpus

        try:
            data = OmegaConf.merge(OmegaConf.structured(TextDataConfig), run.config["data"])
            cache[key] = load_corpus(data).test.reference_streams()
        except Exception as err:  # a corpus that is not there (any more): say so, report the rest
            cache[key] = _NoTest(f"test split not available ({' '.join(str(err).split())[:100]})")
    if isinstance(cache[key], _NoTest):
        raise cache[key]
    return cache[key]


def comparison_text(test: significance.Comparison | str | None, fraction: bool = False) -> str:
    """``"-2.10, p=0.004, 3 seeds: significant"``; the reason when there is no test; "best"."""
    if test is None:
        return "best"
    if isinstance(test, str):
        return f"n/a ({test})"
    digits = 4 if fraction else 2
    seeds = f"{test.pairs} {test.pair_unit}{'s' if test.pairs > 1 else ''}"
    across = "" if test.cv_p_value is None else f", corrected t p={test.cv_p_value:.3f}"
    return f"{test.delta:+.{digits}f}, p={test.p_value:.3f}{across}, {seeds}: {significance.verdict(test)}"


# ----------------------------------------------------------------------------- tables


def records(
    rows: Sequence[Row], tests: Optional[dict[tuple[str, str], significance.Comparison | str]] = None
) -> list[dict[str, Any]]:
    """One flat dict per row (the CSV's columns); numbers are raw, "n/a" where undefined. With
    ``tests`` (:func:`compare_to_best`), the comparison with the best variant of the task."""
    metric_names = list(dict.fromkeys(m for r in rows for m in r.metric_names))
    table = []
    for row in rows:
        record: dict[str, Any] = {
            "task": row.task,
            "variant": row.variant,
            "n_seeds": row.n_seeds,
            "incomplete": row.incomplete,
            "seeds": " ".join(map(str, row.seeds)),
        }
        for name in metric_names:
            stat = row.stats.get(name)
            record[f"{name}_mean"] = _na(stat.mean if stat else None)
            record[f"{name}_std"] = _na(stat.std if stat else None)
        for name, stat in row.health().items():
            record[f"attention_{name}"] = _na(stat.mean)
        if row.health():
            record["attention_collapsed"] = "COLLAPSED" in row.health_text()
        if row.task == "vision" and row.health():
            record["attention_cls_sink"] = "CLS sink" in row.health_text()
        for bucket, stat in row.length_buckets().items():
            record[f"bleu_len_{bucket}"] = _na(stat.mean)
        for metric in GYM_BY_LENGTH:
            for n, stat in row.by_length(metric).items():
                record[f"{metric}_len_{n}"] = _na(stat.mean)
        for kind in ("pointing_game", "deletion_auc"):
            for name, stat in row.map_scores(kind).items():
                record[f"{kind}_{name}"] = _na(stat.mean)
        if tests is not None:
            test = tests.get((row.task, row.variant))
            ok = isinstance(test, significance.Comparison)
            record["vs_best_delta"] = test.delta if ok else "n/a"
            record["vs_best_p"] = test.p_value if ok else "n/a"
            record["vs_best_seed_pairs"] = test.pairs if ok else "n/a"
            record["vs_best_cv_p"] = _na(test.cv_p_value) if ok else "n/a"
            record["vs_best"] = significance.verdict(test) if ok else ("best" if test is None else f"n/a ({test})")
        record["num_params"] = row.num_params_text(sep="")
        record["train_seconds_mean"] = _na(row.train_seconds.mean)
        table.append(record)
    return table


def _na(value: Optional[float]) -> Any:
    return "n/a" if value is None else value


def write_csv(rows: Sequence[Row], path: Path, tests: Optional[dict[tuple[str, str], Any]] = None) -> None:
    table = records(rows, tests)
    fields = list(dict.fromkeys(k for record in table for k in record))
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="n/a")
        writer.writeheader()
        writer.writerows(table)


def markdown(
    rows: Sequence[Row], runs: Sequence[Run], root: Path, images: Sequence[str] = (),
    tests: Optional[dict[tuple[str, str], Any]] = None,
) -> str:
    """The report: one table per task, BLEU by length, the plots, warnings and the incomplete runs."""
    lines = [f"# Attention variants: {root.resolve().name}", ""]
    n_incomplete = sum(not r.complete for r in runs)
    lines += [
        f"{len(runs)} runs ({n_incomplete} incomplete) in {len(rows)} variants. "
        "Metrics: mean ± sample standard deviation over seeds (n/a for one seed). "
        "*vs best*: the difference to the task's best variant on the first metric, paired bootstrap "
        f"over the test items ({significance.N_SAMPLES} resamples, seeds paired by seed); *significant* needs "
        f"p < {significance.ALPHA}, {significance.MIN_SEEDS}+ seed pairs and every pair the same way "
        f"(cross-validation folds on validation: also p < {significance.ALPHA} in the corrected resampled t-test "
        "over the folds, Nadeau & Bengio 2003). "
        "*attention*: normalised entropy / mean largest weight / rows peaking on the sink, of the test set: "
        "for translation the decoding's steps on the source `</s>` (a Transformer's last layer, mean of heads), "
        "for vision the patch rows of every layer and head on the CLS key (no share without CLS); "
        "a mark *in layerN* comes from that layer's mean of heads alone.",
        "",
    ]
    for task in dict.fromkeys(r.task for r in rows):
        lines += _task_section(task, [r for r in rows if r.task == task], tests)
    lines += [f"![{Path(name).stem}]({name})" for name in images]
    if notes := warnings_for(rows):
        lines += ["", "## Warnings", ""] + [f"- {note}" for note in notes]
    incomplete = [r for r in runs if not r.complete]
    if incomplete:
        lines += ["", "## Incomplete runs", ""]
        lines += [f"- `{_relative(r.path, root)}`: {r.problem}" for r in incomplete]
    return "\n".join(lines) + "\n"


def _task_section(task: str, rows: Sequence[Row], tests: Optional[dict[tuple[str, str], Any]] = None) -> list[str]:
    metric_names = rows[0].metric_names
    health = any(r.health() for r in rows)
    header = ["variant", "seeds", *metric_names]
    header += ["vs best"] if tests is not None else []
    header += ["attention"] if health else []
    header += ["params", "train time (s)", "incomplete"]
    lines = [f"## {task}", ""]
    if shared := common_overrides(rows):
        lines += [f"Common settings: `{shared}`", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for row in rows:
        time = row.train_seconds.mean
        cells = [f"`{row.variant}`", str(row.n_seeds), *(row.stats[m].text() for m in metric_names)]
        if tests is not None:
            key = (row.task, row.variant)
            first = row.n_seeds and row is next(r for r in rows if r.n_seeds)
            text = comparison_text(None if first else tests.get(key, "no finished run"),
                                   fraction=metric_names[0] in FRACTION_METRICS)
            cells.append(text)
        cells += [row.health_text()] if health else []
        cells += [row.num_params_text(), "n/a" if time is None else f"{time:.1f}", str(row.incomplete)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines + _length_section(rows) + _gym_length_section(rows) + _pointing_section(rows)


def _gym_length_section(rows: Sequence[Row]) -> list[str]:
    """The gym's scores per test length (mean ± std over seeds); lengths outside training marked *."""
    lines: list[str] = []
    for metric in GYM_BY_LENGTH:
        lengths = sorted({n for r in rows for n in r.by_length(metric)})
        if not lengths:
            continue
        ranges = {r.train_range() for r in rows if r.train_range()}
        lo, hi = next(iter(ranges)) if len(ranges) == 1 else (None, None)
        names = [f"{n}" if lo is None or lo <= n <= hi else f"{n}*" for n in lengths]
        note = f"; * = outside the training lengths {lo}-{hi}" if lo is not None else ""
        lines += [f"{metric.replace('_', ' ')} by test length{note}:", ""]
        lines += _variant_table(rows, names, lengths, lambda row: row.by_length(metric))
    return lines


def _variant_table(rows: Sequence[Row], header: Sequence[str], keys: Sequence[Any],
                   stats_of: Callable[[Row], dict[Any, Any]]) -> list[str]:
    """A markdown table: one line per variant, one column per key (mean ± std, or n/a)."""
    lines = ["| variant | " + " | ".join(map(str, header)) + " |", "|---|" + "---:|" * len(keys)]
    for row in rows:
        stats = stats_of(row)
        lines.append("| " + " | ".join([f"`{row.variant}`", *(stats[k].text() if k in stats else "n/a" for k in keys)]) + " |")
    return lines + [""]


def _pointing_section(rows: Sequence[Row]) -> list[str]:
    """Placed digits: pointing game and deletion AUC of each attention map (mean ± std over seeds)."""
    lines: list[str] = []
    for kind, what in (("pointing_game", "pointing game (share of images whose map peaks on the digit; higher is better)"),
                       ("deletion_auc", "deletion AUC (true-class probability as the map's patches go; lower is better)")):
        maps = list(dict.fromkeys(k for r in rows for k in r.map_scores(kind)))
        if not maps:
            continue
        lines += [f"{what}:", ""] + _variant_table(rows, maps, maps, lambda row: row.map_scores(kind))
    return lines


def _length_section(rows: Sequence[Row]) -> list[str]:
    """BLEU by source length (words), mean ± std over seeds, with each bucket's sentence count."""
    buckets = list(dict.fromkeys(b for r in rows for b in r.length_buckets()))
    if not buckets:
        return []
    counts = {}
    for b in buckets:
        found = [r.nested("bleu_by_length")[b].get("sentences") for row in rows for r in row.complete_runs
                 if b in r.nested("bleu_by_length")]
        counts[b] = found[0] if found else "?"
    header = [f"{b} words ({counts[b]})" for b in buckets]
    lines = ["BLEU by source length (sentences per bucket in brackets; each bucket scored on its own):", ""]
    return lines + _variant_table(rows, header, buckets, Row.length_buckets)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- plots


def plot_metric_by_variant(rows: Sequence[Row], path: Path) -> None:
    """Horizontal bars (one panel per task): first metric's mean over seeds, error bar = sample std."""
    tasks = list(dict.fromkeys(r.task for r in rows))
    heights = [max(1.5, 0.45 * sum(r.task == t for r in rows) + 1.0) for t in tasks]
    fig, axes = _figure(len(tasks), height=sum(heights), height_ratios=heights)
    for ax, task in zip(axes, tasks):
        task_rows = [r for r in rows if r.task == task and r.primary.mean is not None][::-1]  # best on top
        metric = next(r.metric_names[0] for r in rows if r.task == task)
        ax.barh(
            [f"{r.variant} (n={r.primary.n})" for r in task_rows],
            [r.primary.mean for r in task_rows],
            xerr=[r.primary.std or 0.0 for r in task_rows],
            capsize=4,
            color="tab:blue",
            alpha=0.8,
        )
        ax.set_xlabel(f"{metric} (mean ± sample std over seeds)")
        ax.set_title(task)
        if not task_rows:
            ax.text(0.5, 0.5, "no finished run", ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=100)


def plot_learning_curves(rows: Sequence[Row], path: Path) -> None:
    """Validation metric against step, one line per variant: the mean over seeds, a band of ± std.

    The seeds' validations are aligned by their order (the k-th validation of each seed); a
    variant's curve stops at its shortest seed, so every point averages the same seeds. Runs
    that validated once at most (a short budget: under one epoch) get their training loss instead.
    """
    tasks = list(dict.fromkeys(r.task for r in rows))
    fig, axes = _figure(len(tasks), height=3.5 * len(tasks))
    for ax, task in zip(axes, tasks):
        task_rows = [r for r in rows if r.task == task]
        metric, kind = curve_source(task_rows)
        for row in task_rows:
            curve = mean_curve(row.runs, metric, kind)
            if curve:
                steps, means, stds = zip(*curve)
                seeds = curve_seeds(row.runs, metric, kind)
                (line,) = ax.plot(steps, means, marker=".", label=f"{row.variant} (n={seeds})")
                low = [m - s for m, s in zip(means, stds)]
                high = [m + s for m, s in zip(means, stds)]
                ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15)
        ax.set_title(task)
        ax.set_xlabel("step")
        ax.set_ylabel(f"{'validation' if kind == 'valid' else 'training'} {metric}")
        if ax.lines:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no records to draw", ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=100)


def curve_source(rows: Sequence[Row]) -> tuple[str, str]:
    """``(metric, kind)`` of the learning curves: the validation metric of :func:`curve_metric`,
    or the training loss when no run validated twice (a single point is no curve)."""
    if all(len(run.valid_records()) < 2 for row in rows for run in row.runs):
        return "loss", "train"
    return curve_metric(rows), "valid"


def curve_metric(rows: Sequence[Row]) -> str:
    """The rows' first metric if validation records carry it, else the validation loss."""
    wanted = rows[0].metric_names[0]
    has = {k for r in rows for run in r.runs for rec in run.valid_records() for k in rec}
    return wanted if wanted in has or "loss" not in has else "loss"


def mean_curve(runs: Sequence[Run], metric: str, kind: str = "valid") -> list[tuple[float, float, float]]:
    """``(mean step, mean value, sample std or 0)`` of the k-th record of ``kind`` (validation or
    training log) over the runs that have one."""
    curves = [c for c in (_curve(run, metric, kind) for run in runs) if c]
    if not curves:
        return []
    points = []
    for k in range(min(len(c) for c in curves)):
        steps, values = [c[k][0] for c in curves], [c[k][1] for c in curves]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        points.append((statistics.fmean(steps), statistics.fmean(values), std))
    return points


def curve_seeds(runs: Sequence[Run], metric: str, kind: str = "valid") -> int:
    """How many runs a :func:`mean_curve` averages."""
    return sum(bool(_curve(run, metric, kind)) for run in runs)


def _curve(run: Run, metric: str, kind: str) -> list[tuple[float, float]]:
    points = []
    for rec in run.records(kind):
        step, value = _finite(rec.get("step")), _finite(rec.get(metric))
        if step is not None and value is not None:
            points.append((step, value))
    return points


def plot_accuracy_by_length(rows: Sequence[Row], path: Path) -> bool:
    """The gym's exact match (solid) and alignment accuracy (dashed) against test length, one
    colour per variant, mean over seeds with a ± std band; the training lengths shaded. False
    (nothing written) when no run reports ``by_length``."""
    gym = [r for r in rows if r.by_length("exact_match")]
    if not gym:
        return False
    tasks = list(dict.fromkeys(r.task for r in gym))
    fig, axes = _figure(len(tasks), height=3.8 * len(tasks))
    for ax, task in zip(axes, tasks):
        shaded = set()
        for row in (r for r in gym if r.task == task):
            span = row.train_range()
            if span and span not in shaded:
                ax.axvspan(span[0], span[1], color="0.9", zorder=0, label="training lengths" if not shaded else None)
                shaded.add(span)
            colour = None
            for metric, style in zip(GYM_BY_LENGTH, ("-", "--")):
                stats = row.by_length(metric)
                if not stats:
                    continue
                xs = list(stats)
                means = [stats[n].mean for n in xs]
                stds = [stats[n].std or 0.0 for n in xs]
                label = f"{row.variant} {metric.replace('_', ' ')} (n={row.n_seeds})"
                (line,) = ax.plot(xs, means, style, marker="o", color=colour, label=label)
                colour = line.get_color()
                ax.fill_between(xs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                                color=colour, alpha=0.12)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("test length")
        ax.set_ylabel("exact match (solid), alignment accuracy (dashed)")
        ax.set_title(f"{task}: accuracy against length")
        ax.legend(fontsize="x-small")
    fig.savefig(path, dpi=100)
    return True


def _figure(panels: int, height: float, height_ratios: Optional[list[float]] = None) -> tuple[Any, list[Any]]:
    """A matplotlib Figure (no pyplot: no global state, no display needed) with stacked panels."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, max(height, 2.5)), layout="constrained")
    axes = fig.subplots(max(panels, 1), 1, squeeze=False, gridspec_kw={"height_ratios": height_ratios})
    return fig, list(axes[:, 0])


# ----------------------------------------------------------------------------- command line


def write_report(
    root: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, metric: str | None = None
) -> list[Path]:
    """Load the runs below ``root``, write the four report files into ``out`` (default ``root``)."""
    root, runs = Path(root), load_runs(root)
    if metric and not any(r.value(metric) is not None for r in runs):
        available = sorted({k for r in runs if r.results for k, v in r.results.items() if _finite(v) is not None})
        available = [k for k in available if k not in NOT_METRICS]
        raise UserError(f"no run has metric={metric}; metrics found: {', '.join(available) or 'none'}")
    rows = summarize(runs, metric)
    tests = compare_to_best(rows)
    out_dir = Path(out) if out is not None else root
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv_path, bars, curves = (out_dir / name for name in OUTPUTS)
    plot_metric_by_variant(rows, bars)
    plot_learning_curves(rows, curves)
    by_length = out_dir / "accuracy_by_length.png"
    extra = [by_length] if plot_accuracy_by_length(rows, by_length) else []
    write_csv(rows, csv_path, tests)
    images = [bars.name, curves.name, *(p.name for p in extra)]
    md.write_text(markdown(rows, runs, root, images=images, tests=tests), encoding="utf-8")
    return [md, csv_path, bars, curves, *extra]


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m attnlab.report",
        description="Compare the variants of a sweep: report.md, report.csv and two plots.",
    )
    parser.add_argument("dir", help="a sweep folder (multirun/<date>) or any folder of run folders")
    parser.add_argument("--out", help="write the report here instead of into DIR")
    parser.add_argument("--metric", help="the metric to report and sort by (default: bleu and chrf, or accuracy)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; user mistakes end as one ``error:`` line and exit status 2."""
    args = parse_args(argv)
    try:
        paths = write_report(args.dir, args.out, args.metric)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
