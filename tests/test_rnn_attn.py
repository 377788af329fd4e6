"""The RNN translator: cells and encoder equal torch's, the seed's equations by hand, masking,
every scoring trains and decodes."""

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from attnlab.attention.scores import SCORES as SCORE_REGISTRY
from attnlab.config import AttentionConfig, DecodeConfig, InputFeeding, RNNAttnConfig
from attnlab.decode import greedy_search
from attnlab.models.rnn_attn import DecoderState, Encoder, GRUStep, LSTMStep, RNNAttention, reverse_padded
from attnlab.models.seq2seq import Memory

SCORES = [*SCORE_REGISTRY, "none"]  # every registered scoring, and no attention
FEEDINGS = [f.value for f in InputFeeding]


pytestmark = pytest.mark.usefixtures("one_thread")



def make_model(score="dot", vocab=12, local="none", window=0, **sizes) -> RNNAttention:
    defaults = dict(emb_dim=8, hidden_dim=16, attn_dim=8, dropout=0.0)
    cfg = OmegaConf.structured(RNNAttnConfig(**{**defaults, **sizes}))
    attention = AttentionConfig(score=score, local=local, window=window)
    return RNNAttention(cfg, OmegaConf.structured(attention), vocab, vocab)

def assert_forward_equals_steps(model, src, lengths, tgt):
    """Teacher-forced forward() gives the log-probabilities of step() fed the same tokens."""
    logp = torch.log_softmax(model(src, lengths, tgt), dim=-1)  # (B, T, V)
    memory = model.encode(src, lengths)
    state = model.init_state(memory)
    for t in range(tgt.shape[1]):
        step_logp, state, _ = model.step(tgt[:, t], state, memory)
        real = tgt[:, t] != 0
        torch.testing.assert_close(logp[real, t], step_logp[real], atol=1e-5, rtol=1e-5)



def test_gru_step_equals_torch_gru_cell():
    torch.manual_seed(0)
    step, ref = GRUStep(3, 2, 4), nn.GRUCell(5, 4)
    with torch.no_grad():
        ref.weight_ih.copy_(torch.cat([step.weight_pre, step.weight_step], dim=1))
        ref.weight_hh.copy_(step.weight_hh)
        ref.bias_ih.copy_(step.bias_ih)
        ref.bias_hh.copy_(step.bias_hh)
    x_pre, x_step, h = torch.randn(6, 3), torch.randn(6, 2), torch.randn(6, 4)
    torch.testing.assert_close(step(step.precompute(x_pre), x_step, h), ref(torch.cat([x_pre, x_step], 1), h))


def test_lstm_step_equals_torch_lstm_cell():
    torch.manual_seed(0)
    step, ref = LSTMStep(3, 2, 4), nn.LSTMCell(5, 4)
    with torch.no_grad():
        ref.weight_ih.copy_(torch.cat([step.weight_pre, step.weight_step], dim=1))
        ref.weight_hh.copy_(step.weight_hh)
        ref.bias_ih.copy_(step.bias_ih)
        ref.bias_hh.copy_(step.bias_hh)
    x_pre, x_step, h, c = torch.randn(6, 3), torch.randn(6, 2), torch.randn(6, 4), torch.randn(6, 4)
    got, want = step(step.precompute(x_pre), x_step, (h, c)), ref(torch.cat([x_pre, x_step], 1), (h, c))
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])


def test_reverse_padded_reverses_within_length_and_is_an_involution():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    lengths = torch.tensor([3, 2])
    assert reverse_padded(x, lengths).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]
    assert torch.equal(reverse_padded(reverse_padded(x, lengths), lengths), x)


