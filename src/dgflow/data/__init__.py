"""Datasets: the 2-D toy sets (``toy``) and MNIST, CIFAR-10 and STL-10 loaders returning tensors in [-1, 1]
(``images``)."""

from .images import (CIFAR10_CLASSES, STL10_CLASSES, default_cache_dir, load_cifar10, load_mnist, load_real_images,
                     load_stl10, read_idx, to_unit_range)
from .toy import sample_toy

__all__ = ["load_mnist", "load_cifar10", "load_stl10", "load_real_images", "CIFAR10_CLASSES", "STL10_CLASSES",
           "read_idx", "to_unit_range", "default_cache_dir", "sample_toy"]
