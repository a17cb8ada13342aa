"""Share links: a config survives the round trip through query parameters; bad links name the field."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpcore.config import DPConfig
from dpcore.errors import ConfigError
from dpcore.export import share


def test_round_trip_of_every_field() -> None:
    config = DPConfig(
        dataset="fashion_mnist",
        model="cnn",
        optimizer="momentum",
        learning_rate=0.25,
        momentum=0.5,
        noise_multiplier=1.23456789,
        l2_norm_clip=1.5,
        batch_size=250,
        epochs=4,
        delta=1e-6,
        accountant="pld",
        sampling="shuffle",
        private=False,
        seed=7,
        max_train_examples=5000,
    )
    assert share.decode(share.encode(config)) == config


def test_round_trip_of_the_recipe_settings_and_links_of_schema_version_1() -> None:
    config = DPConfig(
        noise_schedule="time",
        noise_decay_rate=0.004,
        noise_floor=0.55,
        adaptive_clipping=True,
        target_unclipped_quantile=0.9,
        clip_learning_rate=0.001,
        clip_update="linear",
        count_noise_multiplier=2.56,
        epsilon_budget=2.5,
        validation_fraction=0.2,
        weight_averaging_decay=0.97,
    )
    params = share.encode(config)
    assert params["dpx"] == "4" and params["adaptive_clipping"] == "true" and params["epsilon_budget"] == "2.5"
    assert params["weight_averaging_decay"] == "0.97"
    assert share.decode(params) == config
    assert "epsilon_budget" not in share.encode(DPConfig())  # None is left out and comes back as None
    assert share.decode({"dpx": "1", "epochs": "3"}) == DPConfig(epochs=3)


@settings(max_examples=50, deadline=None)
@given(
    noise=st.floats(0.01, 999.0),
    clip=st.floats(0.001, 1e5),
    batch=st.integers(1, 10**6),
    delta=st.floats(1e-12, 0.5, exclude_max=True),
)
def test_round_trip_keeps_floats_exact(noise: float, clip: float, batch: int, delta: float) -> None:
    config = DPConfig(noise_multiplier=noise, l2_norm_clip=clip, batch_size=batch, delta=delta)
    assert share.decode(share.encode(config)) == config


def test_round_trip_of_a_csv_schema_and_an_epsilon_share() -> None:
    csv = dict(dataset="csv", csv_path="/srv/uploads/people-0123.csv", csv_label="outcome")
    schema = {"classes": [0, 1], "numeric": {"age": [18, 100]}, "categorical": {"city, country": ["Lyon, FR"]}}
    for config in (DPConfig(**csv, csv_schema=schema), DPConfig(**csv, csv_preprocessing_epsilon=0.75)):
        assert share.decode(share.encode(config)) == config
        url = share.share_url("http://host:8501/", config)
        decoded = share.decode({k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()})
        assert decoded == config.replace(csv_path="people-0123.csv")  # a link names the file, not its path


def test_version_1_links_still_load_and_a_broken_schema_names_its_field() -> None:
    assert share.decode({"dpx": "1", "epochs": "3"}) == DPConfig(epochs=3)
    base = {"dpx": "2", "dataset": "csv", "csv_path": "a.csv", "csv_label": "y"}
    with pytest.raises(ConfigError) as info:
        share.decode({**base, "csv_schema": "{not json"})
    assert info.value.field == "csv_schema"
    with pytest.raises(ConfigError) as info:
        share.decode({**base, "csv_schema": '{"classes": ["a", "b"], "numeric": {"x": [2, 1]}}'})
    assert info.value.field == "csv_schema.numeric.x"


def test_share_url_replaces_the_query_and_keeps_the_path() -> None:
    url = share.share_url("http://host:8501/app/?old=1#x", DPConfig(batch_size=32))
    parts = urlsplit(url)
    assert parts.path == "/app/" and parts.fragment == ""
    params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    assert share.is_shared(params) and "old" not in params
    assert share.decode(params).batch_size == 32


def test_missing_fields_take_defaults_and_lists_use_the_last_value() -> None:
    assert share.decode({"dpx": "1", "epochs": ["3", "5"]}) == DPConfig(epochs=5)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"dpx": "1", "batch_size": "ten"}, "batch_size"),
        ({"dpx": "1", "noise_multiplier": "nan"}, "noise_multiplier"),
        ({"dpx": "1", "private": "maybe"}, "private"),
        ({"dpx": "1", "epochs": "0"}, "epochs"),
        ({"dpx": "1", "colour": "red"}, "colour"),
        ({"dpx": "9"}, "schema_version"),
    ],
)
def test_bad_links_name_the_field(params: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        share.decode(params)
    assert info.value.field == field


def test_streamlit_params_are_ignored() -> None:
    assert share.decode({"dpx": "1", "embed": "true"}) == DPConfig()


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://localhost:8501/export", "http://localhost:8501/"),
        ("http://localhost:8501/", "http://localhost:8501/"),
        ("https://h.example/base/train/", "https://h.example/base/"),
        ("https://h.example/base", "https://h.example/base/"),
    ],
)
def test_base_of_drops_the_page(url: str, expected: str) -> None:
    assert share.base_of(url, ("explore", "train", "export")) == expected


def test_a_link_someone_opened_ignores_and_lists_unknown_parameters() -> None:
    wanted = DPConfig(noise_multiplier=1.7)
    link = share.decode_link({**share.encode(wanted), "fbclid": "IwAR0", "utm_source": "mail", "me": "x" * 32})
    assert link.config == wanted
    assert link.ignored == ("'fbclid'", "'utm_source'")
    with pytest.raises(ConfigError):  # a bad value of a known field is still refused
        share.decode_link({"dpx": "1", "epochs": "0", "fbclid": "IwAR0"})


def test_a_csv_configs_link_names_its_upload_by_the_files_own_name(tmp_path, monkeypatch) -> None:
    from dpcore.csv_schema import CsvSchema, NumericColumn
    from dpcore.room import uploads
    from tests.conftest import REPO_ROOT

    monkeypatch.setenv(uploads.ENV_UPLOADS, str(tmp_path))
    owner = "p" + "a" * 16
    kept = uploads.save_csv((REPO_ROOT / "assets" / "sample.csv").read_bytes(), name="loans 2024.csv", owner=owner)
    schema = CsvSchema(classes=("approved", "declined"), numeric=(NumericColumn(name="age", low=18, high=100),))
    config = DPConfig(dataset="csv", model="logreg", csv_path=str(kept), csv_label="decision", csv_schema=schema)
    url = share.share_url("http://host:8501/export", config)
    assert owner not in url and str(tmp_path) not in url and kept.name not in url
    params = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
    assert params["csv_path"] == "loans 2024.csv"
    assert share.decode(params) == config.replace(csv_path="loans 2024.csv")  # everything but the file
