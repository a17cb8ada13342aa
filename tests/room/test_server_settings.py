"""ServerSettings: read from the environment with checked values; the upload limit agrees with Streamlit's config."""

from __future__ import annotations

import os

import pytest
import toml  # Streamlit's own TOML reader (tomllib needs Python 3.11)

from dpcore.errors import UserInputError
from dpcore.privacy import limits
from dpcore.room.server_settings import (
    MAX_UPLOAD_BYTES,
    MIN_HOST_SECRET_CHARS,
    RoomLimits,
    RunLimits,
    ServerSettings,
    upload_limit_text,
)
from tests.conftest import REPO_ROOT

STREAMLIT_CONFIG = REPO_ROOT / ".streamlit" / "config.toml"


def test_defaults_without_any_variable():
    settings = ServerSettings.from_env({})
    assert settings.workers == (os.cpu_count() or 1)
    assert (
        settings.limits
        == RunLimits()
        == RunLimits(
            max_running=1, max_queued=3, max_sweep_runs=24, max_example_passes=6_000_000, max_run_seconds=3600.0
        )
    )
    assert settings.data_dir is None and settings.host_secret is None and not settings.has_host
    assert settings.max_upload_bytes == MAX_UPLOAD_BYTES
    assert settings.room == RoomLimits(
        upload_quota_bytes=200 * 2**20,
        uploads_total_bytes=2000 * 2**20,
        disk_reserve_bytes=1024 * 2**20,
        joins_per_address=10,
        join_window_seconds=600.0,
        host_lockout_failures=10,
        host_lockout_seconds=900.0,
    )
    assert settings.room_code is None
    assert settings.max_encoded_values == 50_000_000


def test_every_variable_is_read(tmp_path):
    settings = ServerSettings.from_env(
        {
            "DPEXPLORER_WORKERS": "3",
            "DPEXPLORER_MAX_RUNNING": "2",
            "DPEXPLORER_MAX_QUEUED": "0",
            "DPEXPLORER_MAX_SWEEP_RUNS": "40",
            "DPEXPLORER_MAX_EXAMPLE_PASSES": "1000",
            "DPEXPLORER_MAX_RUN_SECONDS": "none",
            "DPEXPLORER_DATA_DIR": str(tmp_path),
            "DPEXPLORER_HOST_SECRET": "s3cret-long-enough-1",
            "DPEXPLORER_ROOM_CODE": "ROOM-42",
            "DPEXPLORER_UPLOAD_QUOTA_MB": "60",
            "DPEXPLORER_UPLOADS_TOTAL_MB": "500",
            "DPEXPLORER_DISK_RESERVE_MB": "0",
            "DPEXPLORER_JOINS_PER_ADDRESS": "40",
            "DPEXPLORER_JOIN_WINDOW_SECONDS": "60",
            "DPEXPLORER_HOST_LOCKOUT_FAILURES": "5",
            "DPEXPLORER_HOST_LOCKOUT_SECONDS": "30.5",
        }
    )
    assert settings.workers == 3
    assert settings.limits == RunLimits(
        max_running=2, max_queued=0, max_sweep_runs=40, max_example_passes=1000, max_run_seconds=None
    )
    assert settings.data_dir == tmp_path.resolve() and settings.host_secret == "s3cret-long-enough-1"
    assert settings.room == RoomLimits(
        upload_quota_bytes=60 * 2**20,
        uploads_total_bytes=500 * 2**20,
        disk_reserve_bytes=0,
        joins_per_address=40,
        join_window_seconds=60.0,
        host_lockout_failures=5,
        host_lockout_seconds=30.5,
    )
    assert settings.room_code == "ROOM-42"
    assert "s3cret" not in repr(settings) and "ROOM-42" not in repr(settings)