@pytest.mark.parametrize("cell,rnn", [("gru", nn.GRU), ("lstm", nn.LSTM)])
def test_encoder_equals_torch_rnn_on_packed_sequences(cell, rnn):
    """Reference path: torch's packed bidirectional 2-layer RNN with the same weights."""
    torch.manual_seed(0)
    step_cls = {"gru": GRUStep, "lstm": LSTMStep}[cell]
    enc = Encoder(step_cls, emb_dim=5, hidden_dim=8, layers=2, bidirectional=True, dropout=0.0)
    ref = rnn(5, 4, num_layers=2, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for layer in range(2):
            for d, suffix in enumerate(["", "_reverse"]):
                c = enc.cells[layer * 2 + d]
                getattr(ref, f"weight_ih_l{layer}{suffix}").copy_(c.weight_pre)
                getattr(ref, f"weight_hh_l{layer}{suffix}").copy_(c.weight_hh)
                getattr(ref, f"bias_ih_l{layer}{suffix}").copy_(c.bias_ih)
                getattr(ref, f"bias_hh_l{layer}{suffix}").copy_(c.bias_hh)
    x, lengths = torch.randn(3, 6, 5), torch.tensor([6, 2, 4])
    states, summary = enc(x, lengths)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, final = ref(packed)
    want, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=6)
    torch.testing.assert_close(states, want)
    h_n = final[0] if cell == "lstm" else final  # (layers * 2, B, 4)
    torch.testing.assert_close(summary, torch.cat([h_n[-2], h_n[-1]], dim=1))


def test_decoder_step_follows_the_seed_equations_by_hand():
    """s_t = GRU([x'_t; c_{t-1}], s_{t-1}); k = W_K h; q = W_Q s_t; alpha = softmax(k^T q);
    c_t = sum alpha_i h_i; logits = W_s tanh(W_c [s_t; c_t]) -- with weights chosen by hand."""
    model = make_model(
        "dot", vocab=3, emb_dim=2, hidden_dim=2, attn_dim=2, bidirectional=False, tie_embeddings=False,
        input_feeding="context",
    )
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # GRU with zero weights: r = z = 1/2, n = 0, so s_t = s_{t-1} / 2
        model.key_proj.weight.copy_(torch.eye(2))  # W_K = I
        model.query_proj.weight.copy_(torch.eye(2))  # W_Q = I
        model.combine.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]]))  # picks s_t[0], c_t[1]
        model.out.weight.copy_(torch.tensor([[1.0, 0], [0, 1.0], [1.0, 1.0]]))
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # encoder states h_1..h_3 (B=1, S=3, H=2)
    memory = Memory(h, torch.ones(1, 1, 3, dtype=torch.bool), {"keys": model.key_proj(h), "summary": h[:, 0]})
    state = DecoderState([torch.tensor([[2.0, 0.0]])], torch.tensor([[5.0, -7.0]]))  # s_{t-1}, c_{t-1}
    logp, new, alpha = model.step(torch.tensor([1]), state, memory, need_weights=True)
    e = math.e
    torch.testing.assert_close(new.layers[0], torch.tensor([[1.0, 0.0]]))  # s_t = s_{t-1} / 2
    # scores k_i^T q_t = [1, 0, 1] -> alpha = [e, 1, e] / (2e + 1)
    torch.testing.assert_close(alpha, torch.tensor([[e, 1.0, e]]) / (2 * e + 1))
    c = torch.tensor([[2 * e, 1 + e]]) / (2 * e + 1)  # c_t = sum alpha_i h_i
    torch.testing.assert_close(new.context, c)
    h_tilde = torch.tanh(torch.tensor([[1.0, c[0, 1]]]))  # tanh(W_c [s_t; c_t])
    logits = torch.stack([h_tilde[0, 0], h_tilde[0, 1], h_tilde.sum()]).unsqueeze(0)
    torch.testing.assert_close(logp, torch.log_softmax(logits, dim=-1))


def _random_state(model: RNNAttention, batch: int, seed: int) -> DecoderState:
    g = torch.Generator().manual_seed(seed)
    H, E = model.hidden_dim, model.combine.out_features
    context = torch.randn(batch, H, generator=g) if model.use_attention else None
    output = torch.randn(batch, E, generator=g) if model.feed_output else None
    return DecoderState([torch.randn(batch, H, generator=g)], context, output)


@pytest.mark.parametrize("feeding", FEEDINGS)
def test_each_fed_vector_changes_the_next_state_and_nothing_else_does(feeding):
    """seed: s_t reads o_{t-1} and c_{t-1}; context: c_{t-1} only; attentional: h~_{t-1} only.
    Random weights (none zeroed): changing a fed vector changes s_t, changing another does not."""
    torch.manual_seed(0)
    model = make_model("dot", input_feeding=feeding).eval()
    src, lengths = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]]), torch.tensor([4, 3])
    memory = model.encode(src, lengths)
    tokens = torch.tensor([4, 5])
    base = _random_state(model, 2, seed=1)
    if base.output is None:  # context feeding keeps no h~_{t-1}: give it one to ignore
        base.output = torch.randn(2, model.combine.out_features)
    s_base = model.step(tokens, base, memory)[1].layers[0]
    for field, fed in (("context", feeding in ("seed", "context")), ("output", feeding in ("seed", "attentional"))):
        changed = DecoderState(base.layers, base.context, base.output)
        setattr(changed, field, getattr(base, field) + 1.0)
        s_changed = model.step(tokens, changed, memory)[1].layers[0]
        assert (not torch.allclose(s_changed, s_base)) == fed, (field, feeding)


