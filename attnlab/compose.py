"""From overrides to a checked config, before any work starts (and before a run folder exists).

The command line (:mod:`attnlab.__main__`) and the Python API (:mod:`attnlab.api`) both pass their
overrides through :func:`prepare` first:

1. **Checkpoint modes take the checkpoint's task and model.** For any mode but ``train`` with
   ``checkpoint=PATH``, ``task=`` and ``model=`` default to what the checkpoint was trained with;
   naming another one is an error (:func:`complete_from_checkpoint`).
2. **Composition with helpful errors.** Keys cannot be added to the typed config (``+key=...``
   is refused, Hydra would accept it silently into a typed group); an unknown key or group option
   gets a "did you mean" from :mod:`difflib` (:func:`explain`); any other Hydra or OmegaConf
   error is folded into one line.
3. **The task-level checks** of :func:`attnlab.app.check_config`, and ``resume=true`` needs
   ``checkpoints/last.pt`` in the run folder it continues.

Every failure is a :class:`~attnlab.errors.UserError` (one line, exit status 2 on the command line).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from attnlab.config import register_configs
from attnlab.errors import UserError

# the config groups that checkpoint modes take from the checkpoint when not given
CHECKPOINT_GROUPS = ("task", "model")
# tasks whose checkpoint modes read the test data where data.* says (data.test_split, data.path):
# data= and data.path default to the checkpoint's. (Vision picks the checkpoint's data itself,
# subset and all, unless data= is given: tasks/vision.py.)
DATA_FROM_CHECKPOINT = ("translation",)
_PLAIN_PATH = re.compile(r"[\w./\\:~+-]+")  # paths that need no quoting in a Hydra override
FULL_CONFIG_HINT = "python -m attnlab --cfg job lists every key"


def config_dir() -> str:
    """conf/ ships inside the wheel as attnlab/conf; in a source checkout it is the top-level conf/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"attnlab's conf/ folder is missing next to {here}; reinstall attnlab")


def groups() -> list[str]:
    """attnlab's own config groups (the folders of conf/; Hydra's hydra/* groups are Hydra's)."""
    return sorted(p.name for p in Path(config_dir()).iterdir() if p.is_dir() and p.name != "hydra")


def group_options(group: str) -> list[str]:
    """The options of a group that a user may pick (its YAML files; the schemas are not options)."""
    return sorted(p.stem for p in (Path(config_dir()) / group).glob("*.yaml"))


# ----------------------------------------------------------------------------- parsing


def parse(overrides: Sequence[str]) -> list[Override]:
    """Hydra's parse of the overrides; a syntax error becomes one line."""
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as err:
        raise UserError(error_text(err)) from None


def given(parsed: Iterable[Override], key: str) -> str | None:
    """The value of the last plain override of ``key`` (None when absent or a sweep)."""
    value = None
    for o in parsed:
        if o.key_or_group == key and not o.is_delete() and not o.is_sweep_override():
            value = o.value()
    return None if value is None else str(value)


def error_text(err: BaseException) -> str:
    """Hydra's or OmegaConf's error and its causes as one line, without their noise."""
    from hydra_plugins.attnlab_sweeper.sweeper import error_text as fold

    return fold(err)


# ----------------------------------------------------------------------------- checkpoints


def complete_from_checkpoint(overrides: Sequence[str]) -> list[str]:
    """For a checkpoint mode, prepend ``task=``/``model=`` from the checkpoint when not given;
    refuse a conflicting one. Other overrides come back unchanged."""
    from attnlab.checkpoint import saved_config

    parsed = parse(overrides)
    mode, path = given(parsed, "mode") or "train", given(parsed, "checkpoint")
    if mode == "train" or not path:
        return list(overrides)
    saved = saved_config(path)
    added = []
    for group in CHECKPOINT_GROUPS:
        have = (saved.get(group) or {}).get("name")
        want = given(parsed, group)
        if have is None:
            continue
        if want is None:
            added.append(f"{group}={have}")
        elif want != have:
            raise UserError(
                f"checkpoint {path} holds a {group} '{have}', not '{want}'; drop {group}={want} "
                f"(mode={mode} takes the checkpoint's {group}) or pass another checkpoint"
            )
    if (saved.get("task") or {}).get("name") in DATA_FROM_CHECKPOINT and given(parsed, "data") is None:
        data = saved.get("data") or {}
        if data.get("name"):
            added.append(f"data={data['name']}")
        path = data.get("path")
        if path and given(parsed, "data.path") is None and _PLAIN_PATH.fullmatch(str(path)):
            added.append(f"data.path={path}")
    return [*added, *overrides]


# ----------------------------------------------------------------------------- composition


