"""The attention gym's synthetic tasks: hand-checked gold alignments, splits, symbol tokenizer,
config composition and a tiny end-to-end run of every kind and translator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from attnlab import api
from attnlab.__main__ import config_dir
from attnlab.app import check_config
from attnlab.config import SyntheticDataConfig
from attnlab.data import synthetic
from attnlab.data.symbols import SymbolTokenizer, tokenizer_from_bytes
from attnlab.data.text import load_corpus
from attnlab.errors import UserError

P = synthetic.GymParams(num_symbols=5, shift=2)  # alphabet a..e


class Fixed:
    """A stand-in for numpy's generator that returns given symbol indices (hand-checkable cases)."""

    def __init__(self, values: list[int], perm: list[int] | None = None, asked: int = 0) -> None:
        self.values, self.perm, self.asked = values, perm, asked

    def integers(self, lo, hi=None, size=None):
        if size is None:
            return self.asked
        return np.array(self.values[:size])

    def permutation(self, n):
        return np.array(self.perm)


# x = c a d a b  (indices 2 0 3 0 1)
X = [2, 0, 3, 0, 1]


@pytest.mark.parametrize("kind,target,gold", [
    ("copy", "c a d a b", (0, 1, 2, 3, 4)),
    ("reverse", "b a d a c", (4, 3, 2, 1, 0)),
    ("sort", "a a b c d", (1, 3, 4, 0, 2)),  # the two a's in source order (stable)
    ("shift", "d a b c a", (2, 3, 4, 0, 1)),  # rotate left by 2
    ("count", "5", (-1,)),
])
def test_gold_alignments_by_hand(kind, target, gold):
    ex = synthetic.KINDS.get(kind)(Fixed(X), 5, P)
    assert " ".join(ex.source) == "c a d a b"
    assert " ".join(ex.target) == target and ex.gold == gold
    # the gold position holds the output symbol wherever there is one
    assert all(g == -1 or ex.source[g] == y for y, g in zip(ex.target, ex.gold))


def test_recall_by_hand():
    # keys e b c (permutation 4 1 2 ...), values 7 0 3, asked = the second pair
    ex = synthetic.recall_task(Fixed([7, 0, 3], perm=[4, 1, 2, 0, 3, *range(5, 52)], asked=1), 3, P)
    assert " ".join(ex.source) == "e 7 b 0 c 3 ? b"
    assert ex.target == ("0",) and ex.gold == (3,) and ex.source[3] == "0"


def test_count_of_two_digits():
    ex = synthetic.count_task(np.random.default_rng(0), 12, P)
    assert ex.target == ("1", "2") and ex.gold == (-1, -1) and len(ex.source) == 12


@pytest.mark.parametrize("kind", synthetic.KINDS.names())
def test_every_kind_is_consistent_at_random(kind):
    rng = np.random.default_rng(1)
    p = synthetic.GymParams(num_symbols=20, shift=3)
    for n in (1, 2, 7, 20):
        ex = synthetic.KINDS.get(kind)(rng, n, p)
        assert ex.length == n
        assert all(g == -1 or ex.source[g] == y for y, g in zip(ex.target, ex.gold))
        assert set(ex.source) | set(ex.target) <= set(synthetic.vocabulary(p, kind))


def cfg(**kw) -> SyntheticDataConfig:
    base = dict(train_size=300, valid_size=20, test_size=10, train_len=[3, 6], test_lengths=[4, 9])
    return OmegaConf.structured(SyntheticDataConfig(**{**base, **kw}))


