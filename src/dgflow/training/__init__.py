"""Training of the base models and discriminators."""

from .diffusion import train_diffusion, train_time_discriminator
from .gan import GANTraining, read_scalars, train_gan
from .wgan_gp import train_wgan_gp

__all__ = ["train_wgan_gp", "train_gan", "GANTraining", "read_scalars", "train_diffusion", "train_time_discriminator"]