def test_seed_feeding_is_one_gru_step_on_the_concatenated_input():
    """s_t = GRUCell([o_{t-1}; x'_t; c_{t-1}], s_{t-1}) with torch's cell (columns reordered)."""
    torch.manual_seed(0)
    model = make_model("general", input_feeding="seed").eval()
    cell = model.cells[0]
    E, H = 8, 16
    ref = nn.GRUCell(E + E + H, H)  # input [o (E); x' (E); c (H)]
    with torch.no_grad():
        w_o, w_c = cell.weight_step[:, :E], cell.weight_step[:, E:]
        ref.weight_ih.copy_(torch.cat([w_o, cell.weight_pre, w_c], dim=1))
        ref.weight_hh.copy_(cell.weight_hh)
        ref.bias_ih.copy_(cell.bias_ih)
        ref.bias_hh.copy_(cell.bias_hh)
    memory = model.encode(torch.tensor([[5, 6, 2]]), torch.tensor([3]))
    state = _random_state(model, 1, seed=3)
    tokens = torch.tensor([7])
    x = model.tgt_embed(tokens) * model.embed_scale
    want = ref(torch.cat([state.output, x, state.context], dim=1), state.layers[0])
    torch.testing.assert_close(model.step(tokens, state, memory)[1].layers[0], want)


@pytest.mark.parametrize("feeding", FEEDINGS)
@pytest.mark.parametrize("score", SCORES)
def test_teacher_forcing_equals_step_by_step_decoding(score, feeding):
    """forward() (the training path, with precomputed inputs and the output layer outside the
    loop) gives the log-probabilities of step() fed the same tokens one by one."""
    torch.manual_seed(0)
    model = make_model(score, input_feeding=feeding, dec_layers=2).eval()
    src = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0]])
    lengths = torch.tensor([5, 3])
    tgt = torch.tensor([[1, 4, 5, 6, 7], [1, 7, 8, 0, 0]])
    assert_forward_equals_steps(model, src, lengths, tgt)


@pytest.mark.parametrize("score", list(SCORE_REGISTRY))
def test_query_key_normalisation_bounds_the_scores(score):
    """With model.qk_scale = g: |q_t| = g, |k_i| = 1 before the score; for dot, |score| <= g."""
    torch.manual_seed(0)
    model = make_model(score, qk_scale=3.0).eval()
    src, lengths = torch.tensor([[5, 6, 7, 2]]), torch.tensor([4])
    memory = model.encode(src, lengths)
    q = model._query(torch.randn(4, 16) * 100)
    torch.testing.assert_close(q.norm(dim=-1), torch.full((4,), 3.0))
    if score in ("dot", "scaled_dot", "general"):
        torch.testing.assert_close(memory.extra["keys"].norm(dim=-1), torch.ones(1, 4))
    if score == "dot":
        scores = model.score(q.unsqueeze(0), memory.extra["keys"])  # (1, 4, S)
        assert scores.abs().max() <= 3.0 + 1e-5


