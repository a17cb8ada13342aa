"""DPConfig: every knob of one DP-SGD run, validated on construction, with JSON/YAML round trips."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

import yaml

from dpcore.errors import ConfigError
from dpcore.noise import noise_split

SCHEMA_VERSION = 2
# Older schema versions that still load: keys added since then take their defaults.
READABLE_SCHEMA_VERSIONS = (1, 2)

DATASETS = ("digits", "fashion_mnist", "mnist", "csv")
MODELS = ("logreg", "mlp", "cnn", "lenet5")
ACTIVATIONS = ("relu", "tanh")
OPTIMIZERS = ("sgd", "momentum", "adam")
ACCOUNTANTS = ("rdp", "pld")
SAMPLINGS = ("poisson", "shuffle")
NOISE_SCHEDULES = ("constant", "time", "step")
CLIP_UPDATES = ("linear", "geometric")

# Upper bounds keep a slider typo from launching a week-long run or an absurd accountant query.
MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 1_000_000
MAX_NOISE = 1000.0
MAX_CLIP = 1e6
MAX_LEARNING_RATE = 100.0
MAX_CLIP_LEARNING_RATE = 10.0
MAX_EPSILON_BUDGET = 1000.0
MAX_VALIDATION_FRACTION = 0.9


@dataclass(frozen=True)
class DPConfig:
    """One DP-SGD run. ``private=False`` is the non-private baseline: no clipping, no noise, ε = ∞.

    ``seed`` makes a run reproducible: it fixes the initial weights, the sampled batches and the
    noise. Anyone who knows it can recompute the noise, so ``secure_mode`` draws the sampling and
    noise randomness from the operating system's secure source instead (``seed`` then fixes only
    the initial weights), for models that will be released.

    ``noise_schedule`` decays the noise multiplier from ``noise_multiplier`` ("time" or "step", see
    dpcore.noise) down to ``noise_floor``; ``adaptive_clipping`` moves the clip norm from
    ``l2_norm_clip`` towards the ``target_unclipped_quantile`` of the per-example gradient norms;
    ``epsilon_budget`` stops a run before the epoch that would exceed it; ``validation_fraction``
    holds out that share of the training rows (they are not trained on, and n counts the rest).
    A non-private baseline ignores all of these but the validation split.
    """

    dataset: str = "digits"
    model: str = "mlp"
    activation: str = "relu"
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    noise_multiplier: float = 1.1
    noise_schedule: str = "constant"
    noise_decay_rate: float = 0.001
    noise_floor: float = 0.5
    l2_norm_clip: float = 1.0
    adaptive_clipping: bool = False
    target_unclipped_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    clip_update: str = "geometric"
    count_noise_multiplier: float = 10.0
    batch_size: int = 64
    epochs: int = 10
    delta: float = 1e-5
    epsilon_budget: Optional[float] = None
    accountant: str = "rdp"
    sampling: str = "poisson"
    private: bool = True
    seed: int = 0
    secure_mode: bool = False
    max_train_examples: Optional[int] = None
    validation_fraction: float = 0.0
    csv_path: Optional[str] = None
    csv_label: Optional[str] = None

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived views -------------------------------------------------------------------

    def replace(self, **changes: Any) -> "DPConfig":
        """A copy with ``changes`` applied (and validated)."""
        unknown = sorted(set(changes) - FIELD_NAMES)
        if unknown:
            raise ConfigError(unknown[0], "unknown config key", allowed=", ".join(sorted(FIELD_NAMES)))
        return dataclasses.replace(self, **changes)

    def as_baseline(self) -> "DPConfig":
        """The same run without clipping or noise, for side-by-side curves."""
        return self.replace(private=False)

    def check_dataset_size(self, n: int) -> None:
        """Validate the fields that depend on the training set size ``n`` (after subsetting)."""
        if n < 2:
            raise ConfigError("dataset", f"the training set has {n} examples", allowed="at least 2")
        if self.batch_size > n:
            raise ConfigError(
                "batch_size", f"{self.batch_size} is larger than the training set ({n} examples)",
                allowed=f"1 to {n}",
            )
        if self.private and self.delta >= 1.0 / n:
            raise ConfigError(
                "delta", f"{self.delta:g} is not below 1/n = {1.0 / n:.3g} for n = {n}",
                allowed=f"0 < delta < {1.0 / n:.3g}; a δ of 1/n or more lets a mechanism "
                "publish one person's record outright",
            )

    # -- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A plain dict with a schema version, suitable for JSON/YAML."""
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        data.update(dataclasses.asdict(self))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DPConfig":
        """Build from a dict, rejecting unknown keys and unsupported schema versions.

        Older versions load with the keys added since taking their defaults.
        """
        if not isinstance(data, Mapping):
            raise ConfigError("config", f"expected a mapping of keys to values, got {type(data).__name__}")
        body = dict(data)
        check_schema_version(body.pop("schema_version", SCHEMA_VERSION))
        unknown = sorted(set(body) - FIELD_NAMES)
        if unknown:
            raise ConfigError(
                str(unknown[0]), "unknown config key", allowed=", ".join(sorted(FIELD_NAMES))
            )
        return cls(**body)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "DPConfig":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("config", f"not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> "DPConfig":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError("config", f"not valid YAML: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_text(cls, text: str, *, filename: str = "") -> "DPConfig":
        """Parse JSON or YAML, chosen by the file extension or, without one, by the content."""
        lower = filename.lower()
        if lower.endswith(".json"):
            return cls.from_json(text)
        if lower.endswith((".yaml", ".yml")):
            return cls.from_yaml(text)
        if filename and "." in filename:
            raise ConfigError("config", f"cannot read {filename!r}", allowed=".json, .yaml or .yml files")
        return cls.from_json(text) if text.lstrip().startswith("{") else cls.from_yaml(text)


FIELD_NAMES = frozenset(f.name for f in fields(DPConfig))


def check_schema_version(version: Any) -> None:
    """Refuse a schema version this DP Explorer cannot read (JSON, YAML and share links alike)."""
    readable = {str(v) for v in READABLE_SCHEMA_VERSIONS}
    if isinstance(version, bool) or str(version) not in readable:
        raise ConfigError("schema_version", f"{version!r} is not supported",
                          allowed=", ".join(sorted(readable)))


def load_config_file(path: str) -> DPConfig:
    """Read a JSON or YAML config file; a missing or unreadable file is a ConfigError."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ConfigError("config", f"file {path!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("config", f"cannot read {path!r}: {exc}") from None
    return DPConfig.from_text(text, filename=path)


# -- validation ------------------------------------------------------------------------


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(name, f"{value!r} is not a known {name.replace('_', ' ')}", allowed=", ".join(allowed))


def _number(name: str, value: Any, *, low: float, high: float, low_open: bool = False,
            high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, f"{value!r} is not a number", allowed=_range_text(low, high, low_open, high_open))
    if math.isnan(value) or math.isinf(value):
        raise ConfigError(name, f"{value!r} is not a finite number", allowed=_range_text(low, high, low_open, high_open))
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        raise ConfigError(name, f"{value!r} is out of range", allowed=_range_text(low, high, low_open, high_open))


def _integer(name: str, value: Any, *, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"{value!r} is not a whole number", allowed=f"{low} to {high}")
    if not low <= value <= high:
        raise ConfigError(name, f"{value!r} is out of range", allowed=f"{low} to {high}")


def _range_text(low: float, high: float, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    return f"a number in {left}{low:g}, {high:g}{right}"


def _validate(c: DPConfig) -> None:
    _choice("dataset", c.dataset, DATASETS)
    _choice("model", c.model, MODELS)
    _choice("activation", c.activation, ACTIVATIONS)
    _choice("optimizer", c.optimizer, OPTIMIZERS)
    _choice("accountant", c.accountant, ACCOUNTANTS)
    _choice("sampling", c.sampling, SAMPLINGS)
    _choice("noise_schedule", c.noise_schedule, NOISE_SCHEDULES)
    _choice("clip_update", c.clip_update, CLIP_UPDATES)
    for name in ("private", "secure_mode", "adaptive_clipping"):
        if not isinstance(getattr(c, name), bool):
            raise ConfigError(name, f"{getattr(c, name)!r} is not true or false", allowed="true, false")
    _number("learning_rate", c.learning_rate, low=0.0, high=MAX_LEARNING_RATE, low_open=True)
    _number("momentum", c.momentum, low=0.0, high=1.0, high_open=True)
    if c.private:
        _number("noise_multiplier", c.noise_multiplier, low=0.0, high=MAX_NOISE, low_open=True)
    else:
        _number("noise_multiplier", c.noise_multiplier, low=0.0, high=MAX_NOISE)
    _number("l2_norm_clip", c.l2_norm_clip, low=0.0, high=MAX_CLIP, low_open=True)
    _integer("batch_size", c.batch_size, low=1, high=MAX_BATCH_SIZE)
    _integer("epochs", c.epochs, low=1, high=MAX_EPOCHS)
    _number("delta", c.delta, low=0.0, high=1.0, low_open=True, high_open=True)
    _integer("seed", c.seed, low=0, high=2**31 - 1)
    if c.max_train_examples is not None:
        _integer("max_train_examples", c.max_train_examples, low=2, high=10**9)
    _number("validation_fraction", c.validation_fraction, low=0.0, high=MAX_VALIDATION_FRACTION)
    _validate_noise_schedule(c)
    _validate_adaptive_clipping(c)
    if c.epsilon_budget is not None:
        _number("epsilon_budget", c.epsilon_budget, low=0.0, high=MAX_EPSILON_BUDGET, low_open=True)
    if c.dataset == "csv":
        if not isinstance(c.csv_path, str) or not c.csv_path.strip():
            raise ConfigError("csv_path", "a CSV dataset needs the path of the file", allowed="a file path")
        if not isinstance(c.csv_label, str) or not c.csv_label.strip():
            raise ConfigError("csv_label", "a CSV dataset needs the name of its label column",
                              allowed="a column name of the file")
    else:
        for name in ("csv_path", "csv_label"):
            value = getattr(c, name)
            if value is not None:
                raise ConfigError(name, f"is only used with dataset 'csv' (dataset is {c.dataset!r})",
                                  allowed="null unless dataset is 'csv'")


def _validate_noise_schedule(c: DPConfig) -> None:
    _number("noise_decay_rate", c.noise_decay_rate, low=0.0, high=1.0, high_open=True)
    _number("noise_floor", c.noise_floor, low=0.0, high=MAX_NOISE, low_open=True)
    if c.private and c.noise_schedule != "constant" and c.noise_floor > c.noise_multiplier:
        raise ConfigError(
            "noise_floor", f"{c.noise_floor:g} is above the initial noise multiplier {c.noise_multiplier:g}",
            allowed=f"a number in (0, {c.noise_multiplier:g}]",
        )


def _validate_adaptive_clipping(c: DPConfig) -> None:
    _number("target_unclipped_quantile", c.target_unclipped_quantile, low=0.0, high=1.0,
            low_open=True, high_open=True)
    _number("clip_learning_rate", c.clip_learning_rate, low=0.0, high=MAX_CLIP_LEARNING_RATE, low_open=True)
    _number("count_noise_multiplier", c.count_noise_multiplier, low=0.0, high=MAX_NOISE, low_open=True)
    if c.private and c.adaptive_clipping:
        # A schedule only decays, so the first step's noise multiplier is the largest to split.
        noise_split(noise_multiplier=c.noise_multiplier, count_noise_multiplier=c.count_noise_multiplier)
