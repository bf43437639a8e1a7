"""Sentences for the character-level text GAN: corpora, cleaning, vocabulary and one-hot tensors.

Two corpora, one sentence per item:

* ``"billion-word"``: the One Billion Word benchmark the WGAN-GP language model was trained
  on (``training-monolingual.tokenized.shuffled/news.en-000NN-of-00100``, one tokenised
  sentence per line), read from the user's copy, files in order, up to ``max_sentences``
  (a million by default; the reference code read up to ten million).
* ``"pydoc"``: English prose that ships with Python itself, ``pydoc_data.topics.topics``
  (the language reference behind ``help()``, about 465 KB): paragraphs are joined, split
  into sentences, and code-like sentences (grammar rules, examples, identifiers) are dropped
  (:func:`is_prose`): 1,837 sentences on Python 3.11, 1,368 to train on and 469 held out.
  Nothing is downloaded.

As in the WGAN-GP code (Gulrajani et al., 2017, ``language_helpers.load_dataset``), every
sentence is cut to its first ``seq_len = 32`` characters or padded to 32 with the pad
character ``"`"``; a sentence is a sequence of character indices ``s in {0..V-1}^32``, and
the models see its one-hot encoding ``x[b, v, l] = 1[s_bl = v]``, shaped ``[B, V, L]``.
The held-out split is a fixed function of the sentence text (:func:`is_held_out`), so
training and evaluation agree without storing the split, and duplicates never straddle it.
"""

from __future__ import annotations

import functools
import os
import random
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .. import io

SEQ_LEN = 32
PAD = "`"  # the WGAN-GP language model's pad character
UNK = "\ufffd"  # the Unicode replacement character stands for characters outside the vocabulary
CORPORA = ("pydoc", "billion-word")
BILLION_WORD_FOLDER = "training-monolingual.tokenized.shuffled"
BILLION_WORD_PATTERN = "news.en-*-of-00100"
HELD_OUT_BUCKETS = 4  # one sentence in four (by text hash) is held out for evaluation
MAX_REAL = 10_000  # held-out sentences the real n-gram models are built from (at most)

_TYPOGRAPHY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2014": "-",
                             "\u2013": "-", "\u2026": "...", "\u00a0": " ", PAD: "'"})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(]?[A-Z])")
_PROSE_CHARS = re.compile(r"[A-Za-z0-9 .,;:'\"()?!-]+")
_CODE_NAME = re.compile(r'"[\w.()]+"')  # a quoted identifier or call in running text: "len()", "__init__"
_EMPHASIS = re.compile(r"\*{1,2}([^*\s][^*]*?)\*{1,2}")
_CODE_LINE = re.compile(r"^(>>>|\.\.\.|\+[-=+]+|\|)|::=")  # prompts, table borders, grammar rules


@dataclass(frozen=True)
class Vocabulary:
    """Characters by index: ``chars[0]`` is the pad character, ``chars[1]`` the unknown one."""

    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.chars) < 3 or self.chars[0] != PAD or self.chars[1] != UNK:
            raise ValueError(f"a Vocabulary starts with the pad {PAD!r} and unknown {UNK!r} characters and holds at "
                             "least one more; build one with Vocabulary.build(sentences)")
        if len(set(self.chars)) != len(self.chars) or any(len(c) != 1 for c in self.chars):
            raise ValueError("a Vocabulary holds distinct single characters")

    @classmethod
    def build(cls, sentences: Iterable[str], max_size: int = 256) -> Vocabulary:
        """Pad, unknown, then the most frequent characters of ``sentences`` (ties by code point)."""
        counts = Counter(ch for s in sentences for ch in s)
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        ranked = sorted(counts, key=lambda ch: (-counts[ch], ch))
        return cls((PAD, UNK, *ranked[: max(max_size - 2, 0)]))

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, sentences: Sequence[str], seq_len: int = SEQ_LEN) -> Tensor:
        """Character indices ``[N, seq_len]`` (int64): cut to ``seq_len``, padded with index 0."""
        if isinstance(sentences, str):
            raise TypeError("encode takes a list of sentences; for one sentence pass [sentence]")
        index = {ch: i for i, ch in enumerate(self.chars)}
        out = torch.zeros(len(sentences), seq_len, dtype=torch.int64)
        for row, s in enumerate(sentences):
            ids = [index.get(ch, 1) for ch in s[:seq_len]]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return out

    def decode(self, x: Tensor, strip: bool = True) -> list[str]:
        """Sentences from indices ``[N, L]`` or (one-hot / probability) tensors ``[N, V, L]`` (argmax over V).

        ``strip=True`` removes trailing pad characters; ``strip=False`` keeps the fixed-length
        strings (the form the n-gram metric of the WGAN-GP code scores).
        """
        if x.ndim == 3:
            if x.shape[1] != self.size:
                raise ValueError(f"decode got {x.shape[1]} channels for a vocabulary of {self.size} characters; "
                                 "pass [N, V, L] probabilities or one-hots, or [N, L] indices")
            x = x.argmax(1)
        if x.ndim != 2:
            raise ValueError(f"decode takes indices [N, L] or probabilities [N, V, L], got shape {tuple(x.shape)}")
        texts = ["".join(self.chars[i] for i in row) for row in x.tolist()]
        return [t.rstrip(PAD) for t in texts] if strip else texts

    def to_meta(self) -> dict[str, object]:
        """A JSON-able record for a checkpoint's meta (see :meth:`from_meta`)."""
        return {"chars": "".join(self.chars), "pad": PAD, "unk": UNK}

    @classmethod
    def from_meta(cls, record: dict[str, object]) -> Vocabulary:
        if not isinstance(record, dict) or "chars" not in record:
            raise ValueError("no vocabulary record in this checkpoint's meta; it was not saved by train_textgan")
        return cls(tuple(str(record["chars"])))


