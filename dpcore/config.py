"""DPConfig: every knob of one DP-SGD run, validated on construction, with JSON/YAML round trips."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Optional

import yaml

from dpcore import safe_io
from dpcore.csv_schema import CsvSchema
from dpcore.errors import ConfigError
from dpcore.safe_io import quote

SCHEMA_VERSION = 4
# Older schema versions that still load: keys added since then take their defaults. Version 2 was
# written with either the CSV schema keys (csv_schema, csv_preprocessing_epsilon) or the recipe keys
# (noise schedule, adaptive clipping, ε budget, validation split); version 3 holds both sets;
# version 4 adds weight_averaging_decay.
READABLE_SCHEMA_VERSIONS = (1, 2, 3, 4)

# Each choice with the title the pages show for it; the choice lists are their keys.
DATASET_TITLES = {
    "digits": "Digits (8x8, scikit-learn)",
    "fashion_mnist": "Fashion-MNIST (28x28)",
    "mnist": "MNIST (28x28)",
    "csv": "Your CSV file (tabular)",
}
MODEL_TITLES = {
    "logreg": "Logistic regression",
    "mlp": "MLP",
    "cnn": "CNN",
    "lenet5": "LeNet-5",
    "scatternet_linear": "ScatterNet + linear",
    "scatternet_cnn": "ScatterNet + CNN",
}
OPTIMIZER_TITLES = {"sgd": "SGD", "momentum": "SGD with momentum", "adam": "Adam"}
ACCOUNTANT_TITLES = {"rdp": "RDP", "pld": "PLD"}
ACCOUNTANT_FULL_NAMES = {"rdp": "Rényi DP", "pld": "privacy loss distribution"}
SAMPLING_TITLES = {"poisson": "Poisson", "shuffle": "shuffle"}
NOISE_SCHEDULE_TITLES = {"constant": "constant", "time": "time decay", "step": "step decay"}
CLIP_UPDATE_TITLES = {"linear": "linear", "geometric": "geometric"}

DATASETS = tuple(DATASET_TITLES)
MODELS = tuple(MODEL_TITLES)
ACTIVATIONS = ("relu", "tanh")
OPTIMIZERS = tuple(OPTIMIZER_TITLES)
ACCOUNTANTS = tuple(ACCOUNTANT_TITLES)
SAMPLINGS = tuple(SAMPLING_TITLES)
NOISE_SCHEDULES = tuple(NOISE_SCHEDULE_TITLES)
CLIP_UPDATES = tuple(CLIP_UPDATE_TITLES)

# Upper bounds keep a slider typo from launching a week-long run or an absurd accountant query.
MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 1_000_000
MAX_NOISE = 1000.0
MAX_CLIP = 1e6
MAX_LEARNING_RATE = 100.0
MAX_LABEL_CHARS = 1000
MIN_PREPROCESSING_EPSILON = 0.01
MAX_PREPROCESSING_EPSILON = 100.0
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

    A CSV run needs its preprocessing made public or paid for: ``csv_schema`` declares the ranges,
    categories and classes, or ``csv_preprocessing_epsilon`` spends that ε share deriving them from
    the training rows (``dpcore.data.tabular``), and the run's ε includes it.

    ``noise_schedule`` decays the noise multiplier from ``noise_multiplier`` ("time" or "step", see
    dpcore.privacy.noise) down to ``noise_floor``; ``adaptive_clipping`` moves the clip norm from
    ``l2_norm_clip`` towards the ``target_unclipped_quantile`` of the per-example gradient norms;
    ``epsilon_budget`` stops a run before the epoch that would exceed it; ``validation_fraction``
    holds out that share of the training rows (they are not trained on, and n counts the rest).
    A non-private baseline ignores all of these but the validation split.

    ``weight_averaging_decay`` (None: off) evaluates and keeps an exponential moving average of the
    weights over the steps instead of the last step's weights: post-processing of the privatised
    iterates, so it changes no ε (De et al. 2022 use it for DP-SGD).

    The defaults (MLP, SGD lr 1.0, batch 128, clip 1.0, 20 epochs, σ 1.8 for ε ≈ 4 on digits) are
    chosen so that a first sweep over ε draws a rising accuracy–ε curve in seconds per run
    (bench/default_tradeoff.py; docs/performance.md).
    """

    dataset: str = "digits"
    model: str = "mlp"
    activation: str = "relu"
    optimizer: str = "sgd"
    learning_rate: float = 1.0
    momentum: float = 0.9
    noise_multiplier: float = 1.8
    noise_schedule: str = "constant"
    noise_decay_rate: float = 0.001
    noise_floor: float = 0.5
    l2_norm_clip: float = 1.0
    adaptive_clipping: bool = False
    target_unclipped_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    clip_update: str = "geometric"
    count_noise_multiplier: float = 10.0
    batch_size: int = 128
    epochs: int = 20
    delta: float = 1e-5
    epsilon_budget: Optional[float] = None
    accountant: str = "rdp"
    sampling: str = "poisson"
    private: bool = True
    seed: int = 0
    secure_mode: bool = False
    max_train_examples: Optional[int] = None
    validation_fraction: float = 0.0
    weight_averaging_decay: Optional[float] = None
    csv_path: Optional[str] = None
    csv_label: Optional[str] = None
    csv_schema: Optional[CsvSchema] = None
    csv_preprocessing_epsilon: Optional[float] = None

    def __post_init__(self) -> None:
        if isinstance(self.csv_schema, Mapping):  # as read from JSON, YAML or a share link
            object.__setattr__(self, "csv_schema", CsvSchema.from_dict(self.csv_schema))
        _validate(self)

    # -- derived views -------------------------------------------------------------------

    def replace(self, **changes: Any) -> DPConfig:
        """A copy with ``changes`` applied (and validated)."""
        unknown = sorted(set(changes) - FIELD_NAMES)
        if unknown:
            raise ConfigError(quote(unknown[0])[1:-1], "unknown config key", allowed=", ".join(sorted(FIELD_NAMES)))
        return dataclasses.replace(self, **changes)

    def as_baseline(self) -> DPConfig:
        """The same run without clipping or noise, for side-by-side curves."""
        return self.replace(private=False)

    def check_dataset_size(self, n: int) -> None:
        """Validate the fields that depend on the training set size ``n`` (after subsetting)."""
        if n < 2:
            raise ConfigError("dataset", f"the training set has {n} examples", allowed="at least 2")
        if self.batch_size > n:
            raise ConfigError(
                "batch_size",
                f"{self.batch_size} is larger than the training set ({n} examples)",
                allowed=f"1 to {n}",
            )
        if self.private and self.delta >= 1.0 / n:
            raise ConfigError(
                "delta",
                f"{self.delta:g} is not below 1/n = {1.0 / n:.3g} for n = {n}",
                allowed=f"0 < delta < {1.0 / n:.3g}; a δ of 1/n or more lets a mechanism "
                "publish one person's record outright",
            )

    # -- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A plain dict with a schema version, suitable for JSON/YAML."""
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        data.update(dataclasses.asdict(self))
        data["csv_schema"] = self.csv_schema.to_dict() if self.csv_schema is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DPConfig:
        """Build from a dict, rejecting unknown keys and unsupported schema versions.

        Older versions load with the keys added since taking their defaults.
        """
        if not isinstance(data, Mapping):
            raise ConfigError("config", f"expected a mapping of keys to values, got {type(data).__name__}")
        body = dict(data)
        check_schema_version(body.pop("schema_version", SCHEMA_VERSION))
        unknown = sorted(set(body) - FIELD_NAMES, key=str)
        if unknown:
            raise ConfigError(
                quote(str(unknown[0]))[1:-1], "unknown config key", allowed=", ".join(sorted(FIELD_NAMES))
            )
        for name, kind in NUMERIC_FIELDS.items():
            if name in body:
                body[name] = number_from_text(body[name], kind)
        return cls(**body)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> DPConfig:
        return cls.from_dict(safe_io.parse_json(text, field="config", error=ConfigError))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> DPConfig:
        """Safe YAML without aliases or deep nesting (see ``safe_io.parse_yaml``)."""
        return cls.from_dict(safe_io.parse_yaml(text, field="config", error=ConfigError))

    @classmethod
    def from_text(cls, text: str, *, filename: str = "") -> DPConfig:
        """Parse JSON or YAML, chosen by the file extension or, without one, by the content."""
        lower = filename.lower()
        if lower.endswith(".json"):
            return cls.from_json(text)
        if lower.endswith((".yaml", ".yml")):
            return cls.from_yaml(text)
        if filename and "." in filename:
            raise ConfigError("config", f"cannot read {quote(filename)}", allowed=".json, .yaml or .yml files")
        return cls.from_json(text) if text.lstrip().startswith("{") else cls.from_yaml(text)


