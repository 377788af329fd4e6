"""The attention spec: presets compose with every model that takes them, invalid combinations fail
in the config check with one line, the factory reads old specs, the weight-decay hook."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from attnlab.__main__ import config_dir
from attnlab.app import check_config
from attnlab.attention import SCORES, as_spec, check_spec
from attnlab.config import AttentionConfig
from attnlab.errors import UserError
from attnlab.models.transformer import Transformer

MODELS = {"rnn_attn": ["task=translation", "model=rnn_attn"], "transformer": ["task=translation", "model=transformer"],
          "vit": ["task=vision"]}
PRESETS = sorted(p.stem for p in (Path(config_dir()) / "attention").glob("*.yaml"))


def make(*overrides: str):
    with initialize_config_dir(config_dir=str(Path(config_dir())), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_default_spec_is_unchanged_in_effect():
    for model, overrides in MODELS.items():
        a = make(*overrides).attention
        assert (a.position, a.window, a.local, a.kv_heads, a.backend, a.fused) == ("none", 0, "none", 0, "auto", True)
        assert a.score == ("dot" if model == "rnn_attn" else "scaled_dot")


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_passes_the_check_for_some_model(preset):
    fits = []
    for model, overrides in MODELS.items():
        cfg = make(*overrides, f"attention={preset}")
        try:
            check_config(cfg)
            fits.append(model)
        except UserError as err:
            assert "\n" not in str(err)
    assert fits, f"attention={preset} fits no model"
    if preset in ("rope", "alibi", "relative", "local", "mqa", "gqa"):
        assert fits == ["transformer", "vit"]
    if preset in ("cosine", "linear", "dot", "general", "additive", "scaled_dot"):
        assert fits == list(MODELS)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["model=transformer", "attention.kv_heads=3"], "attention.kv_heads=3 must divide model.heads=4"),
        (["model=transformer", "attention.window=-1"], "attention.window=-1 must be 0 (global)"),
        (["model=transformer", "attention.position=spiral"], "unknown attention position 'spiral'; valid choices: alibi, none, relative, rope"),
        (["model=transformer", "attention.score=cosin"], "unknown attention score 'cosin'; valid choices: " + ", ".join(SCORES)),
        (["model=transformer", "attention=additive", "attention.backend=flex"], "attention.backend=flex needs a score with a dot-product form"),
        (["model=transformer", "attention=additive", "attention.backend=sdpa"], "attention.backend=sdpa needs a score with a dot-product form"),
        (["model=transformer", "attention.backend=fast"], "unknown attention.backend 'fast'"),
        (["model=transformer", "attention=linear", "attention.position=alibi"], "has no logits to add a bias to"),
        (["model=transformer", "attention.local=predictive"], "attention.local=predictive is Luong's local attention of model=rnn_attn"),
        (["model=rnn_attn", "attention=rope"], "attention.position=rope is for self-attention"),
        (["model=rnn_attn", "attention=mqa"], "attention.kv_heads is for multi-head attention"),
        (["model=rnn_attn", "attention.local=monotonic"], "attention.local=monotonic needs a window"),
        (["model=rnn_attn", "attention.window=3"], "add attention.local=monotonic or predictive"),
        (["model=rnn_attn", "attention.local=sideways", "attention.window=3"], "unknown attention.local 'sideways'"),
        (["task=vision", "model.dim=24", "model.heads=4", "attention=rope"], "divisible by 4"),
        (["model=transformer", "attention.backend=flex", "device=cpu"], "no backward pass on the CPU"),
    ],
)
def test_invalid_combinations_fail_before_any_work_with_one_line(overrides, message):
    with pytest.raises(UserError) as err:
        check_config(make(*overrides))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_done_when_combinations_pass_the_check():
    check_config(make("task=vision", "attention=rope", "attention.kv_heads=2", "attention.window=1"))
    check_config(make("task=translation", "model=transformer", "attention=alibi"))
    check_config(make("attention.window=3", "attention.local=predictive"))
    check_config(make("model=transformer", "model.posenc=none", "attention=rope", "attention.kv_heads=1", "attention.window=16"))
    check_config(make("model=transformer", "attention.backend=flex", "mode=evaluate", "checkpoint=x.pt"))


def test_spec_from_an_older_checkpoint_takes_the_new_defaults():
    old = OmegaConf.create({"score": "general", "additive_dim": 0, "fused": False})
    spec = as_spec(old)
    assert (spec.score, spec.fused, spec.position, spec.kv_heads) == ("general", False, "none", 0)
    assert as_spec("additive") == AttentionConfig(score="additive")
    check_spec(spec, "transformer", 4, 16)


def test_weight_decay_skips_what_modules_declare():
    from attnlab.config import TrainerConfig
    from attnlab.train import make_optimizer

    model = Transformer(10, 10, d_model=16, heads=2, enc_layers=1, dec_layers=1, d_ff=16,
                        attention=AttentionConfig(score="additive", position="relative"))
    decay, rest = make_optimizer(model, TrainerConfig()).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    spared = {names[id(p)] for p in rest["params"]}
    assert "encoder.0.attn.score.v" in spared and "encoder.0.attn.position.table" in spared
    assert "encoder.0.attn.score.w_k" in {names[id(p)] for p in decay["params"]}


def test_the_spec_reaches_every_attention_module():
    model = Transformer(10, 10, d_model=16, heads=4, enc_layers=1, dec_layers=1, d_ff=16,
                        attention=AttentionConfig(score="cosine", position="rope", window=2, kv_heads=2))
    enc, dec = model.encoder[0].attn, model.decoder[0]
    assert type(enc.score).__name__ == type(dec.self_attn.score).__name__ == type(dec.cross_attn.score).__name__ == "CosineScore"
    assert (enc.kv_heads, dec.self_attn.kv_heads, dec.cross_attn.kv_heads) == (2, 2, 2)
    assert type(enc.position).__name__ == "RotaryPosition" and type(dec.cross_attn.position).__name__ == "NoPosition"
    assert (enc.window, dec.self_attn.window, dec.cross_attn.window) == (2, 2, 0)
    out = model(torch.randint(3, 10, (2, 5)), torch.tensor([5, 3]), torch.randint(3, 10, (2, 4)))
    assert out.shape == (2, 4, 10)


def test_attention_weights_protocol_of_the_rnn_matches_its_decoding_steps():
    from attnlab.config import RNNAttnConfig
    from attnlab.models.rnn_attn import RNNAttention

    torch.manual_seed(0)
    cfg = OmegaConf.structured(RNNAttnConfig(emb_dim=8, hidden_dim=8, attn_dim=8))
    model = RNNAttention(cfg, OmegaConf.structured(AttentionConfig(score="general")), 12, 12).eval()
    src, lengths, tgt = torch.randint(3, 12, (2, 5)), torch.tensor([5, 3]), torch.randint(3, 12, (2, 4))
    (cross,) = model.attention_weights(src, lengths, tgt)["cross"]
    assert cross.shape == (2, 1, 4, 5) and torch.equal(cross[1, 0, :, 3:], torch.zeros(4, 2))
    memory = model.encode(src, lengths)
    state = model.init_state(memory)
    for t in range(4):
        _, state, alpha = model.step(tgt[:, t], state, memory, need_weights=True)
        assert torch.allclose(alpha, cross[:, 0, t], atol=1e-6)


TINY_TRANSLATORS = {"rnn_attn": ["model.emb_dim=8", "model.hidden_dim=8", "model.attn_dim=8"],
                    "transformer": ["model.d_model=8", "model.heads=2", "model.enc_layers=1", "model.dec_layers=2",
                                    "model.d_ff=8"]}


@pytest.mark.parametrize("name", ["rnn_attn", "transformer"])
def test_layered_attention_says_what_attention_weights_returns(name):
    from attnlab.models import MODEL_MODULES, build_model

    assert {"rnn_attn", "transformer"} == set(MODEL_MODULES) - {"vit"}  # every translator is covered here
    torch.manual_seed(0)
    model = build_model(make(*MODELS[name], *TINY_TRANSLATORS[name]), src_vocab=12, tgt_vocab=12).eval()
    maps = model.attention_weights(torch.randint(3, 12, (2, 5)), torch.tensor([5, 3]), torch.randint(3, 12, (2, 4)))
    if model.layered_attention:  # every layer and head of the model's own attentions
        assert set(maps) == {"encoder", "cross", "decoder"}
        assert [w.shape for w in maps["cross"]] == [(2, 2, 4, 5)] * 2
    else:  # the search's one attention, as one layer and one head
        assert set(maps) == {"cross"} and [w.shape for w in maps["cross"]] == [(2, 1, 4, 5)]
    assert model.layered_attention == (name == "transformer")
    assert not hasattr(model, "attention_maps")  # one name for the protocol


def test_an_invalid_combination_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "attnlab", "model=transformer", "attention=gqa", "model.heads=3",
                          "model.d_model=48"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: attention.kv_heads=2 must divide model.heads=3")
    assert "Traceback" not in out.stderr and not (tmp_path / "outputs").exists()


def test_score_options_come_from_the_spec():
    model = Transformer(10, 10, d_model=16, heads=2, enc_layers=1, dec_layers=1, d_ff=16,
                        attention=AttentionConfig(score="additive", additive_dim=5))
    assert model.encoder[0].attn.score.w_q.shape == (2, 8, 5)


def test_the_variant_label_names_what_changes_the_numbers():
    from attnlab.attention.factory import spec_label
    from attnlab.config import AttentionConfig

    assert spec_label(AttentionConfig()) == "scaled_dot"
    assert spec_label(AttentionConfig(position="rope", window=8, kv_heads=1, backend="math")) == "scaled_dot+rope+window8+kv1"
    assert spec_label(AttentionConfig(score="dot", local="predictive", window=3)) == "dot+local-predictive+window3"