def _compose(overrides: Sequence[str]) -> DictConfig:
    register_configs()  # the schemas the YAML files extend (idempotent)
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app (a sweep's check)
        return compose(config_name="config", overrides=list(overrides))
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def has_key(cfg: Any, dotted: str) -> bool:
    """Whether ``dotted`` (``trainer.epochs``) names a key of ``cfg`` (its value may be missing)."""
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node.keys():
            return False
        node = node._get_node(part)
    return True


def key_paths(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Every dotted key of ``cfg``, inner nodes included (``data``, ``data.augment.shift``)."""
    paths = []
    for key in cfg.keys():
        path = f"{prefix}{key}"
        paths.append(path)
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            paths += key_paths(node, path + ".")
    return paths


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean X?)`` for the closest choice, or nothing when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]}?)" if close else ""


def closest_key(name: str, known: Sequence[str]) -> str:
    """`` (did you mean X?)`` for a mistyped dotted key: its siblings first (``trainer.epoch`` ->
    ``trainer.epochs``), then any key when the whole path is very close."""
    parent, _, leaf = name.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == parent}
    close = difflib.get_close_matches(leaf, list(siblings), n=1, cutoff=0.7)
    if close:
        return f" (did you mean {siblings[close[0]]}?)"
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.8)
    return f" (did you mean {close[0]}?)" if close else ""


def _is_key(o: Override) -> bool:
    """A key of attnlab's config (``trainer.lr``), not a group choice (``model=vit``) nor Hydra's."""
    name = o.key_or_group
    return not (name in groups() or name.startswith("hydra") or "/" in name)


def check_overrides(overrides: Sequence[str]) -> None:
    """Refuse what Hydra would accept or explain badly: unknown group options, unknown keys and
    keys added with ``+`` (the config is typed: every key that exists is in the schema)."""
    parsed = parse(overrides)
    for o in parsed:
        name = o.key_or_group
        if name in groups() and not o.is_delete() and not o.is_sweep_override():
            options = group_options(name)
            value = str(o.value())
            if value not in options:
                raise UserError(
                    f"unknown {name}={value}{did_you_mean(value, options)}; valid: {', '.join(options)}"
                )
    keys = [o for o in parsed if _is_key(o)]
    if not keys:
        return
    # the config the key overrides apply to: its shape depends on the group choices (model=vit...)
    base = _compose([o.input_line for o in parsed if not _is_key(o) and not o.is_sweep_override()])
    known = [k for k in key_paths(base) if not k.startswith("hydra")]
    for o in keys:
        name, exists = o.key_or_group, has_key(base, o.key_or_group)
        value = o.input_line.split("=", 1)[1] if "=" in o.input_line else ""
        if o.is_add() and exists:  # Hydra refuses this too, in four lines
            raise UserError(f"{o.input_line}: {name} exists; override it without the +: {name}={value}")
        if (o.is_add() or o.is_force_add()) and not exists:
            hint = closest_key(name, known)
            raise UserError(
                f"{o.input_line}: attnlab's config is typed, so keys cannot be added{hint}; {FULL_CONFIG_HINT}"
            )
        if not exists and not o.is_delete():
            raise UserError(f"unknown key {name}{closest_key(name, known)}; {FULL_CONFIG_HINT}")


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """Compose attnlab's config as ``python -m attnlab OVERRIDES`` would, with one-line errors."""
    check_overrides(overrides)
    try:
        return _compose(overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise UserError(error_text(err)) from None


def check_resume(cfg: DictConfig, run_dir: str | Path | None) -> None:
    """``resume=true`` continues ``run_dir/checkpoints/last.pt``: check it exists before any work."""
    if not cfg.resume or str(cfg.mode) != "train":
        return
    if run_dir is not None and "${" in str(run_dir):
        return  # an interpolated folder (hydra.run.dir=...${now:...}): Hydra resolves it later
    if run_dir is None:
        raise UserError("resume=true needs the run folder to continue: pass hydra.run.dir=<run folder>")
    last = Path(run_dir) / "checkpoints" / "last.pt"
    if not last.is_file():
        raise UserError(f"resume=true but {last} does not exist; pass hydra.run.dir=<the run folder to continue>")


def prepare(overrides: Sequence[str], run_dir: str | Path | None = None) -> tuple[list[str], DictConfig]:
    """Overrides completed from the checkpoint, and their composed and checked config (see the
    module docstring). ``run_dir`` is the run folder when known (``resume=true`` needs it)."""
    from attnlab.app import check_config

    overrides = complete_from_checkpoint(overrides)
    cfg = compose_config(overrides)
    check_config(cfg)
    check_resume(cfg, run_dir)
    return overrides, cfg