def test_splits_are_seeded_sized_disjoint_and_carry_alignments():
    data = load_corpus(cfg())
    again = load_corpus(cfg())
    other = load_corpus(cfg(seed=1))
    assert data.test.sources == again.test.sources and data.train.sources == again.train.sources
    assert data.train.sources != other.train.sources
    assert len(data.train) == 300 and len(data.valid) == 20 and len(data.test) == 20
    assert sorted(set(data.test.lengths)) == [4, 9] and all(3 <= n <= 6 for n in data.valid.lengths)
    train = set(data.train.sources)
    assert not train & set(data.valid.sources) and not train & set(data.test.sources)
    for src, refs, gold in zip(data.test.sources, data.test.references, data.test.alignments):
        s, y = src.split(), refs[0].split()
        assert [s[g] for g in gold] == y  # reverse: every output symbol at its gold position
    head = data.test.head(3)
    assert head.alignments == data.test.alignments[:3] and head.lengths == data.test.lengths[:3]
    # the corpus caps apply to generated data as to files
    capped = load_corpus(cfg(max_train_pairs=50, max_eval_sentences=7))
    assert len(capped.train) == 50 and len(capped.valid) == len(capped.test) == 7
    assert capped.test.alignments == data.test.alignments[:7] and capped.symbols == data.symbols


@pytest.mark.parametrize("bad,message", [
    (dict(kind="palindrome"), "valid choices"),
    (dict(train_len=[5, 3]), "train_len"),
    (dict(test_lengths=[0]), "test_lengths"),
    (dict(num_symbols=60), "num_symbols"),
    (dict(kind="recall", test_lengths=[53]), "distinct keys"),
])
def test_bad_settings_are_one_line_user_errors(bad, message):
    with pytest.raises(UserError, match=message):
        load_corpus(cfg(**bad))


def test_symbol_tokenizer_round_trips_and_travels_as_bytes():
    tok = SymbolTokenizer.fit(["b a", "c"], symbols=["a", "z"])
    assert tok.pieces()[:4] == ["<pad>", "<s>", "</s>", "<unk>"] and tok.pieces()[4:] == ["a", "z", "b", "c"]
    ids = tok.encode("a b c z")
    assert ids == [4, 6, 7, 5] and tok.decode(ids + [2, 5]) == "a b c z"  # stops at eos
    assert tok.encode("q") == [tok.unk_id]
    clone = tokenizer_from_bytes(tok.to_bytes())
    assert isinstance(clone, SymbolTokenizer) and clone.pieces() == tok.pieces()
    with pytest.raises(UserError):
        SymbolTokenizer.from_bytes(b"attnlab-symbols\n{not json")


