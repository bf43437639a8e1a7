"""Character-level text: sentences and their vocabulary (the WGAN-GP language model: :mod:`dgflow.training.textgan`)."""

from .data import (PAD, SEQ_LEN, UNK, OneHotSentences, Vocabulary, checkpoint_vocabulary, fixed_length, load_sentences,
                   one_hot, real_sentences, split_sentences)

__all__ = ["Vocabulary", "OneHotSentences", "one_hot", "load_sentences", "split_sentences", "fixed_length",
           "PAD", "UNK", "SEQ_LEN", "real_sentences", "checkpoint_vocabulary"]
