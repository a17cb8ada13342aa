"""DPConfig: validation names the field, round trips keep every value, unknown keys are refused."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dpcore.config import FIELD_NAMES, SCHEMA_VERSION, DPConfig, load_config_file
from dpcore.errors import ConfigError


def test_defaults_are_valid_and_private():
    config = DPConfig()
    assert config.private and config.dataset == "digits"


@pytest.mark.parametrize(
    "field, value",
    [
        ("noise_multiplier", 0.0),
        ("noise_multiplier", -1.0),
        ("noise_multiplier", math.nan),
        ("l2_norm_clip", 0.0),
        ("l2_norm_clip", math.inf),
        ("batch_size", 0),
        ("batch_size", 3.5),
        ("batch_size", True),
        ("epochs", 0),
        ("epochs", "5"),
        ("delta", 0.0),
        ("delta", 1.0),
        ("learning_rate", -0.1),
        ("momentum", 1.0),
        ("dataset", "imagenet"),
        ("model", "resnet"),
        ("optimizer", "rmsprop"),
        ("accountant", "moments"),
        ("sampling", "uniform"),
        ("activation", "gelu"),
        ("seed", -1),
        ("max_train_examples", 1),
        ("private", "yes"),
        ("noise_schedule", "exp"),
        ("noise_decay_rate", 1.0),
        ("noise_decay_rate", -0.1),
        ("noise_floor", 0.0),
        ("adaptive_clipping", "on"),
        ("target_unclipped_quantile", 1.0),
        ("target_unclipped_quantile", 0.0),
        ("clip_learning_rate", 0.0),
        ("clip_update", "exponential"),
        ("count_noise_multiplier", 0.0),
        ("epsilon_budget", 0.0),
        ("epsilon_budget", math.inf),
        ("epsilon_budget", "8"),
        ("validation_fraction", -0.1),
        ("validation_fraction", 0.95),
        ("weight_averaging_decay", 0.0),
        ("weight_averaging_decay", 1.0),
        ("weight_averaging_decay", "0.9"),
    ],
)
def test_bad_values_raise_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError) as info:
        DPConfig(**{field: value})
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}:")
    assert "allowed" in str(info.value)


def test_zero_noise_is_allowed_only_for_the_non_private_baseline():
    baseline = DPConfig(private=False, noise_multiplier=0.0)
    assert not baseline.private
    assert DPConfig().as_baseline().private is False


def test_dataset_size_checks_batch_and_delta():
    config = DPConfig(batch_size=64, delta=1e-5)
    config.check_dataset_size(1437)
    with pytest.raises(ConfigError, match="batch_size"):
        DPConfig(batch_size=2000).check_dataset_size(1437)
    with pytest.raises(ConfigError, match="delta"):
        DPConfig(delta=1e-3).check_dataset_size(1437)
    DPConfig(delta=1e-3, private=False).check_dataset_size(1437)


def test_csv_needs_path_and_label_and_others_refuse_them():
    with pytest.raises(ConfigError, match="csv_path"):
        DPConfig(dataset="csv")
    with pytest.raises(ConfigError, match="csv_label"):
        DPConfig(dataset="csv", csv_path="data.csv")
    with pytest.raises(ConfigError, match="csv_path"):
        DPConfig(csv_path="data.csv")
    assert DPConfig(dataset="csv", csv_path="a.csv", csv_label="y").csv_label == "y"


CSV = dict(dataset="csv", csv_path="data.csv", csv_label="y")
SCHEMA = {
    "classes": ["no", "yes"],
    "numeric": {"age": [18, 100]},
    "categorical": {"city": ["Lyon", "Paris"]},
    "scale": "symmetric",
}


def test_a_csv_schema_or_an_epsilon_share_round_trips_in_every_format():
    for config in (DPConfig(**CSV, csv_schema=SCHEMA), DPConfig(**CSV, csv_preprocessing_epsilon=0.5)):
        assert DPConfig.from_json(config.to_json()) == config
        assert DPConfig.from_yaml(config.to_yaml()) == config
        assert hash(config) == hash(DPConfig.from_yaml(config.to_yaml()))
    assert DPConfig(**CSV, csv_schema=SCHEMA).to_dict()["csv_schema"] == {**SCHEMA, "numeric": {"age": [18.0, 100.0]}}


def test_csv_schema_fields_are_checked_and_name_the_field():
    with pytest.raises(ConfigError) as info:
        DPConfig(**CSV, csv_schema=SCHEMA, csv_preprocessing_epsilon=0.5)
    assert info.value.field == "csv_preprocessing_epsilon" and "not both" in str(info.value)
    for value in (0.0, 0.001, 101.0, math.nan, "1"):
        with pytest.raises(ConfigError, match="csv_preprocessing_epsilon"):
            DPConfig(**CSV, csv_preprocessing_epsilon=value)
    with pytest.raises(ConfigError, match=r"csv_schema\.numeric\.age: low 100 is not below high 18"):
        DPConfig(**CSV, csv_schema={**SCHEMA, "numeric": {"age": [100, 18]}})
    with pytest.raises(ConfigError, match="csv_schema: expected a mapping"):
        DPConfig(**CSV, csv_schema="schema.yaml")
    for field, value in (("csv_schema", SCHEMA), ("csv_preprocessing_epsilon", 1.0)):
        with pytest.raises(ConfigError, match=f"{field}: is only used with dataset 'csv'"):
            DPConfig(**{field: value})


def test_version_1_configs_still_load():
    old = {
        "schema_version": 1,
        **{
            k: v
            for k, v in DPConfig(**CSV).to_dict().items()
            if k not in ("schema_version", "csv_schema", "csv_preprocessing_epsilon")
        },
    }
    assert DPConfig.from_dict(old) == DPConfig(**CSV)
    assert SCHEMA_VERSION == 4


def test_version_2_configs_of_either_kind_still_load():
    # Version 2 was written with either the CSV schema keys or the recipe keys, never both.
    csv_v2 = {
        "schema_version": 2,
        "dataset": "csv",
        "csv_path": "data.csv",
        "csv_label": "y",
        "csv_preprocessing_epsilon": 0.5,
    }
    recipe_v2 = {
        "schema_version": 2,
        "noise_schedule": "time",
        "noise_floor": 0.6,
        "epsilon_budget": 2.0,
        "validation_fraction": 0.1,
    }
    assert DPConfig.from_dict(csv_v2) == DPConfig(
        dataset="csv", csv_path="data.csv", csv_label="y", csv_preprocessing_epsilon=0.5
    )
    assert DPConfig.from_dict(recipe_v2) == DPConfig(
        noise_schedule="time", noise_floor=0.6, epsilon_budget=2.0, validation_fraction=0.1
    )
    with pytest.raises(ConfigError, match="schema_version") as info:
        DPConfig.from_dict({"schema_version": 5})
    assert info.value.allowed == "1, 2, 3, 4"


configs = st.builds(
    DPConfig,
    dataset=st.sampled_from(["digits", "fashion_mnist", "mnist"]),
    model=st.sampled_from(["logreg", "mlp", "cnn", "lenet5"]),
    optimizer=st.sampled_from(["sgd", "momentum", "adam"]),
    learning_rate=st.floats(min_value=1e-5, max_value=10, allow_nan=False),
    noise_multiplier=st.floats(min_value=0.01, max_value=100, allow_nan=False),
    l2_norm_clip=st.floats(min_value=0.01, max_value=100, allow_nan=False),
    batch_size=st.integers(min_value=1, max_value=10_000),
    epochs=st.integers(min_value=1, max_value=200),
    delta=st.floats(min_value=1e-12, max_value=0.5, allow_nan=False),
    accountant=st.sampled_from(["rdp", "pld"]),
    sampling=st.sampled_from(["poisson", "shuffle"]),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
    max_train_examples=st.one_of(st.none(), st.integers(min_value=2, max_value=100_000)),
    noise_schedule=st.sampled_from(["constant", "time", "step"]),
    noise_decay_rate=st.floats(min_value=0.0, max_value=0.999, allow_nan=False),
    noise_floor=st.floats(min_value=1e-3, max_value=0.01, allow_nan=False),
    adaptive_clipping=st.booleans(),
    target_unclipped_quantile=st.floats(min_value=0.01, max_value=0.99, allow_nan=False),
    clip_learning_rate=st.floats(min_value=1e-4, max_value=1.0, allow_nan=False),
    clip_update=st.sampled_from(["linear", "geometric"]),
    count_noise_multiplier=st.floats(min_value=60.0, max_value=500.0, allow_nan=False),
    epsilon_budget=st.one_of(st.none(), st.floats(min_value=0.01, max_value=100, allow_nan=False)),
    validation_fraction=st.floats(min_value=0.0, max_value=0.5, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(configs)
def test_json_and_yaml_round_trips_are_exact(config):
    assert DPConfig.from_json(config.to_json()) == config
    assert DPConfig.from_yaml(config.to_yaml()) == config
    assert DPConfig.from_text(config.to_yaml(), filename="x.yml") == config


def test_serialised_form_carries_the_schema_version():
    data = json.loads(DPConfig().to_json())
    assert data["schema_version"] == SCHEMA_VERSION
    assert set(data) == set(FIELD_NAMES) | {"schema_version"}


def test_unknown_keys_and_versions_are_refused():
    with pytest.raises(ConfigError, match="noise_multipler: unknown config key"):
        DPConfig.from_dict({"noise_multipler": 1.0})
    with pytest.raises(ConfigError, match="schema_version"):
        DPConfig.from_dict({"schema_version": 99})
    with pytest.raises(ConfigError, match="unknown config key"):
        DPConfig().replace(epoch=3)


@pytest.mark.parametrize(
    "text, filename, message",
    [
        ("{not json", "c.json", "not valid JSON"),
        ("a: [1, 2", "c.yaml", "not valid YAML"),
        ("- 1\n- 2\n", "c.yaml", "expected a mapping"),
        ("!!python/object:os.system {}", "c.yaml", "not valid YAML"),
        ("epochs: 3", "c.txt", "allowed: .json, .yaml or .yml"),
    ],
)
def test_bad_files_give_clear_errors(text, filename, message):
    with pytest.raises(ConfigError, match=message):
        DPConfig.from_text(text, filename=filename)


def test_yaml_values_of_the_wrong_type_name_the_field():
    with pytest.raises(ConfigError, match="batch_size: 'big' is not a whole number"):
        DPConfig.from_yaml("batch_size: big\n")


def test_load_config_file_reports_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(str(tmp_path / "missing.json"))
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"epochs": 3, "noise_multiplier": 0.8}))
    assert load_config_file(str(path)) == DPConfig(epochs=3, noise_multiplier=0.8)


def test_secure_mode_is_a_boolean_that_round_trips():
    config = DPConfig(secure_mode=True)
    assert DPConfig.from_json(config.to_json()) == config
    with pytest.raises(ConfigError, match="secure_mode"):
        DPConfig(secure_mode="yes")


def test_parse_field_reads_text_as_the_field_type():
    from dpcore.config import parse_field

    assert parse_field("private", "Yes") is True and parse_field("secure_mode", "off") is False
    assert parse_field("max_train_examples", "none") is None and parse_field("max_train_examples", "100") == 100
    assert parse_field("learning_rate", "1") == 1.0 and type(parse_field("learning_rate", "1")) is float
    assert parse_field("model", " mlp ") == "mlp"
    for name, text, words in [
        ("epochs", "two", "not a whole number"),
        ("private", "maybe", "true or false"),
        ("delta", "nan", "not a finite number"),
        ("noise", "1", "unknown config key"),
    ]:
        with pytest.raises(ConfigError, match=words) as info:
            parse_field(name, text)
        assert info.value.field == name


def test_a_version_1_config_loads_with_the_new_keys_at_their_defaults():
    version_1 = {"schema_version": 1, "dataset": "digits", "noise_multiplier": 0.9, "epochs": 4}
    config = DPConfig.from_dict(version_1)
    assert config == DPConfig(noise_multiplier=0.9, epochs=4)
    assert config.noise_schedule == "constant" and not config.adaptive_clipping
    assert config.epsilon_budget is None and config.validation_fraction == 0.0
    assert DPConfig.from_yaml(yaml.safe_dump(version_1)) == config
    assert config.weight_averaging_decay is None
    assert json.loads(config.to_json())["schema_version"] == SCHEMA_VERSION == 4


def test_recipe_settings_round_trip_and_cross_checks_name_their_field():
    config = DPConfig(
        noise_schedule="step",
        noise_decay_rate=0.01,
        noise_floor=0.6,
        adaptive_clipping=True,
        clip_update="linear",
        clip_learning_rate=0.001,
        target_unclipped_quantile=0.9,
        count_noise_multiplier=2.56,
        epsilon_budget=3.5,
        validation_fraction=0.2,
        weight_averaging_decay=0.97,
    )
    assert DPConfig.from_json(config.to_json()) == config == DPConfig.from_yaml(config.to_yaml())
    with pytest.raises(ConfigError, match=r"noise_floor: 1.5 is above the initial noise multiplier 1.1"):
        DPConfig(noise_schedule="time", noise_multiplier=1.1, noise_floor=1.5)
    DPConfig(
        noise_schedule="constant", noise_multiplier=1.1, noise_floor=1.5
    )  # a constant schedule has no floor to check
    with pytest.raises(ConfigError, match=r"count_noise_multiplier: 0.5 is not above half"):
        DPConfig(adaptive_clipping=True, noise_multiplier=1.1, count_noise_multiplier=0.5)
