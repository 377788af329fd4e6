"""The ``python -m attnlab --help`` page: modes, examples, each group's options, the common keys.

Built from the sources of truth, so it cannot drift from them: the options are conf/'s YAML files
(their first comment line describes them), the modes are :class:`attnlab.config.Mode`, the keys
and their one-line descriptions are the schema dataclasses of :mod:`attnlab.config` (the comment
after each field).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

from attnlab import __version__, config
from attnlab.compose import config_dir, group_options, groups

MODES = {
    "train": "train, then score the test split with best.pt (the default)",
    "evaluate": "score the test split again with checkpoint=PATH",
    "translate": "translate the lines of input=FILE (default stdin) with checkpoint=PATH",
    "predict": "classify input=IMAGE_OR_DIR with checkpoint=PATH",
    "export": "write checkpoint=PATH as a folder: safetensors weights, config, tokenizer (output=DIR)",
    "explore": "write explore.html: every layer and head of checkpoint=PATH on input=SENTENCE|FILE|IMAGE|DIR",
    "serve": "the explorer page on http://127.0.0.1:8000 (serve.port): type a sentence or upload an image",
}

EXAMPLES = """\
python -m attnlab                                      translate de->en with the RNN (shipped data)
python -m attnlab model=transformer                    the Transformer translator
python -m attnlab task=vision attention=additive       a ViT on 8x8 digits, Bahdanau scoring
python -m attnlab trainer.max_steps=200 trainer.num_threads=1   a short run
python -m attnlab -m attention=dot,general,additive seed=0,1,2  a sweep (then: python -m attnlab.report multirun/<time>)
python -m attnlab mode=evaluate checkpoint=outputs/.../checkpoints/best.pt
echo "Ich habe Hunger." | python -m attnlab mode=translate checkpoint=.../best.pt
python -m attnlab <same overrides> resume=true hydra.run.dir=<run folder>   continue a stopped run"""

# sections of the schema shown key by key (model.* and data.* depend on the option chosen)
SECTIONS = {
    "": config.Config,
    "trainer": config.TrainerConfig,
    "decode": config.DecodeConfig,
    "viz": config.VizConfig,
    "attention": config.AttentionConfig,
}
# one-line descriptions of the keys whose schema field carries no comment
KEY_HELP = {
    "seed": "seed of weights, batch order, dropout (same seed, same numbers on CPU)",
    "device": "auto | cpu | cuda | mps (auto: a GPU when there is one)",
    "mode": "what to do; see Modes above",
    "resume": "continue the run folder's checkpoints/last.pt (with hydra.run.dir=<run folder>)",
    "epochs": "passes over the training data",
    "lr": "peak learning rate (AdamW)",
    "weight_decay": "AdamW weight decay on weight matrices",
    "schedule": "learning-rate decay: constant | cosine | linear | inverse_sqrt",
    "warmup_steps": "linear warm-up steps",
    "clip_norm": "gradient-norm clipping; 0 = none",
    "label_smoothing": "label smoothing of the training loss",
    "log_every_steps": "a training record in metrics.jsonl every N steps",
    "beam_size": "1 = greedy search",
    "length_penalty": "GNMT length normalisation alpha (0 = raw log-probability)",
    "max_len_b": "see max_len_a",
    "batch_size": "sentences per decoding batch",
    "enabled": "draw attention pictures",
    "num_examples": "test examples drawn",
    "score": "the scoring; set by the attention group",
}
_FIELD = re.compile(r"^\s+(\w+):[^=#]*(?:=[^#]*)?(?:#\s*(.*))?$")


def option_line(group: str, option: str) -> str:
    """The first comment line of ``conf/<group>/<option>.yaml`` (empty when it has none)."""
    if group.endswith("recipe"):  # recipe: <task>_<model>, data_recipe: <data>_<model>
        first = "task" if group == "recipe" else group.removesuffix("_recipe")
        model = next((m for m in group_options("model") if option.endswith("_" + m)), "")
        chosen = f"{first}={option.removesuffix('_' + model)} model={model}" if model else option
        return f"training settings for {chosen} (chosen automatically)"
    for line in (Path(config_dir()) / group / f"{option}.yaml").read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        if line.startswith("#") and text and not text.startswith("@package"):
            return text
    return ""


def field_comments(cls: type) -> dict[str, str]:
    """``{field: comment}`` from the comment after each field in the dataclass's source."""
    comments = {}
    for line in inspect.getsource(cls).splitlines():
        match = _FIELD.match(line)
        if match and match.group(2):
            comments[match.group(1)] = match.group(2).strip()
    return comments


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
    else:
        return "?"
    return value.value if isinstance(value, config.Choice) else value


def key_lines(prefix: str, cls: type) -> list[str]:
    """One line per plain field of a schema section: ``prefix.key=default   comment``."""
    comments = field_comments(cls)
    lines = []
    for f in dataclasses.fields(cls):
        value = _default(f)
        if dataclasses.is_dataclass(value) or f.name in SECTIONS or f.name in ("model", "data", "task"):
            continue
        value = "null" if value is None else str(value).lower() if isinstance(value, bool) else value
        key = f"{prefix}.{f.name}" if prefix else f.name
        lines.append(f"  {key}={value}".ljust(36) + f" {(comments.get(f.name) or KEY_HELP.get(f.name, ''))}".rstrip())
    return lines


def help_text() -> str:
    out = [
        f"attnlab {__version__}: attention in an RNN translator, a Transformer and a ViT",
        "",
        "Usage: python -m attnlab [KEY=VALUE | GROUP=OPTION ...]     one run, in outputs/<task>/<model>/<time>/",
        "       python -m attnlab -m KEY=A,B ...                      a sweep, in multirun/<time>/<overrides>/",
        "       python -m attnlab --cfg job [overrides]               the full config, every key and its value",
        "",
        "Modes (mode=...; the checkpoint modes take task= and model= from the checkpoint):",
    ]
    out += [f"  {mode.value:<12}{MODES.get(mode.value, '')}".rstrip() for mode in config.Mode]
    out += ["", "Examples:"] + ["  " + line for line in EXAMPLES.splitlines()]
    out += ["", "Config groups (GROUP=OPTION; a task picks its own model, a model its own data):"]
    for group in groups():
        options = group_options(group)
        out.append(f"  {group}: {', '.join(options)}")
        width = max(map(len, options)) + 2
        out += [f"      {option:<{width}}{option_line(group, option)}".rstrip() for option in options]
    out += ["", "Keys (KEY=VALUE, shown with their defaults; a recipe or task may change them):"]
    for prefix, cls in SECTIONS.items():
        out += key_lines(prefix, cls)
    out += [
        "  model.*, data.*                    the chosen model's and data's keys: see --cfg job",
        "",
        "Every key is typed (attnlab/config.py): a typo or a bad value fails at once, with a suggestion.",
        "More: README.md; Hydra's own options: --hydra-help.",
    ]
    return "\n".join(textwrap.shorten(line, 160, placeholder=" ...") if len(line) > 160 else line for line in out)