def test_the_host_secret_can_come_from_a_file(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file-123456\nsecond line\n")
    settings = ServerSettings.from_env({"DPEXPLORER_HOST_SECRET_FILE": str(secret_file)})
    assert settings.host_secret == "from-a-file-123456"
    with pytest.raises(UserInputError, match="DPEXPLORER_HOST_SECRET_FILE: cannot read"):
        ServerSettings.from_env({"DPEXPLORER_HOST_SECRET_FILE": str(tmp_path / "missing")})
    with pytest.raises(UserInputError, match="one of them"):
        ServerSettings.from_env({"DPEXPLORER_HOST_SECRET_FILE": str(secret_file), "DPEXPLORER_HOST_SECRET": "x" * 12})


@pytest.mark.parametrize(
    "name, value, problem",
    [
        ("DPEXPLORER_WORKERS", "0", "at least 1"),
        ("DPEXPLORER_WORKERS", "two", "at least 1"),
        ("DPEXPLORER_MAX_RUNNING", "0", "at least 1"),
        ("DPEXPLORER_MAX_QUEUED", "-1", "at least 0"),
        ("DPEXPLORER_MAX_SWEEP_RUNS", "0", "at least 1"),
        ("DPEXPLORER_MAX_EXAMPLE_PASSES", "1.5", "not a number"),
        ("DPEXPLORER_MAX_RUN_SECONDS", "0", "out of range"),
        ("DPEXPLORER_MAX_RUN_SECONDS", "inf", "out of range"),
        ("DPEXPLORER_DATA_DIR", "/no/such/folder", "not a folder"),
        ("DPEXPLORER_HOST_SECRET", "short", "5 characters"),
        ("DPEXPLORER_HOST_SECRET", "x" * (MIN_HOST_SECRET_CHARS - 1), f"{MIN_HOST_SECRET_CHARS - 1} characters"),
        ("DPEXPLORER_ROOM_CODE", " code ", "spaces around"),
        ("DPEXPLORER_ROOM_CODE", "x" * 65, "65 characters"),
        ("DPEXPLORER_UPLOAD_QUOTA_MB", "0", "at least 1"),
        ("DPEXPLORER_UPLOADS_TOTAL_MB", "lots", "at least 1"),
        ("DPEXPLORER_DISK_RESERVE_MB", "-5", "at least 0"),
        ("DPEXPLORER_JOINS_PER_ADDRESS", "0", "at least 1"),
        ("DPEXPLORER_JOIN_WINDOW_SECONDS", "0", "out of range"),
        ("DPEXPLORER_HOST_LOCKOUT_FAILURES", "0", "at least 1"),
        ("DPEXPLORER_HOST_LOCKOUT_SECONDS", "soon", "not a number"),
        ("DPEXPLORER_RAY_ADDRESS", "http://head:8265", "not a Ray address"),
        ("DPEXPLORER_RAY_ADDRESS", "head", "not a Ray address"),
        ("DPEXPLORER_RAY_ADDRESS", "ray://head:0", "not a Ray address"),
        ("DPEXPLORER_RAY_ADDRESS", "head:65536", "not a Ray address"),
        ("DPEXPLORER_RAY_ADDRESS", "$(touch /tmp/x):6379", "not a Ray address"),
        ("DPEXPLORER_RAY_ADDRESS", "h" * 300 + ":1", "not a Ray address"),
    ],
)
def test_bad_values_name_the_variable(name, value, problem):
    with pytest.raises(UserInputError) as info:
        ServerSettings.from_env({name: value})
    assert info.value.field == name and problem in str(info.value)


def test_a_short_host_secret_is_refused_at_start_naming_the_variable_and_the_length():
    with pytest.raises(UserInputError) as info:
        ServerSettings.from_env({"DPEXPLORER_HOST_SECRET": "s3cret-enough"})
    assert info.value.field == "DPEXPLORER_HOST_SECRET"
    assert f"at least {MIN_HOST_SECRET_CHARS} characters" in str(info.value) and "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    "address", ["auto", "ray://head:10001", "head.example.org:6379", "10.0.0.7:6379", "[::1]:6379"]
)
def test_ray_addresses_of_each_form_are_read(address):
    assert ServerSettings.from_env({"DPEXPLORER_RAY_ADDRESS": f" {address} "}).ray_address == address
    assert ServerSettings(ray_address=address).ray_address == address


def test_the_accountant_limit_is_read_and_checked():
    assert ServerSettings.from_env({}).accountant_seconds == limits.MAX_QUERY_SECONDS == 30.0
    assert ServerSettings.from_env({"DPEXPLORER_ACCOUNTANT_SECONDS": "7.5"}).accountant_seconds == 7.5
    for text, problem in (
        ("0", "out of range"),
        ("nan", "out of range"),
        ("3601", "out of range"),
        ("ten", "not a number"),
    ):
        with pytest.raises(UserInputError) as info:
            ServerSettings.from_env({"DPEXPLORER_ACCOUNTANT_SECONDS": text})
        assert info.value.field == "DPEXPLORER_ACCOUNTANT_SECONDS" and problem in str(info.value)
        assert "at most 3600" in str(info.value)
    with pytest.raises(UserInputError, match="accountant_seconds"):
        ServerSettings(accountant_seconds=-1.0)


def test_limits_are_checked_when_built_too():
    with pytest.raises(UserInputError, match="max_running"):
        RunLimits(max_running=0)
    with pytest.raises(UserInputError, match="max_run_seconds"):
        RunLimits(max_run_seconds=-1.0)
    with pytest.raises(UserInputError, match="ray_address: 'http://head:8265' is not a Ray address"):
        ServerSettings(ray_address="http://head:8265")
    assert RunLimits().replace(max_queued=5).max_queued == 5
    with pytest.raises(UserInputError, match="joins_per_address"):
        RoomLimits(joins_per_address=0)
    with pytest.raises(UserInputError, match="host_lockout_seconds"):
        RoomLimits(host_lockout_seconds=float("inf"))
    with pytest.raises(UserInputError, match="room_code"):
        ServerSettings(room_code="")


def test_streamlit_upload_limit_agrees_with_the_library():
    config = toml.loads(STREAMLIT_CONFIG.read_text())
    # Streamlit multiplies server.maxUploadSize by 1024 * 1024 (starlette_routes.py).
    assert config["server"]["maxUploadSize"] * 1024 * 1024 == MAX_UPLOAD_BYTES
    assert f"{MAX_UPLOAD_BYTES // 2**20} MB" in upload_limit_text()


def test_streamlit_config_is_fit_for_a_shared_server():
    config = toml.loads(STREAMLIT_CONFIG.read_text())
    server, client = config["server"], config["client"]
    assert server["enableXsrfProtection"] is True and server.get("enableCORS", True) is True
    assert server["fileWatcherType"] == "none" and server["runOnSave"] is False and server["headless"] is True
    assert config["browser"]["gatherUsageStats"] is False
    assert client["showErrorDetails"] == "none"
    assert server.get("enableStaticServing", False) is False
