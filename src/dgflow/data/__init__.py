"""Datasets: MNIST and CIFAR-10 loaders returning tensors in [-1, 1] (see ``images``)."""

from .images import CIFAR10_CLASSES, default_cache_dir, load_cifar10, load_mnist, read_idx, to_unit_range

__all__ = ["load_mnist", "load_cifar10", "CIFAR10_CLASSES", "read_idx", "to_unit_range", "default_cache_dir"]
