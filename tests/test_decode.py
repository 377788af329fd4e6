"""Greedy and beam search: beam 1 = greedy, beam beats greedy where it should, lengths, batching."""

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import Tensor

from attnlab.attention.health import HEALTH_KEYS, HealthMeter, attention_health
from attnlab.config import AttentionConfig, DecodeConfig, RNNAttnConfig
from attnlab.decode import beam_search, beam_search_n_best, greedy_search, length_penalty, max_lengths, translate_batch
from attnlab.data.batching import pad_batch
from attnlab.decode.translate import decoding_health
from attnlab.models.rnn_attn import RNNAttention
from attnlab.models.seq2seq import Memory, Seq2Seq
from attnlab.models.transformer import Transformer

PAD, BOS, EOS = 0, 1, 2


pytestmark = pytest.mark.usefixtures("one_thread")



class TableModel(Seq2Seq):
    """A toy translator whose next-token distribution depends only on the last token:
    ``table[last]`` holds probabilities over a vocabulary of 6 (the source is ignored)."""

    def __init__(self, table: dict[int, list[float]], vocab: int = 6) -> None:
        super().__init__()
        self.vocab = vocab
        rows = torch.full((vocab, vocab), 1e-9)
        for last, probs in table.items():
            rows[last] = torch.tensor(probs)
        self.logp = (rows / rows.sum(-1, keepdim=True)).log()

    def encode(self, src: Tensor, src_lengths: Tensor) -> Memory:
        return Memory(src.float().unsqueeze(-1), torch.ones(src.shape[0], 1, src.shape[1], dtype=torch.bool), {})

    def init_state(self, memory: Memory) -> Tensor:
        return torch.zeros(memory.states.shape[0])

    def step(self, tokens, state, memory, need_weights=False):
        S = memory.states.shape[1]
        weights = torch.full((tokens.shape[0], S), 1.0 / S) if need_weights else None
        return self.logp[tokens], state, weights

    def reorder(self, state, index):
        return state.index_select(0, index)


def toy_beats_greedy() -> TableModel:
    # after bos: token 3 (0.6) or token 4 (0.4); after 3 everything is uncertain (5 tokens at 0.2),
    # after 4 eos is certain. Greedy: 3 then p <= 0.2, total <= 0.12; best: 4 eos, total 0.4.
    return TableModel({
        BOS: [0, 0, 0, 0.6, 0.4, 0],
        3: [0, 0, 0.2, 0.2, 0.2, 0.4 - 1e-6],
        4: [0, 0, 1.0, 0, 0, 0],
        5: [0, 0, 1.0, 0, 0, 0],
    })


def src_batch(lengths: list[int]) -> tuple[Tensor, Tensor]:
    S = max(lengths)
    src = torch.zeros(len(lengths), S, dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.arange(n) % 5 + 3
        src[i, n - 1] = EOS
    return src, torch.tensor(lengths)


class CountingModel(Seq2Seq):
    """A toy with real state and source dependence: random next-token scores, plus an eos score
    that grows with the number of steps taken relative to the source length; attention moves
    along the source with the step count."""

    def __init__(self, vocab: int = 7, seed: int = 0) -> None:
        super().__init__()
        self.table = torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(seed))

    def encode(self, src, src_lengths):
        S = src.shape[1]
        mask = (torch.arange(S).unsqueeze(0) < src_lengths.unsqueeze(1)).unsqueeze(1)  # (B, 1, S)
        return Memory(src.float().unsqueeze(-1), mask, {"length": src_lengths.float()})

    def init_state(self, memory):
        return torch.zeros(memory.states.shape[0])

    def step(self, tokens, state, memory, need_weights=False):
        logits = self.table[tokens].clone()
        logits[:, EOS] += 2.0 * (state - memory.extra["length"] / 2)
        logits[:, PAD] = -1e9
        logits[:, BOS] = -1e9
        S = memory.states.shape[1]
        position = -(torch.arange(S).unsqueeze(0) - state.unsqueeze(1)).abs()  # (B, S)
        weights = torch.softmax(position.masked_fill(~memory.mask[:, 0], -1e9), dim=-1)
        return torch.log_softmax(logits, dim=-1), state + 1, weights if need_weights else None

    def reorder(self, state, index):
        return state.index_select(0, index)