def one_hot(indices: Tensor, vocab_size: int) -> Tensor:
    """``x[b, v, l] = 1[indices[b, l] = v]`` as float32, shaped ``[B, V, L]``."""
    return torch.nn.functional.one_hot(indices.long(), vocab_size).permute(0, 2, 1).float()


class OneHotSentences:
    """Sentences stored as small integer indices; indexing returns float one-hots ``[B, V, L]``.

    What ``dgflow.training.train_wgan_gp`` samples minibatches from (it needs only ``len`` and
    indexing), without holding the whole corpus as float one-hots in memory.
    """

    def __init__(self, indices: Tensor, vocab_size: int):
        self.vocab_size = int(vocab_size)
        self.indices = indices.to(torch.uint8 if vocab_size <= 256 else torch.int16)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: Tensor | slice | int) -> Tensor:
        rows = self.indices[index]
        return one_hot(rows if rows.ndim == 2 else rows[None], self.vocab_size)


# ------------------------------------------------------------------------------------- corpora


def is_prose(sentence: str) -> bool:
    """A sentence of English prose: capitalised, ends in . ? or !, at least four words, three in
    four non-space characters letters, and only letters, digits and plain punctuation (no
    ``= * | < > [ ] { } \\ # @`` and the like) outside quoted names such as ``"__len__()"``."""
    plain = _CODE_NAME.sub('"x"', sentence)
    return (len(plain.split()) >= 4 and plain[0].isupper() and plain[-1] in ".?!"
            and _PROSE_CHARS.fullmatch(plain) is not None and ".." not in plain
            and sum(ch.isalpha() for ch in plain) >= 0.75 * len(plain.replace(" ", "")))


def pydoc_sentences() -> list[str]:
    """Prose sentences of Python's own documentation (``pydoc_data.topics``), deduplicated, in order."""
    return list(_pydoc_sentences())


@functools.lru_cache(maxsize=1)
def _pydoc_sentences() -> tuple[str, ...]:
    try:
        from pydoc_data.topics import topics
    except ImportError as exc:  # some distributions strip it from python3-minimal
        raise FileNotFoundError("this Python has no pydoc_data module (its documentation topics); install the full "
                                "standard library (e.g. Debian's libpython3-stdlib) or use --corpus billion-word "
                                "--data PATH") from exc
    out: list[str] = []
    for name in sorted(topics):
        for paragraph in re.split(r"\n\s*\n", topics[name].translate(_TYPOGRAPHY)):
            lines = [ln.strip() for ln in paragraph.splitlines()]
            if any(_CODE_LINE.search(ln) for ln in lines):  # an example session, a table or a grammar rule
                continue
            lines = [ln for ln in lines if ln and not re.fullmatch(r"([*=~^\-+])\1+", ln)]  # heading underlines
            text = _EMPHASIS.sub(r"\1", re.sub(r"^\* ", "", " ".join(lines)))  # a bullet item is a paragraph
            out.extend(s for s in _SENTENCE_END.split(re.sub(r"\s+", " ", text)) if s and is_prose(s))
    return tuple(dict.fromkeys(out))


