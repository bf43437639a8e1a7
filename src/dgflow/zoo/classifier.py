"""A small CNN classifier per dataset, for offline metrics (classifier-FID and classifier-IS).

    x [B, C, 32, 32] -> 2 x (conv3x3 w, ReLU) -> maxpool 2 -> 2 x (conv3x3 2w, ReLU) -> maxpool 2
    -> flatten [2w*8*8] -> linear -> ReLU -> features [B, feature_dim] -> linear -> logits [B, n_classes]

``features(x)`` (the penultimate layer, 128-d by default) feeds classifier-FID; ``forward(x)``
gives the logits whose softmax feeds classifier-IS. MNIST (28x28) is padded to 32x32 with -1.
"""

from __future__ import annotations

from torch import Tensor, nn

from .images import WITH_STL10, check_image_config, check_images, network_size, pad_to_32


class Classifier(nn.Module):
    """Four 3x3 convs with two max-pools, a ``feature_dim`` hidden layer, and ``n_classes`` logits."""

    def __init__(self, *, channels: int = 3, image_size: int = 32, width: int = 32, feature_dim: int = 128,
                 n_classes: int = 10):
        super().__init__()
        check_image_config(channels, image_size, WITH_STL10, width=width, feature_dim=feature_dim, n_classes=n_classes)
        self.channels, self.image_size, self.width = channels, image_size, width
        self.feature_dim, self.n_classes = feature_dim, n_classes
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(channels, w, 3, 1, 1), nn.ReLU(), nn.Conv2d(w, w, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, 1, 1), nn.ReLU(), nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * w * (network_size(image_size) // 4) ** 2, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``[B, feature_dim]`` (for classifier-FID)."""
        check_images(x, self.channels, self.image_size, type(self).__name__)
        return self.body(pad_to_32(x))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, n_classes]`` (for classifier-IS and accuracy)."""
        return self.head(self.features(x))