def random_rnn(seed=0, vocab=16) -> RNNAttention:
    torch.manual_seed(seed)
    cfg = OmegaConf.structured(RNNAttnConfig(emb_dim=8, hidden_dim=16, attn_dim=8, dropout=0.0))
    model = RNNAttention(cfg, OmegaConf.structured(AttentionConfig(score="dot")), vocab, vocab).eval()
    return model


def random_transformer(seed=0, vocab=16) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(vocab, vocab, d_model=16, heads=2, enc_layers=1, dec_layers=2, d_ff=32, dropout=0.0).eval()


def test_beam_search_finds_a_better_sequence_than_greedy():
    model = toy_beats_greedy()
    src, lengths = src_batch([4])
    cfg = DecodeConfig(beam_size=2, length_penalty=0.0)
    greedy = greedy_search(model, src, lengths, cfg)[0]
    beam = beam_search(model, src, lengths, cfg)[0]
    assert greedy.tokens[0] == 3
    assert beam.tokens == [4]
    assert beam.log_prob == pytest.approx(math.log(0.4), abs=1e-4)
    assert beam.log_prob > greedy.log_prob + 0.5  # log(0.4) vs log(0.6 * 0.4)


@pytest.mark.parametrize("model", [random_rnn(), random_transformer(), CountingModel()])
def test_beam_size_one_equals_greedy(model):
    src, lengths = src_batch([5, 3, 7, 2])
    cfg = DecodeConfig(beam_size=1, length_penalty=0.0)
    greedy = greedy_search(model, src, lengths, cfg)
    beam = beam_search(model, src, lengths, cfg)
    assert [h.tokens for h in beam] == [h.tokens for h in greedy]
    for g, b in zip(greedy, beam):
        assert b.log_prob == pytest.approx(g.log_prob, abs=1e-4)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_max_length_is_respected(beam_size):
    model = TableModel({i: [0, 0, 0, 0.5, 0.5, 0] for i in range(6)})  # never eos
    src, lengths = src_batch([2, 5, 8])
    cfg = DecodeConfig(beam_size=beam_size, max_len_a=0.5, max_len_b=1)
    hyps = translate_batch(model, src, lengths, cfg)
    assert [len(h.tokens) for h in hyps] == max_lengths(lengths, 0.5, 1).tolist() == [2, 3, 5]


@pytest.mark.parametrize("beam_size", [1, 4])
def test_batch_result_equals_one_by_one(beam_size):
    model = CountingModel()
    src, lengths = src_batch([6, 2, 4, 9, 3, 12, 5])
    cfg = DecodeConfig(beam_size=beam_size, max_len_a=1.0, max_len_b=3)
    batch = translate_batch(model, src, lengths, cfg, need_weights=True)
    assert len({len(h.tokens) for h in batch}) > 1  # sentences end at different steps
    for i, hyp in enumerate(batch):
        n = int(lengths[i])
        alone = translate_batch(model, src[i : i + 1, :n], lengths[i : i + 1], cfg, need_weights=True)[0]
        assert hyp.tokens == alone.tokens
        assert hyp.log_prob == pytest.approx(alone.log_prob, abs=1e-4)
        torch.testing.assert_close(hyp.attention, alone.attention)


@pytest.mark.parametrize("model", [random_rnn(), random_transformer()], ids=["rnn", "transformer"])
@pytest.mark.parametrize("beam_size", [1, 3])
def test_attention_of_the_chosen_hypothesis_has_one_row_per_output_step(beam_size, model):
    src, lengths = src_batch([5, 3])
    for hyp, n in zip(translate_batch(model, src, lengths, DecodeConfig(beam_size=beam_size), need_weights=True), [5, 3]):
        assert hyp.attention.shape == (len(hyp.tokens) + 1, n)  # + the eos step; real source only
        torch.testing.assert_close(hyp.attention.sum(-1), torch.ones(len(hyp.tokens) + 1))


