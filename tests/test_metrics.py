"""sacreBLEU corpus BLEU and chrF, multi-reference, with signatures."""

import pytest

from attnlab.errors import UserError
from attnlab.metrics import corpus_scores, reference_streams


def test_perfect_translations_score_100():
    s = corpus_scores(["The cat sat on the mat.", "Hello there!"], [["The cat sat on the mat."], ["Hello there!"]])
    assert s.bleu == pytest.approx(100.0) and s.chrf == pytest.approx(100.0)
    assert s.bleu_signature.startswith("nrefs:1|case:mixed") and "tok:13a" in s.bleu_signature
    assert "nrefs:1" in s.chrf_signature


def test_a_hypothesis_matching_any_reference_counts():
    hyps = ["I am hungry.", "He runs fast."]
    one = corpus_scores(hyps, [["I'm starving."], ["He is a fast runner."]])
    many = corpus_scores(hyps, [["I'm starving.", "I am hungry."], ["He is a fast runner.", "He runs fast."]])
    assert many.bleu == pytest.approx(100.0) and one.bleu < 30.0


def test_variable_number_of_references():
    refs = [["I am hungry.", "I'm hungry."], ["He runs fast."]]
    assert reference_streams(refs) == [["I am hungry.", "He runs fast."], ["I'm hungry.", None]]
    s = corpus_scores(["I'm hungry.", "He runs fast."], refs)
    assert s.bleu == pytest.approx(100.0)
    assert "nrefs:var" in s.bleu_signature


def test_case_matters_and_text_is_detokenized():
    cased = corpus_scores(["the Cat sat on the mat ."], [["The cat sat on the mat."]])
    assert 0.0 < cased.bleu < 100.0


def test_mismatched_lengths_are_a_user_error():
    with pytest.raises(UserError, match="2 translations but 1"):
        corpus_scores(["a", "b"], [["a"]])
    with pytest.raises(UserError, match="at least one reference"):
        corpus_scores(["a"], [[]])


def test_bleu_by_length_scores_each_source_length_bucket_on_its_own():
    from attnlab.metrics import bleu_by_length

    sources = ["a b", "a b c d", "a b c d e", "w " * 12, "x " * 20]
    refs = [["the cat sat on the mat"], ["a dog ran in the park"], ["it is cold today here"],
            ["we went home after the long day at work"], ["this is a very long sentence indeed"]]
    hyps = ["the cat sat on the mat", "a dog ran in park", "it is warm", "we went home", "nothing"]
    buckets = bleu_by_length(sources, hyps, refs)
    assert list(buckets) == ["1-4", "5-6", "11-16", "17+"]  # 7-10 is empty: left out
    assert [b["sentences"] for b in buckets.values()] == [2, 1, 1, 1]
    alone = corpus_scores(hyps[:2], refs[:2])
    assert buckets["1-4"]["bleu"] == pytest.approx(alone.bleu)
    assert buckets["11-16"]["length_ratio"] == pytest.approx(3 / 9)  # too short: 3 of 9 words