def make(*overrides: str):
    with initialize_config_dir(config_dir=str(Path(config_dir())), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("model", ["rnn_attn", "transformer"])
def test_gym_sizes_come_with_the_data_and_the_command_line_wins(model):
    c = make("data=synthetic", f"model={model}")
    check_config(c)
    assert c.data.name == "synthetic" and c.trainer.max_tokens == 0 and c.decode.beam_size == 1
    assert c.trainer.num_threads == 1 and c.trainer.max_steps > 0
    with pytest.raises(UserError, match="valid choices: copy, count, recall, reverse, shift, sort"):
        check_config(make("data=synthetic", f"model={model}", "data.kind=palindrome"))
    c = make("data=synthetic", f"model={model}", "trainer.max_steps=7", "data.kind=copy")
    assert c.trainer.max_steps == 7 and c.data.kind == "copy"
    assert make(f"model={model}").trainer.max_tokens > 0  # real data keeps its own recipe


TINY = ["data=synthetic", "data.train_size=200", "data.valid_size=8", "data.test_size=4", "data.train_len=[3,5]",
        "data.test_lengths=[4,8]", "trainer.max_steps=4", "trainer.batch_size=16", "trainer.progress=false",
        "trainer.num_threads=1", "viz.num_examples=1"]
TINY_MODELS = {
    "rnn_attn": ["model.emb_dim=8", "model.hidden_dim=16", "model.attn_dim=8"],
    "transformer": ["model=transformer", "model.d_model=16", "model.heads=2", "model.enc_layers=1",
                    "model.dec_layers=2", "model.d_ff=16"],
}


@pytest.mark.parametrize("kind", synthetic.KINDS.names())
def test_tiny_run_of_every_kind_writes_the_gym_results(kind, tmp_path):
    model = "transformer" if kind in ("copy", "sort") else "rnn_attn"  # both translators, every kind once
    run = tmp_path / kind
    results = api.run([*TINY, f"data.kind={kind}", *TINY_MODELS[model]], run)
    on_disk = json.loads((run / "results.json").read_text())
    assert on_disk["exact_match"] == results["exact_match"]
    assert set(on_disk["by_length"]) == {"4", "8"} and on_disk["train_len"] == [3, 5]
    for key in ("exact_match", "token_accuracy"):
        assert 0 <= on_disk[key] <= 1 and 0 <= on_disk["by_length"]["8"][key] <= 1
    if kind == "count":  # the control: no gold position, so no alignment score
        assert "alignment_accuracy" not in on_disk
    else:
        assert 0 <= on_disk["alignment_accuracy"] <= 1 and "alignment_accuracy" in on_disk["by_length"]["8"]
    if model == "transformer" and kind != "count":
        heads = on_disk["alignment_by_head"]
        assert set(heads) == {"layer1", "layer2"} and set(heads["layer1"]) == {"head1", "head2", "mean"}
        layer, head = on_disk["best_head"].split(".")
        assert on_disk["best_head_alignment_accuracy"] == heads[layer][head]


def test_tiny_run_without_attention_scores_outputs_only(tmp_path):
    results = api.run([*TINY, "attention=none", *TINY_MODELS["rnn_attn"]], tmp_path / "none")
    assert "exact_match" in results and "alignment_accuracy" not in results
    assert "exact_match" in results["by_length"]["8"]


@pytest.mark.parametrize("model", ["rnn_attn", "transformer"])
def test_the_gym_teacher_forces_each_split_once_and_its_weights_are_the_search_steps(model, monkeypatch):
    import math

    import torch

    from attnlab.data.pairs import Tokenizers
    from attnlab.data.batching import pad_batch
    from attnlab.models import build_model
    from attnlab.models.seq2seq import Seq2Seq
    from attnlab.tasks import gym

    overrides = [o for o in TINY if not o.startswith(("data.valid_size", "data.test_size"))]
    cfg = make(*overrides, "data.valid_size=70", "data.test_size=40", "data.kind=copy", *TINY_MODELS[model])
    data = load_corpus(cfg.data)
    toks = Tokenizers.train(data.train, cfg, data.symbols)
    torch.manual_seed(0)
    net = build_model(cfg, src_vocab=toks.src.vocab_size, tgt_vocab=toks.tgt.vocab_size, shared_vocab=toks.shared).eval()
    calls = {"attention_weights": 0, "step": 0}
    for name in calls:
        def counted(*args, _inner=getattr(net, name), _name=name, **kwargs):
            calls[_name] += 1
            return _inner(*args, **kwargs)
        monkeypatch.setattr(net, name, counted)
    test, valid = data.test, data.valid
    hyps = [r[0] for r in test.references]
    results = gym.gym_results(net, toks, test, hyps, cfg.data.train_len, torch.device("cpu"), valid)
    # one teacher-forced pass over test (both attention scores) and, for the best head, one over valid
    passes = math.ceil(len(test) / gym.BATCH) + (math.ceil(len(valid) / gym.BATCH) if net.layered_attention else 0)
    assert calls == {"attention_weights": passes, "step": 0} and len(test) > gym.BATCH
    assert ("best_head" in results) == net.layered_attention and results["exact_match"] == 1.0
    # the flat scores are those of the weights the search's steps compute (the slow reference path)
    monkeypatch.undo()
    weights, _ = gym.teacher_forced_attention(net, toks, test, torch.device("cpu"))
    for i in (0, len(test) - 1):
        src, src_len = pad_batch([toks.src.encode(test.sources[i])], Seq2Seq.pad_id, eos=Seq2Seq.eos_id)
        ref = toks.tgt.encode(test.references[i][0])
        memory = net.encode(src, src_len)
        state, rows = net.init_state(memory), []
        with torch.no_grad():
            for token in [Seq2Seq.bos_id, *ref]:
                _, state, w = net.step(torch.tensor([token]), state, memory, need_weights=True)
                rows.append(w[0])
        torch.testing.assert_close(weights[i], torch.stack(rows), rtol=0, atol=1e-6)