def billion_word_files(path: str | os.PathLike) -> list[Path]:
    """The One Billion Word training files under ``path`` (a file, the benchmark folder, or its
    ``training-monolingual.tokenized.shuffled`` subfolder), in order."""
    path = Path(path)
    if path.is_file():
        return [path]
    for folder in (path / BILLION_WORD_FOLDER, path):
        files = sorted(folder.glob(BILLION_WORD_PATTERN)) if folder.is_dir() else []
        if files:
            return files
    raise FileNotFoundError(f"no One Billion Word files ({BILLION_WORD_FOLDER}/{BILLION_WORD_PATTERN}) under {path}; "
                            "pass --data the benchmark folder, its training folder or one news.en-... file, "
                            "or use --corpus pydoc")


def billion_word_sentences(path: str | os.PathLike, max_sentences: int | None = 1_000_000) -> list[str]:
    """Lines of the One Billion Word training files (one tokenised sentence each), in file order."""
    out: list[str] = []
    for file in billion_word_files(path):
        with open(file, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.rstrip("\n").replace(PAD, "'")
                if line.strip():
                    out.append(line)
                    if max_sentences is not None and len(out) >= max_sentences:
                        return out
    if not out:
        raise ValueError(f"the One Billion Word files under {path} hold no sentences")
    return out


def load_sentences(corpus: str = "pydoc", data: str | os.PathLike | None = None,
                   max_sentences: int | None = None) -> list[str]:
    """All sentences of ``corpus`` (``"pydoc"``, or ``"billion-word"`` read from ``data``)."""
    if corpus == "pydoc":
        if data is not None:
            raise ValueError("--data is only for --corpus billion-word (pydoc text ships with Python)")
        sentences = pydoc_sentences()
        return sentences[:max_sentences] if max_sentences is not None else sentences
    if corpus == "billion-word":
        if data is None:
            raise ValueError("--corpus billion-word needs --data PATH: the One Billion Word folder "
                             f"(with {BILLION_WORD_FOLDER}/) or one of its news.en-... files")
        return billion_word_sentences(data, 1_000_000 if max_sentences is None else max_sentences)
    raise ValueError(f"unknown corpus {corpus!r}; choose one of {list(CORPORA)}")


def is_held_out(sentence: str) -> bool:
    """Whether ``sentence`` belongs to the evaluation split: ``crc32(text) mod 4 = 0``.

    One in four rather than the usual one in ten: the Python documentation gives only about
    1,800 prose sentences, and the n-gram metric needs a few hundred real ones to compare with.
    """
    return zlib.crc32(sentence.encode("utf-8")) % HELD_OUT_BUCKETS == 0


def split_sentences(sentences: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(train, held_out)``: about three in four sentences to train on, the rest to evaluate."""
    train, held = [], []
    for s in sentences:
        (held if is_held_out(s) else train).append(s)
    return train, held


def fixed_length(sentences: Iterable[str], seq_len: int = SEQ_LEN) -> list[str]:
    """Each sentence cut to ``seq_len`` characters or padded with ``"`"`` (the form the models see)."""
    return [s[:seq_len].ljust(seq_len, PAD) for s in sentences]


def real_sentences(meta: dict, n_train: int = 640, seed: int = 0) -> tuple[list[str], list[str]]:
    """``(held_out, train_sample)`` of a text GAN checkpoint's corpus (its ``meta``): the held-out sentences
    (at most ``MAX_REAL``) and ``n_train`` training sentences, all cut or padded to the model's length."""
    train, held = split_sentences(load_sentences(meta["corpus"], meta.get("data"), meta.get("max_sentences")))
    rng = random.Random(seed)
    if len(held) > MAX_REAL:
        held = rng.sample(held, MAX_REAL)
    train_sample = rng.sample(train, min(n_train, len(train)))
    return fixed_length(held, meta["seq_len"]), fixed_length(train_sample, meta["seq_len"])


def checkpoint_vocabulary(path: str | os.PathLike, trust: bool = False) -> tuple[Vocabulary, dict]:
    """The vocabulary and the training record (``meta``) saved in a text GAN checkpoint (`dgflow train textgan`)."""
    payload = io.load_checkpoint_file(path, trust=trust)
    meta = payload.get("meta", {}) if isinstance(payload, dict) else {}
    if "vocabulary" not in meta:
        raise ValueError(f"{path} holds no vocabulary: it is not a checkpoint of `dgflow train textgan`")
    return Vocabulary.from_meta(meta["vocabulary"]), meta
