"""The Langevin integrator DGflow and DDLS share: one Euler-Maruyama step of ``dz = v dt + sqrt(2 T) dW``.

    z' = z + drift + noise_std * xi,   xi ~ N(0, I) from each sample's own stream at step n
    drift = h v,   noise_std = sqrt(2 h T)

Each method writes ``drift`` and ``noise_std`` in its paper's notation, so its floating-point
expressions stay its own: DGflow ``drift = eta * s(d) * grad d``, ``noise_std = sqrt(2 gamma eta)``;
DDLS ``drift = (eps / 2) * (-grad E)``, ``noise_std = sqrt(eps) * noise_scale``.
"""

from __future__ import annotations

from torch import Tensor

from ..rng import SampleNoise


def langevin_step(z: Tensor, drift: Tensor, noise_std: float, noise: SampleNoise, n: int, stream: str) -> Tensor:
    """``z + drift + noise_std * xi`` with ``xi`` the standard normal of stream ``stream`` at step ``n``."""
    xi = noise.normal(z.shape[1:], step=n, stream=stream, dtype=z.dtype)
    return z + drift + noise_std * xi