FIELD_NAMES = frozenset(f.name for f in fields(DPConfig))
_FIELD_TYPES = typing.get_type_hints(DPConfig)
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("", "none", "null")


def parse_field(name: str, text: str) -> Any:
    """One field's value from text (a link, a command-line flag), read as the field's type.

    Booleans take true/yes/on/1 and false/no/off/0, optional fields take none, null or nothing;
    the range of the value is checked later, by DPConfig itself.
    """
    if name not in FIELD_NAMES:
        raise ConfigError(name, "unknown config key", allowed=", ".join(sorted(FIELD_NAMES)))
    hint = _FIELD_TYPES[name]
    optional = type(None) in typing.get_args(hint)
    kind = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    text = text.strip()
    lower = text.lower()
    if optional and lower in _NONE:
        return None
    if kind is CsvSchema:  # a schema travels as JSON text (a link parameter)
        return safe_io.parse_json(text, field=name, error=ConfigError)
    if kind is bool:
        if lower in _TRUE:
            return True
        if lower in _FALSE:
            return False
        raise ConfigError(name, f"{quote(text)} is not true or false", allowed="true, false")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(name, f"{quote(text)} is not a whole number") from None
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(name, f"{quote(text)} is not a number") from None
        if not math.isfinite(value):
            raise ConfigError(name, f"{quote(text)} is not a finite number")
        return value
    return text