def test_local_predictive_weights_by_hand():
    """Luong et al. 2015, eq. 9-10: p_t = S sigmoid(v_p^T tanh(W_p s_t)); the window
    |s - p_t| <= D; a_t(s) = softmax over the window of k_s^T q_t, times exp(-(s - p_t)^2 / (2 (D/2)^2))."""
    model = make_model(
        "dot", vocab=3, emb_dim=2, hidden_dim=2, attn_dim=2, bidirectional=False, tie_embeddings=False,
        input_feeding="context", qk_scale=0.0, local="predictive", window=1,
    )
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # GRU with zero weights: s_t = s_{t-1} / 2
        model.key_proj.weight.copy_(torch.eye(2))  # W_K = I
        model.query_proj.weight.copy_(torch.eye(2))  # W_Q = I
        model.position_proj.weight.copy_(torch.eye(2))  # W_p = I
        model.position_v.weight.copy_(torch.tensor([[1.0, 1.0]]))  # v_p = (1, 1)
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [0.0, 2.0], [0.0, 0.0]]])  # S = 5 + 1 pad
    mask = torch.tensor([[[True] * 5 + [False]]])
    memory = Memory(h, mask, {"keys": model.key_proj(h), "summary": h[:, 0]})
    state = DecoderState([torch.tensor([[2.0, 0.0]])], torch.zeros(1, 2))  # s_t will be (1, 0)
    _, new, alpha = model.step(torch.tensor([1]), state, memory, need_weights=True)
    p_t = 5 / (1 + math.exp(-math.tanh(1.0)))  # 5 sigmoid(tanh(1) + tanh(0)) = 3.408
    assert 2 < p_t - 1 < 3 and 4 < p_t + 1 < 5  # the window holds positions 3 and 4
    scores = torch.tensor([2.0, 0.0])  # k_3^T q = (2, 0).(1, 0), k_4^T q = (0, 2).(1, 0)
    align = torch.softmax(scores, dim=0)
    gauss = torch.exp(-(torch.tensor([3.0, 4.0]) - p_t) ** 2 / (2 * 0.5**2))  # sigma = D / 2
    want = torch.zeros(1, 6)
    want[0, 3:5] = align * gauss
    torch.testing.assert_close(alpha, want)
    torch.testing.assert_close(new.context, want @ h[0])  # c_t = sum_s a_t(s) h_s


def test_local_monotonic_attends_within_d_of_the_step():
    torch.manual_seed(0)
    model = make_model("dot", local="monotonic", window=1).eval()
    src, lengths = torch.tensor([[5, 6, 7, 8, 9, 10, 2]]), torch.tensor([7])
    memory = model.encode(src, lengths)
    state = model.init_state(memory)
    for t, token in enumerate([1, 4, 5, 6]):
        _, state, alpha = model.step(torch.tensor([token]), state, memory, need_weights=True)
        inside = (torch.arange(7) - t).abs() <= 1
        assert torch.all(alpha[0, ~inside] == 0) and torch.all(alpha[0, inside] > 0)
        torch.testing.assert_close(alpha.sum(), torch.tensor(1.0))


@pytest.mark.parametrize("local", ["monotonic", "predictive"])
def test_local_attention_teacher_forcing_equals_step_by_step(local):
    torch.manual_seed(0)
    model = make_model("general", local=local, window=2).eval()
    src = torch.tensor([[5, 6, 7, 8, 9, 10, 2], [9, 10, 2, 0, 0, 0, 0]])
    lengths = torch.tensor([7, 3])
    tgt = torch.tensor([[1, 4, 5, 6, 7, 8], [1, 7, 8, 0, 0, 0]])
    assert_forward_equals_steps(model, src, lengths, tgt)


def test_local_predictive_runs_from_the_command_line(tmp_path):
    """python -m attnlab attention.window=3 attention.local=predictive (tiny sizes, in process)."""
    from attnlab import api

    results = api.run(
        ["attention.window=3", "attention.local=predictive", "data.max_train_pairs=300", "data.max_eval_sentences=6",
         "data.vocab_size=300", "model.emb_dim=16", "model.hidden_dim=16", "model.attn_dim=16", "trainer.max_steps=3",
         "trainer.max_tokens=1500", "trainer.num_threads=1", "trainer.progress=false", "decode.valid_sentences=4",
         "decode.beam_size=2", "viz.enabled=false"],
        run_dir=tmp_path / "run",
    )
    assert results["steps"] == 3 and results["test_sentences"] == 6
    assert 0 < results["attention_health"]["max_weight"] <= 1


def test_a_config_saved_before_input_feeding_and_qk_scale_rebuilds_the_old_model():
    """Checkpoints of older runs carry a model config without these keys: context feeding, plain scores."""
    old = OmegaConf.create(dict(name="rnn_attn", cell="gru", emb_dim=8, hidden_dim=16, enc_layers=1, dec_layers=1,
                                bidirectional=True, attn_dim=8, dropout=0.0, tie_embeddings=True))
    model = RNNAttention(old, OmegaConf.structured(AttentionConfig(score="dot")), 12, 12)
    assert model.feed_context and not model.feed_output and model.log_qk_scale is None
    assert model.cells[0].weight_step.shape == (3 * 16, 16)  # reads c_{t-1} (H) only


