"""JS-n: the Jensen-Shannon divergence between character n-gram language models.

The metric of the WGAN-GP language model (Gulrajani et al., 2017, ``language_helpers.py``,
``NgramLanguageModel.js_with``), reported by the DGflow paper as JS-4 and JS-6. For a set of
sentences ``S``, the n-gram model is the frequency distribution of all its n-grams
(every window ``s[i:i+n]``, ``0 <= i <= len(s) - n``, of every sentence):

    P_S(w) = #{occurrences of w in S} / #{n-grams in S}

    JS(P, Q) = 1/2 KL(P || M) + 1/2 KL(Q || M),   M = (P + Q) / 2,   KL(P || M) = sum_w P(w) log(P(w) / M(w))

with ``P`` the model of the real sentences and ``Q`` that of the generated ones. Like the
reference code it is reported in **bits** (natural-log JS divided by ``log 2``), so it lies in
``[0, 1]``: 0 for identical n-gram frequencies, 1 for disjoint n-gram sets; ``unit="nats"``
gives the natural-log value (at most ``log 2``). Sentences are scored as given: the reference
scores fixed-length, pad-filled strings (pass ``dgflow.text.fixed_length(...)``), so pad
n-grams count too.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

NGRAMS = (4, 6)  # the paper's JS-4 and JS-6


def ngram_counts(sentences: Sequence[str], n: int) -> Counter:
    """How often each n-gram (a substring of length ``n``) occurs over ``sentences``."""
    counts: Counter = Counter()
    for s in sentences:
        counts.update(s[i:i + n] for i in range(len(s) - n + 1))
    return counts


def ngram_js(generated: Sequence[str], real: Sequence[str], n: int, *, unit: str = "bits") -> float:
    """JS divergence between the ``n``-gram models of ``generated`` and ``real`` sentences (bits by default)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number >= 1 (4 for JS-4, 6 for JS-6), got {n!r}")
    if unit not in ("bits", "nats"):
        raise ValueError(f"unit must be 'bits' or 'nats', got {unit!r}")
    for name, sentences in (("generated", generated), ("real", real)):
        if isinstance(sentences, str):
            raise TypeError(f"{name} must be a list of sentences, got a single string; wrap it as [sentence]")
    p, q = ngram_counts(real, n), ngram_counts(generated, n)
    for name, counts, sentences in (("real", p, real), ("generated", q, generated)):
        if not counts:
            raise ValueError(f"the {len(sentences)} {name} sentences hold no {n}-grams (each is shorter than {n} "
                             "characters); score fixed-length sentences (dgflow.text.fixed_length) or use a smaller n")
    p_total, q_total = sum(p.values()), sum(q.values())
    js = 0.0
    for counts, total, other, other_total in ((p, p_total, q, q_total), (q, q_total, p, p_total)):
        for w, c in counts.items():
            pw, qw = c / total, other.get(w, 0) / other_total
            js += 0.5 * pw * math.log(2 * pw / (pw + qw))  # 1/2 P(w) log(P(w) / M(w))
    js = max(js, 0.0)  # rounding can leave -1e-17 for identical models
    return js / math.log(2) if unit == "bits" else js


def text_scores(sentences: Sequence[str], real: Sequence[str], ngrams: Sequence[int] = NGRAMS) -> dict[str, float]:
    """``{"js4": ..., "js6": ...}``: JS-n (bits) of fixed-length ``sentences`` against ``real`` ones."""
    return {f"js{n}": ngram_js(sentences, real, n) for n in ngrams}