def test_length_penalty_is_gnmt_and_changes_the_choice():
    assert length_penalty(torch.tensor([1]), 1.0).item() == pytest.approx(1.0)
    assert length_penalty(torch.tensor([7]), 0.5).item() == pytest.approx(math.sqrt(2.0))
    # short: "4 eos" p=0.4 (2 tokens); long: "3 5 5 eos" p=0.6*0.4*...; strong alpha favours long
    model = TableModel({
        BOS: [0, 0, 0, 0.55, 0.45, 0],
        3: [0, 0, 0.05, 0, 0, 0.95],
        4: [0, 0, 1.0, 0, 0, 0],
        5: [0, 0, 0.05, 0, 0, 0.95],
    })
    src, lengths = src_batch([6])
    raw = beam_search(model, src, lengths, DecodeConfig(beam_size=3, length_penalty=0.0))[0]
    long = beam_search(model, src, lengths, DecodeConfig(beam_size=3, length_penalty=3.0))[0]
    assert raw.tokens == [4]
    assert len(long.tokens) > 1


def test_search_never_emits_pad_or_bos_and_a_cut_hypothesis_pays_for_eos():
    # pad and bos are the most probable tokens after everything: the search must skip them;
    # eos is unlikely (0.01), so cutting at the maximum length must cost log(0.01)
    model = TableModel({last: [0.45, 0.3, 0.01, 0.24, 0, 0] for last in range(6)})
    src, lengths = src_batch([2])
    cfg = DecodeConfig(max_len_a=0.0, max_len_b=3)
    greedy = greedy_search(model, src, lengths, cfg)[0]
    assert list(greedy.tokens) == [3, 3, 3]  # the best allowed token, then the forced eos (not listed)
    assert greedy.log_prob == pytest.approx(3 * math.log(0.24) + math.log(0.01), rel=1e-4)
    beam_cfg = DecodeConfig(beam_size=3, max_len_a=0.0, max_len_b=3, length_penalty=0.0)
    beam = beam_search(model, src, lengths, beam_cfg)[0]
    # with eos paying its cost, stopping at once (0.01) beats three 3s and an eos (0.24^3 * 0.01)
    assert list(beam.tokens) == [] and beam.log_prob == pytest.approx(math.log(0.01), rel=1e-4)


def test_n_best_lists_the_beams_distinct_hypotheses_best_first():
    model = toy_beats_greedy()
    src, lengths = src_batch([4])
    cfg = DecodeConfig(beam_size=3, length_penalty=0.0)
    hyps = beam_search_n_best(model, src, lengths, cfg, n_best=3)[0]
    assert [h.tokens for h in hyps][:2] == [[4], [3, 5]]  # p 0.4, then 0.6 * (0.4 - 1e-6) * 1.0
    assert hyps[1].log_prob == pytest.approx(math.log(0.6 * 0.4), abs=1e-4)
    assert len({tuple(h.tokens) for h in hyps}) == 3
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    assert hyps[0].tokens == beam_search(model, src, lengths, cfg)[0].tokens


@pytest.mark.parametrize("model", [random_rnn(), random_transformer(), CountingModel()])
def test_n_best_scores_are_length_normalised_and_the_first_is_the_beam_result(model):
    src, lengths = src_batch([5, 3, 7])
    cfg = DecodeConfig(beam_size=4, length_penalty=1.0)
    n_best = beam_search_n_best(model, src, lengths, cfg, n_best=4, need_weights=True)
    best = beam_search(model, src, lengths, cfg)
    for hyps, one in zip(n_best, best):
        assert hyps[0].tokens == one.tokens
        for h in hyps:
            lp = float(length_penalty(torch.tensor(len(h.tokens) + 1), 1.0))
            assert h.score == pytest.approx(h.log_prob / lp, abs=1e-4)
            assert h.attention.shape[0] == len(h.tokens) + 1
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    with pytest.raises(ValueError, match="n_best=5"):
        beam_search_n_best(model, src, lengths, cfg, n_best=5)


