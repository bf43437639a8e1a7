"""Train, save and load the character-level WGAN-GP language model.

    dgflow train textgan --corpus pydoc --out textgan.pt --channels 32 --iterations 1000

The models are :class:`dgflow.zoo.textgan.TextGenerator` / ``TextCritic``, trained by
:func:`dgflow.training.train_wgan_gp` with the settings of methods.md (Adam 1e-4, betas
(0.5, 0.9), 5 critic steps, gradient penalty 10; batch 64 as in the WGAN-GP code) on the
training split of the corpus (:func:`dgflow.text.data.split_sentences`). The checkpoint's
meta records the vocabulary, the corpus and split, and every setting, so
:func:`load_textgan` rebuilds the models and the vocabulary from the file alone.

The paper's model has 512 channels and was trained for 200,000 iterations on a GPU; on a
CPU a narrower one (``channels=32``, about 0.3-0.4 s per iteration on one core) trained for
1,200 iterations (minutes) with ``lr=1e-3`` learns character statistics and the commonest
words, which is the scale the benchmark uses (with the paper's ``lr=1e-4`` it is still
character soup after 1,200 iterations).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from ..checks import check_int
from ..progress import progress_write

from .wgan_gp import train_wgan_gp
from ..zoo import build_model, load_checkpoint, save_checkpoint
from ..text.data import HELD_OUT_BUCKETS, SEQ_LEN, OneHotSentences, Vocabulary, load_sentences, split_sentences

Z_DIM = 128
TEXT_TRAINING = dict(batch_size=64, lr=1e-4, betas=(0.5, 0.9), n_critic=5, gp_weight=10.0)


class TextGAN(NamedTuple):
    """A trained text GAN: generator ``z [B, 128] -> [B, V, 32]``, critic ``[B, V, 32] -> [B]``, vocabulary."""

    generator: nn.Module
    critic: nn.Module
    vocabulary: Vocabulary
    meta: dict[str, Any]


def train_textgan(corpus: str = "pydoc", out: str | os.PathLike = "textgan.pt", channels: int = 512,
                  iterations: int = 1000, seed: int = 0, *, data: str | os.PathLike | None = None,
                  blocks: int = 5, max_sentences: int | None = None, progress: bool = True,
                  log_every: int = 100, **overrides: Any) -> TextGAN:
    """Train the character-level WGAN-GP on ``corpus`` and save a dgflow checkpoint at ``out``.

    ``overrides`` replace entries of :data:`TEXT_TRAINING` (``batch_size``, ``lr``, ``n_critic``...).
    """
    check_int("iterations", iterations, 1)
    unknown = set(overrides) - set(TEXT_TRAINING) - {"lr_g"}
    if unknown:
        raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(TEXT_TRAINING)} and lr_g")
    settings = {**TEXT_TRAINING, **overrides}
    train, held_out = split_sentences(load_sentences(corpus, data, max_sentences))
    if len(train) < 2:
        raise ValueError(f"the {corpus} corpus gave {len(train)} training sentences; a text GAN needs more")
    vocab = Vocabulary.build(train)
    sentences = OneHotSentences(vocab.encode(train, SEQ_LEN), vocab.size)

    torch.manual_seed(seed)
    g_cfg = {"vocab_size": vocab.size, "z_dim": Z_DIM, "seq_len": SEQ_LEN, "channels": channels, "blocks": blocks}
    d_cfg = {"vocab_size": vocab.size, "seq_len": SEQ_LEN, "channels": channels, "blocks": blocks}
    generator, critic = build_model("text_generator", **g_cfg), build_model("text_critic", **d_cfg)
    preview = torch.randn(1, Z_DIM, generator=torch.Generator().manual_seed(seed))

    def show(it: int, entry: dict[str, float]) -> None:
        with torch.no_grad():
            sample = vocab.decode(generator(preview))[0]
        progress_write(f"  it {it:6d}  W {entry['wasserstein']:7.3f}  gp {entry['gradient_penalty']:.3f}  {sample!r}")

    start = time.perf_counter()
    log = train_wgan_gp(generator, critic, sentences, Z_DIM, iterations=iterations, seed=seed, progress=progress,
                        log_every=log_every, on_log=show if progress else None, **settings)
    meta = {"corpus": corpus, "data": None if data is None else str(data), "max_sentences": max_sentences,
            "train_sentences": len(train), "held_out_sentences": len(held_out),
            "held_out_rule": f"crc32(sentence) % {HELD_OUT_BUCKETS} == 0", "vocabulary": vocab.to_meta(),
            "seq_len": SEQ_LEN, "z_dim": Z_DIM, "prior": "normal", "channels": channels, "blocks": blocks,
            "iterations": iterations, "seed": seed, "training": settings,
            "seconds": round(time.perf_counter() - start, 1), "torch_threads": torch.get_num_threads(),
            "final_log": log[-1] if log else {}, "log": log}
    save_checkpoint(out, {"generator": ("text_generator", g_cfg, generator),
                          "discriminator": ("text_critic", d_cfg, critic)}, meta)
    return TextGAN(generator.eval(), critic.eval(), vocab, meta)


def load_textgan(path: str | os.PathLike) -> TextGAN:
    """The generator, critic and vocabulary of a checkpoint written by :func:`train_textgan`."""
    models, meta = load_checkpoint(Path(path))
    if "vocabulary" not in meta or set(models) != {"generator", "discriminator"}:
        raise ValueError(f"{path} is a dgflow checkpoint but not a text GAN (no vocabulary in its meta); "
                         "train one with `dgflow train textgan`")
    return TextGAN(models["generator"], models["discriminator"], Vocabulary.from_meta(meta["vocabulary"]), meta)