# Fields holding numbers, and the kind of number each holds.
NUMERIC_FIELDS: dict[str, type] = {
    name: kind
    for name, hint in typing.get_type_hints(DPConfig).items()
    for kind in (int, float)
    if hint in (kind, Optional[kind])
}
_MAX_NUMBER_TEXT = 100


def number_from_text(value: Any, kind: type) -> Any:
    """Numeric text as the number it spells (``"1e-5"``, ``" 64 "``); any other value is returned as it is.

    YAML 1.1 reads ``1e-5`` (no dot) as a string and people quote numbers in JSON; validation then
    judges the number, and text that is not one is reported as it was written.
    """
    if not isinstance(value, str) or len(value) > _MAX_NUMBER_TEXT:
        return value
    text = value.strip()
    try:
        return int(text) if kind is int else float(text)
    except ValueError:
        pass
    if kind is int:
        try:
            number = float(text)
        except ValueError:
            return value
        if math.isfinite(number) and number.is_integer():
            return int(number)
    return value


def check_schema_version(version: Any) -> None:
    """Refuse a schema version this DP Explorer cannot read (JSON, YAML and share links alike);
    numeric text (``"1"``) is read as the number."""
    value = number_from_text(version, int)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in READABLE_SCHEMA_VERSIONS:
        raise ConfigError(
            "schema_version",
            f"{quote(version)} is not supported",
            allowed=", ".join(map(str, READABLE_SCHEMA_VERSIONS)),
        )


def load_config_file(path: str) -> DPConfig:
    """Read a JSON or YAML config file (a capped, regular, UTF-8 file); any problem is a ConfigError."""
    text = safe_io.read_text_file(path, field="config", error=ConfigError)
    return DPConfig.from_text(text, filename=path)


# -- validation ------------------------------------------------------------------------


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(name, f"{quote(value)} is not a known {name.replace('_', ' ')}", allowed=", ".join(allowed))


def _number(name: str, value: Any, *, low: float, high: float, low_open: bool = False, high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, f"{quote(value)} is not a number", allowed=_range_text(low, high, low_open, high_open))
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(
            name, f"{value!r} is not a finite number", allowed=_range_text(low, high, low_open, high_open)
        )
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        raise ConfigError(name, f"{quote(value)} is out of range", allowed=_range_text(low, high, low_open, high_open))


