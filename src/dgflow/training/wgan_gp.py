"""WGAN-GP (Gulrajani et al., 2017) training loop.

    for each iteration:
        repeat n_critic times:
            L_D = E[D(g(z))] - E[D(x)] + lambda E[(||grad_x_hat D(x_hat)||_2 - 1)^2],  x_hat = t x + (1 - t) g(z)
        L_G = -E[D(g(z))]
Defaults are the 2-D settings of the DGflow paper: Adam 1e-4, betas (0.5, 0.9), 5 critic steps, lambda = 10.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from ..checks import check_int
from ..progress import progress_bar as tqdm


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, generator: torch.Generator) -> Tensor:
    """``E[(||grad D(x_hat)|| - 1)^2]`` at random interpolates ``x_hat`` of ``real`` and ``fake``."""
    t = torch.rand((len(real),) + (1,) * (real.ndim - 1), generator=generator).to(real)
    x_hat = (t * real + (1 - t) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def train_wgan_gp(
    generator: nn.Module,
    critic: nn.Module,
    data: Tensor | Sequence[Tensor],
    z_dim: int,
    iterations: int = 5000,
    batch_size: int = 256,
    lr: float = 1e-4,
    lr_g: float | None = None,
    betas: tuple[float, float] = (0.5, 0.9),
    n_critic: int = 5,
    gp_weight: float = 10.0,
    seed: int = 0,
    progress: bool = True,
    log_every: int = 100,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``generator`` and ``critic`` in place on minibatches of ``data``; returns the loss log.

    ``data`` is anything with ``len()`` that a LongTensor of indices can index (a tensor, or a
    view that builds batches on demand, like the text corpus's one-hot sentences).

    ``lr`` is the critic's learning rate and, unless ``lr_g`` is given, the generator's.
    """
    for key, value in (("iterations", iterations), ("batch_size", batch_size), ("n_critic", n_critic)):
        check_int(key, value, 1)
    rng = torch.Generator().manual_seed(seed)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr if lr_g is None else lr_g, betas=betas)
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=betas)
    generator.train()
    critic.train()
    log: list[dict[str, float]] = []
    for it in tqdm(range(1, iterations + 1), desc="WGAN-GP", disable=None if progress else True):
        for _ in range(n_critic):
            real = data[torch.randint(len(data), (batch_size,), generator=rng)]
            with torch.no_grad():
                fake = generator(torch.randn(batch_size, z_dim, generator=rng))
            wdist = critic(real).mean() - critic(fake).mean()
            gp = gradient_penalty(critic, real, fake, rng)
            loss_d = -wdist + gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        for p in critic.parameters():
            p.requires_grad_(False)
        loss_g = -critic(generator(torch.randn(batch_size, z_dim, generator=rng))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in critic.parameters():
            p.requires_grad_(True)
        if it % log_every == 0 or it == iterations:
            entry = {"iteration": it, "wasserstein": float(wdist.detach()), "gradient_penalty": float(gp.detach()),
                     "loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach())}
            log.append(entry)
            if on_log is not None:
                on_log(it, entry)
    generator.eval()
    critic.eval()
    return log
