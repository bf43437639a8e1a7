"""Character-level text: sentences and their vocabulary, and the WGAN-GP language model."""

from .data import (PAD, SEQ_LEN, UNK, OneHotSentences, Vocabulary, checkpoint_vocabulary, fixed_length, load_sentences,
                   one_hot, real_sentences, split_sentences)
from .train import TextGAN, load_textgan, train_textgan

__all__ = ["Vocabulary", "OneHotSentences", "one_hot", "load_sentences", "split_sentences", "fixed_length",
           "PAD", "UNK", "SEQ_LEN", "TextGAN", "train_textgan", "load_textgan", "real_sentences", "checkpoint_vocabulary"]
