"""Config composition: every valid task/model pair composes; bad ones fail early and clearly."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from attnlab.__main__ import config_dir
from attnlab.app import check_config
from attnlab.errors import UserError

VALID = [("translation", "rnn_attn"), ("translation", "transformer"), ("vision", "vit")]


def make(*overrides: str):
    with initialize_config_dir(config_dir=str(Path(config_dir())), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_defaults_are_translation_rnn_with_the_seed_dot_score():
    cfg = make()
    assert (cfg.task.name, cfg.model.name, cfg.data.name) == ("translation", "rnn_attn", "tatoeba_deen_long")
    assert cfg.attention.score == "dot"
    check_config(cfg)


def test_task_picks_its_model_and_data():
    cfg = make("task=vision")
    assert (cfg.model.name, cfg.data.name, cfg.attention.score) == ("vit", "digits", "scaled_dot")


# each model's own data (conf/model/*.yaml): the translators' chosen on validation (docs/protocol.md)
OWN_DATA = {"rnn_attn": "tatoeba_deen_long", "transformer": "tatoeba_deen", "vit": "digits"}


@pytest.mark.parametrize("task,model", VALID)
def test_each_model_reads_its_own_data_unless_data_is_given(task, model):
    cfg = make(f"task={task}", f"model={model}")
    assert cfg.data.name == OWN_DATA[model] and cfg.data.name in cfg.task.data
    other = next(d for d in cfg.task.data if d != OWN_DATA[model])
    assert make(f"task={task}", f"model={model}", f"data={other}").data.name == other


@pytest.mark.parametrize("model,data,key,value", [
    ("rnn_attn", "synthetic", "model.emb_dim", 64),
    ("transformer", "synthetic", "model.d_model", 64),
    ("vit", "placed_digits", "model.patch_size", 4),
])
def test_data_recipes_still_follow_the_data_a_command_names(model, data, key, value):
    task = "vision" if model == "vit" else "translation"
    cfg = make(f"task={task}", f"model={model}", f"data={data}")
    assert OmegaConf.select(cfg, key) == value


@pytest.mark.parametrize("task,model", VALID)
@pytest.mark.parametrize("score", ["dot", "scaled_dot", "general", "additive"])
def test_every_valid_pair_and_score_composes(task, model, score):
    cfg = make(f"task={task}", f"model={model}", f"attention={score}")
    assert cfg.attention.score == score and cfg.model.name == model
    check_config(cfg)


def test_command_line_choice_wins_over_the_task_default():
    cfg = make("task=translation", "model=transformer", "data=multi30k")
    assert (cfg.model.name, cfg.data.name, cfg.attention.score) == ("transformer", "multi30k", "scaled_dot")


def test_attention_override_wins_over_the_recipe():
    assert make("attention=additive").attention.score == "additive"


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["task=translation", "model=vit"], "model=vit does not fit task=translation; valid models for translation: rnn_attn, transformer"),
        (["task=vision", "model=rnn_attn"], "model=rnn_attn does not fit task=vision; valid models for vision: vit"),
        (["task=vision", "data=multi30k"], "data=multi30k does not fit task=vision"),
        (["model=transformer", "attention=none"], "attention=none works only with model=rnn_attn"),
        (["mode=evaluate"], "mode=evaluate needs checkpoint=PATH"),
        (["task=vision", "mode=predict", "checkpoint=x.pt"], "mode=predict needs input"),
    ],
)
def test_invalid_combinations_fail_with_the_valid_choices(overrides, message):
    with pytest.raises(UserError) as err:
        check_config(make(*overrides))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_schema_rejects_typos_bad_types_and_bad_enum_values():
    with pytest.raises(ConfigCompositionException) as err:
        make("model.hidden_dimm=3")
    assert "Key 'hidden_dimm' not in 'RNNAttnConfig'" in str(err.value.__cause__)
    with pytest.raises(ConfigCompositionException) as err:
        make("model.cell=rnn")
    assert isinstance(err.value.__cause__, ValidationError)
    with pytest.raises(ConfigCompositionException):
        make("trainer.lr=fast")
    with pytest.raises(ConfigCompositionException):
        make("device=tpu")


def test_unknown_group_option():
    with pytest.raises(Exception, match="attention/cosin'"):
        make("attention=cosin")


def test_sweep_folder_names_stay_short_and_distinct():
    from attnlab.config import run_dirname

    assert run_dirname("attention=dot,seed=0") == "attention=dot,seed=0"
    long_a = ",".join(f"model.key{i}={i}" for i in range(40))
    long_b = long_a.replace("key39=39", "key39=40")
    assert len(run_dirname(long_a)) <= 120 and run_dirname(long_a) != run_dirname(long_b)


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.hidden_dim=0", "model.hidden_dim=0 must be positive"),
        ("trainer.lr=-1", "trainer.lr=-1.0 must be positive"),
        ("data.vocab_size=0", "data.vocab_size=0 must be positive"),
        ("model.dropout=1.5", "model.dropout=1.5 must be in [0, 1)"),
        ("task=vision model.stem_layers=-1", "model.stem_layers=-1 must be 0 or more"),
        ("task=vision model.stem_channels=0", "model.stem_channels=0 must be positive"),
    ],
)
def test_zero_or_negative_sizes_and_bad_rates(override, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        check_config(make(*override.split()))