SOURCES = [[5, 6, 7], [3], [4, 9, 11, 12, 3, 8], [10, 4], [7, 7, 7, 3, 5]]  # source ids without </s>


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("model", [random_rnn(), random_transformer()], ids=["rnn", "transformer"])
def test_decoding_health_is_the_searchs_own_weights_at_every_layer_and_head(model, beam_size):
    """Teacher-forced on the found outputs, in batches of 2 (padded sources and outputs), against
    a hand loop over HealthMeter on each sentence alone; the last layer's mean of heads against
    the health of the weights the search itself returned (the RNN: its one attention)."""
    src, lengths = pad_batch(SOURCES, PAD, eos=EOS)
    found = translate_batch(model, src, lengths, DecodeConfig(beam_size=beam_size), need_weights=True)
    assert sum(len(h.tokens) for h in found) > 2 * len(found)  # steps beyond </s> to score
    health = decoding_health(model, SOURCES, found, batch_size=2, device=torch.device("cpu"))
    layers = health["layers"]
    n_layers, heads = (1, 1) if isinstance(model, RNNAttention) else (2, 2)
    assert list(layers) == [f"layer{i + 1}" for i in range(n_layers)]
    assert health["rows"] == sum(len(h.tokens) + 1 for h in found)
    for layer in range(n_layers):
        for head in [*range(heads), "mean"]:
            reference = HealthMeter()
            for ids, hyp in zip(SOURCES, found):
                one_src, one_len = pad_batch([ids], PAD, eos=EOS)
                tgt_in = torch.tensor([[BOS, *hyp.tokens]])
                w = model.attention_weights(one_src, one_len, tgt_in)["cross"][layer][0]  # (H, T, S)
                reference.add(w.mean(0) if head == "mean" else w[head])
            got, want = layers[f"layer{layer + 1}"]["mean" if head == "mean" else f"head{head + 1}"], reference.summary()
            for key in HEALTH_KEYS:
                assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), (layer, head, key)
    searched = attention_health([h.attention for h in found])
    last = layers[f"layer{n_layers}"]["mean"]
    for key in HEALTH_KEYS:
        assert last[key] == pytest.approx(searched[key], rel=1e-5, abs=1e-6), key
        assert 0 <= last[key] <= (math.log(max(len(s) for s in SOURCES) + 1) if key == "entropy" else 1)


class CountingTokenizer:
    """Whitespace-separated ids as text; counts what it is asked to tokenize."""

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, text: str) -> list[int]:
        self.encoded.append(text)
        return [int(t) for t in text.split()]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        self.encoded += texts
        return [[int(t) for t in text.split()] for text in texts]

    def decode(self, ids: list[int]) -> str:
        return " ".join(map(str, ids))


@pytest.mark.parametrize("model", [random_rnn(), random_transformer()], ids=["rnn", "transformer"])
def test_score_split_tokenizes_each_source_once_and_feeds_the_search_and_its_health(model):
    from attnlab.data.pairs import Tokenizers
    from attnlab.data.text import Split
    from attnlab.decode.translate import score_split, translate_sentences

    tok = CountingTokenizer()
    toks = Tokenizers(tok, tok)
    texts = [" ".join(map(str, ids)) for ids in SOURCES]
    split = Split(texts, [[t] for t in texts])
    cfg = DecodeConfig(beam_size=3, batch_size=2)
    scores, hyps = score_split(model, toks, split, cfg, torch.device("cpu"), health=True)
    assert tok.encoded == texts  # once each: the search and the health pass share the ids
    found = translate_sentences(model, toks, texts, cfg, torch.device("cpu"), need_weights=True)
    assert hyps == [tok.decode(h.tokens) for h in found]
    want = decoding_health(model, SOURCES, found, batch_size=2, device=torch.device("cpu"))["layers"]
    assert scores["attention_health"]["layers"] == want
    assert scores["attention_health"]["entropy"] == attention_health([h.attention for h in found])["entropy"]
