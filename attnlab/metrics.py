"""Translation quality: corpus BLEU (Papineni et al. 2002) and chrF (Popovic 2015) with sacreBLEU.

Scores are computed on detokenized, cased text, as sacreBLEU intends (Post 2018), against one or
several references per sentence (Tatoeba often has several translations of one sentence; a
sentence with fewer references than the others gets ``None`` in the missing streams, which
sacreBLEU treats as a variable number of references). The signatures say exactly how the
numbers were computed, so they can be compared with other papers' numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sacrebleu.metrics import BLEU, CHRF

from attnlab.errors import UserError


@dataclass
class TranslationScores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    bleu_detail: str  # sacreBLEU's one-line summary (n-gram precisions, brevity penalty)

    def as_dict(self) -> dict[str, float | str]:
        return {
            "bleu": self.bleu,
            "chrf": self.chrf,
            "sacrebleu_signature": self.bleu_signature,
            "chrf_signature": self.chrf_signature,
            "bleu_detail": self.bleu_detail,
        }


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Per-sentence reference lists -> sacreBLEU's streams (stream k = every sentence's k-th
    reference, ``None`` where a sentence has fewer)."""
    depth = max((len(r) for r in references), default=0)
    return [[r[k] if k < len(r) else None for r in references] for k in range(depth)]


# Source-length buckets (words, inclusive; None = no upper end) of ``bleu_by_length``: about a
# quarter of the shipped test set each up to 10 words, then the longer sentences users type.
LENGTH_BUCKETS: tuple[tuple[int, int | None], ...] = ((1, 4), (5, 6), (7, 10), (11, 16), (17, None))


def bucket_name(low: int, high: int | None) -> str:
    return f"{low}+" if high is None else f"{low}-{high}"


def bleu_by_length(
    sources: Sequence[str],
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    buckets: Sequence[tuple[int, int | None]] = LENGTH_BUCKETS,
) -> dict[str, dict[str, float]]:
    """Corpus BLEU of the sentences whose source has a given number of words (whitespace-split),
    each bucket scored on its own: ``{"1-4": {"sentences": n, "bleu": b, "length_ratio": r}}``,
    ``length_ratio`` = output length / reference length (below 1: too short). Empty buckets are
    left out."""
    out: dict[str, dict[str, float]] = {}
    for low, high in buckets:
        idx = [i for i, s in enumerate(sources) if low <= len(s.split()) and (high is None or len(s.split()) <= high)]
        if not idx:
            continue
        score = BLEU().corpus_score([hypotheses[i] for i in idx], reference_streams([references[i] for i in idx]))
        ratio = score.sys_len / score.ref_len if score.ref_len else 0.0
        out[bucket_name(low, high)] = {"sentences": len(idx), "bleu": float(score.score), "length_ratio": ratio}
    return out


def corpus_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> TranslationScores:
    """Corpus BLEU and chrF of ``hypotheses`` against per-sentence reference lists."""
    if len(hypotheses) != len(references):
        raise UserError(f"{len(hypotheses)} translations but {len(references)} reference lists")
    if not hypotheses or any(not refs for refs in references):
        raise UserError("every sentence needs at least one reference translation to compute BLEU")
    streams = reference_streams(references)
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(list(hypotheses), streams)
    c = chrf.corpus_score(list(hypotheses), streams)
    return TranslationScores(
        bleu=float(b.score),
        chrf=float(c.score),
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        bleu_detail=b.format(score_only=False, signature="", width=2),
    )