def test_negative_qk_scale_is_a_user_error():
    from attnlab.errors import UserError

    with pytest.raises(UserError, match="qk_scale"):
        make_model(qk_scale=-1.0)


@pytest.mark.parametrize("score", SCORES)
def test_padded_source_positions_change_nothing(score):
    torch.manual_seed(0)
    model = make_model(score).eval()
    src = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0]])
    lengths = torch.tensor([5, 3])
    tgt = torch.tensor([[1, 4, 5, 6], [1, 7, 8, 0]])
    noisy = src.clone()
    noisy[1, 3:] = torch.tensor([11, 4])  # garbage where the padding was
    torch.testing.assert_close(model(src, lengths, tgt), model(noisy, lengths, tgt))
    if score != "none":
        memory = model.encode(src, lengths)
        _, _, alpha = model.step(torch.tensor([1, 1]), model.init_state(memory), memory, need_weights=True)
        assert torch.all(alpha[1, 3:] == 0) and torch.allclose(alpha.sum(-1), torch.ones(2))


def test_sentence_in_a_batch_equals_the_sentence_alone():
    torch.manual_seed(0)
    model = make_model("general", enc_layers=2, dec_layers=2).eval()
    src = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0]])
    tgt = torch.tensor([[1, 4, 5, 6], [1, 7, 8, 3]])
    both = model(src, torch.tensor([5, 3]), tgt)
    alone = model(src[1:, :3], torch.tensor([3]), tgt[1:])
    torch.testing.assert_close(both[1:], alone)


def copy_task(n=64, length=5, vocab=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    body = torch.randint(4, vocab, (n, length), generator=g)
    src = torch.cat([body, torch.full((n, 1), 2)], dim=1)  # ... eos
    tgt = torch.cat([torch.full((n, 1), 1), body.flip(1), torch.full((n, 1), 2)], dim=1)  # bos reversed eos
    return src, torch.full((n,), length + 1), tgt


@pytest.mark.parametrize(
    "score,cell,feeding",
    [(s, "gru", "seed") for s in SCORES] + [("dot", "lstm", f) for f in FEEDINGS] + [("none", "lstm", "seed")],
)
def test_every_scoring_trains_and_decodes(score, cell, feeding):
    torch.manual_seed(0)
    model = make_model(score, cell=cell, tie_embeddings=score != "general", input_feeding=feeding)
    src, lengths, tgt = copy_task()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        logits = model(src, lengths, tgt[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 12), tgt[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    model.eval()
    hyps = greedy_search(model, src[:4], lengths[:4], DecodeConfig(max_len_a=1.0, max_len_b=2))
    assert len(hyps) == 4 and all(len(h.tokens) <= 8 for h in hyps)


def test_attention_reverses_the_sequence_after_training():
    """With attention, the reverse task is learned well in a few hundred steps."""
    torch.manual_seed(0)
    model = make_model("dot", hidden_dim=32, emb_dim=16, attn_dim=16)
    src, lengths, tgt = copy_task(n=128)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(120):
        logits = model(src, lengths, tgt[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 12), tgt[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test_src, test_len, test_tgt = copy_task(n=32, seed=1)
    hyps = greedy_search(model, test_src, test_len, DecodeConfig())
    correct = sum(h.tokens == row[1:-1].tolist() for h, row in zip(hyps, test_tgt))
    assert correct >= 24, correct


def test_odd_hidden_size_with_bidirectional_encoder_is_a_user_error():
    from attnlab.errors import UserError

    with pytest.raises(UserError, match="must be even"):
        make_model(hidden_dim=15)


@pytest.mark.slow
def test_compiled_training_step_equals_the_plain_one():
    """trainer.compile: the compiled loop bodies give the same loss and gradients (minutes of
    compilation on a small CPU, hence slow)."""
    torch.manual_seed(0)
    plain = make_model("dot", qk_scale=5.0)
    compiled = make_model("dot", qk_scale=5.0)
    compiled.load_state_dict(plain.state_dict())
    compiled.compile_for_training()
    src, lengths, tgt = copy_task(n=8)
    for model in (plain, compiled):
        loss = F.cross_entropy(model(src, lengths, tgt[:, :-1]).reshape(-1, 12), tgt[:, 1:].reshape(-1))
        loss.backward()
        model.loss = loss.detach()
    torch.testing.assert_close(compiled.loss, plain.loss)
    for (name, p), q in zip(plain.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)
