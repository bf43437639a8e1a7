"""Training of the base models and discriminators."""

from .wgan_gp import train_wgan_gp

__all__ = ["train_wgan_gp"]
