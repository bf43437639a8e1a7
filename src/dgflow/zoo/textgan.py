"""The character-level WGAN-GP language model (Gulrajani et al., 2017, ``gan_language.py``).

    ResBlock(h)   = h + 0.3 * conv5(relu(conv5(relu(h))))        # 1-D conv, kernel 5, 'same' padding
    generator:  z [B, z_dim] -> linear -> [B, C, L] -> 5 ResBlocks -> conv1x1 -> [B, V, L] -> softmax over V
    critic:     x [B, V, L]  -> conv1x1 -> [B, C, L] -> 5 ResBlocks -> flatten -> linear -> d [B]

with ``L = 32`` characters, ``C = 512`` channels in the paper (``channels`` narrows it for CPU
runs) and ``V`` the vocabulary size. The generator's output is a probability simplex per
position, the critic's input a one-hot sentence (real) or such probabilities (generated).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..checks import check_int


class ResBlock1d(nn.Module):
    """``h + scale * conv(relu(conv(relu(h))))`` with two 1-D convolutions of kernel 5."""

    def __init__(self, channels: int, kernel_size: int = 5, scale: float = 0.3):
        super().__init__()
        self.scale = scale
        self.net = nn.Sequential(nn.ReLU(), nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2),
                                 nn.ReLU(), nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2))

    def forward(self, h: Tensor) -> Tensor:
        return h + self.scale * self.net(h)


class TextGenerator(nn.Module):
    """``z [B, z_dim] -> p [B, V, L]``, a softmax over the vocabulary at each of the ``L`` positions."""

    def __init__(self, *, vocab_size: int, z_dim: int = 128, seq_len: int = 32, channels: int = 512,
                 blocks: int = 5, residual_scale: float = 0.3):
        super().__init__()
        _check_sizes(vocab_size=vocab_size, z_dim=z_dim, seq_len=seq_len, channels=channels)
        self.vocab_size, self.z_dim, self.seq_len, self.channels = vocab_size, z_dim, seq_len, channels
        self.input = nn.Linear(z_dim, channels * seq_len)
        self.blocks = nn.Sequential(*[ResBlock1d(channels, 5, residual_scale) for _ in range(blocks)])
        self.output = nn.Conv1d(channels, vocab_size, 1)

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"TextGenerator takes latents shaped [B, {self.z_dim}], got {tuple(z.shape)}")
        h = self.input(z).view(len(z), self.channels, self.seq_len)
        return self.output(self.blocks(h)).softmax(dim=1)


class TextCritic(nn.Module):
    """``x [B, V, L] -> d [B]``: the WGAN critic on one-hot or probability sentences."""

    def __init__(self, *, vocab_size: int, seq_len: int = 32, channels: int = 512, blocks: int = 5,
                 residual_scale: float = 0.3):
        super().__init__()
        _check_sizes(vocab_size=vocab_size, seq_len=seq_len, channels=channels)
        self.vocab_size, self.seq_len, self.channels = vocab_size, seq_len, channels
        self.input = nn.Conv1d(vocab_size, channels, 1)
        self.blocks = nn.Sequential(*[ResBlock1d(channels, 5, residual_scale) for _ in range(blocks)])
        self.output = nn.Linear(channels * seq_len, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[1:] != (self.vocab_size, self.seq_len):
            raise ValueError(f"TextCritic takes sentences shaped [B, {self.vocab_size}, {self.seq_len}] (one-hot or "
                             f"probabilities over the vocabulary), got {tuple(x.shape)}")
        return self.output(self.blocks(self.input(x)).flatten(1))[:, 0]


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        check_int(name, value, 1)
