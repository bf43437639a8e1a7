"""The 2-D benchmarks of the DGflow paper: data, shipped WGAN-GP models."""