def _integer(name: str, value: Any, *, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"{quote(value)} is not a whole number", allowed=f"{low} to {high}")
    if not low <= value <= high:
        raise ConfigError(name, f"{quote(value)} is out of range", allowed=f"{low} to {high}")


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
            raise ConfigError(name, f"{quote(getattr(c, name))} is not true or false", allowed="true, false")
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
    if c.csv_schema is not None and not isinstance(c.csv_schema, CsvSchema):
        raise ConfigError(
            "csv_schema",
            f"expected a mapping, got {type(c.csv_schema).__name__}",
            allowed="classes, numeric (column: [low, high]), categorical (column: [categories]), scale",
        )
    if c.csv_preprocessing_epsilon is not None:
        _number(
            "csv_preprocessing_epsilon",
            c.csv_preprocessing_epsilon,
            low=MIN_PREPROCESSING_EPSILON,
            high=MAX_PREPROCESSING_EPSILON,
        )
    _number("validation_fraction", c.validation_fraction, low=0.0, high=MAX_VALIDATION_FRACTION)
    if c.weight_averaging_decay is not None:
        _number("weight_averaging_decay", c.weight_averaging_decay, low=0.0, high=1.0, low_open=True, high_open=True)
    _validate_noise_schedule(c)
    _validate_adaptive_clipping(c)
    if c.epsilon_budget is not None:
        _number("epsilon_budget", c.epsilon_budget, low=0.0, high=MAX_EPSILON_BUDGET, low_open=True)
    if c.dataset == "csv":
        if c.csv_schema is not None and c.csv_preprocessing_epsilon is not None:
            raise ConfigError(
                "csv_preprocessing_epsilon",
                "is set together with csv_schema",
                allowed="a declared csv_schema, or a csv_preprocessing_epsilon to derive one privately, not both",
            )
        if not isinstance(c.csv_path, str) or not c.csv_path.strip():
            raise ConfigError("csv_path", "a CSV dataset needs the path of the file", allowed="a file path")
        safe_io.check_path(c.csv_path, field="csv_path", error=ConfigError)
        if not isinstance(c.csv_label, str) or not c.csv_label.strip():
            raise ConfigError(
                "csv_label", "a CSV dataset needs the name of its label column", allowed="a column name of the file"
            )
        if len(c.csv_label) > MAX_LABEL_CHARS:
            raise ConfigError(
                "csv_label",
                f"{quote(c.csv_label)} is {len(c.csv_label)} characters long",
                allowed=f"a column name of up to {MAX_LABEL_CHARS} characters",
            )
    else:
        for name in ("csv_path", "csv_label", "csv_schema", "csv_preprocessing_epsilon"):
            value = getattr(c, name)
            if value is not None:
                raise ConfigError(
                    name,
                    f"is only used with dataset 'csv' (dataset is {quote(c.dataset)})",
                    allowed="null unless dataset is 'csv'",
                )


def _validate_noise_schedule(c: DPConfig) -> None:
    _number("noise_decay_rate", c.noise_decay_rate, low=0.0, high=1.0, high_open=True)
    _number("noise_floor", c.noise_floor, low=0.0, high=MAX_NOISE, low_open=True)
    if c.private and c.noise_schedule != "constant" and c.noise_floor > c.noise_multiplier:
        raise ConfigError(
            "noise_floor",
            f"{c.noise_floor:g} is above the initial noise multiplier {c.noise_multiplier:g}",
            allowed=f"a number in (0, {c.noise_multiplier:g}]",
        )


def _validate_adaptive_clipping(c: DPConfig) -> None:
    _number("target_unclipped_quantile", c.target_unclipped_quantile, low=0.0, high=1.0, low_open=True, high_open=True)
    _number("clip_learning_rate", c.clip_learning_rate, low=0.0, high=MAX_CLIP_LEARNING_RATE, low_open=True)
    _number("count_noise_multiplier", c.count_noise_multiplier, low=0.0, high=MAX_NOISE, low_open=True)
    if c.private and c.adaptive_clipping:
        # A schedule only decays, so the first step's noise multiplier is the largest to split.
        check_count_noise(noise_multiplier=c.noise_multiplier, count_noise_multiplier=c.count_noise_multiplier)


def check_count_noise(*, noise_multiplier: float, count_noise_multiplier: float) -> None:
    """Refuse a count noise at or below σ/2: adaptive clipping's count would spend all of one step's privacy
    (``dpcore.privacy.noise.noise_split`` divides the noise only above it)."""
    sigma, count_sigma = float(noise_multiplier), float(count_noise_multiplier)
    if not count_sigma > sigma / 2:
        raise ConfigError(
            "count_noise_multiplier",
            f"{count_sigma:g} is not above half the noise multiplier ({sigma:g} / 2): the count of "
            "unclipped examples would spend all of the privacy of one step",
            allowed=f"a number > {sigma / 2:g} (the paper suggests about batch_size / 20)",
        )
