"""The settings of one DP Explorer server, read once from environment variables when it starts.

A workshop runs 20–40 people on one server; these settings bound what any one of them can take
(workers, per-participant limits, compute and wall-time caps), where server files may be read
from, and how the instructor's host role is unlocked. Every variable is optional; a bad value is a
``UserInputError`` naming the variable and what it allows, so the server refuses to start rather
than run with a limit nobody asked for.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from dpcore.data.csv_files import MAX_CSV_BYTES
from dpcore.errors import UserInputError

ENV_WORKERS = "DPEXPLORER_WORKERS"
ENV_RAY_ADDRESS = "DPEXPLORER_RAY_ADDRESS"
ENV_BACKEND = "DPEXPLORER_BACKEND"
ENV_ACCOUNTANT_PROCESSES = "DPEXPLORER_ACCOUNTANT_PROCESSES"
ENV_ACCOUNTANT_SECONDS = "DPEXPLORER_ACCOUNTANT_SECONDS"
ENV_MAX_RUNNING = "DPEXPLORER_MAX_RUNNING"
ENV_MAX_QUEUED = "DPEXPLORER_MAX_QUEUED"
ENV_MAX_EXAMPLE_PASSES = "DPEXPLORER_MAX_EXAMPLE_PASSES"
ENV_MAX_RUN_SECONDS = "DPEXPLORER_MAX_RUN_SECONDS"
ENV_DATA_DIR = "DPEXPLORER_DATA_DIR"
ENV_HOST_SECRET = "DPEXPLORER_HOST_SECRET"
ENV_HOST_SECRET_FILE = "DPEXPLORER_HOST_SECRET_FILE"

# An upload is a CSV file read by the same loader as a file on the server, so the upload limit is
# the CSV reader's limit. .streamlit/config.toml's server.maxUploadSize (in MiB: Streamlit
# multiplies it by 1024 * 1024) must equal it; tests/test_server_settings.py compares them.
MAX_UPLOAD_BYTES = MAX_CSV_BYTES
MAX_UPLOAD_MB = MAX_UPLOAD_BYTES // 2**20

# Where a served app's runs train: child processes (dpcore.runs.process_backend, the default, so training
# never competes with the page runs for the server's GIL) or the server's own worker threads.
BACKENDS = ("process", "local")
DEFAULT_BACKEND = "process"

DEFAULT_MAX_RUNNING = 1
DEFAULT_MAX_QUEUED = 3
# 100 epochs of Fashion-MNIST's 60,000 training images; digits (1,437) fits 1000 epochs.
DEFAULT_MAX_EXAMPLE_PASSES = 6_000_000
DEFAULT_MAX_RUN_SECONDS = 3600.0
MIN_HOST_SECRET_CHARS = 8
# The longest a page's accountant question may take (dpcore.privacy.limits.MAX_QUERY_SECONDS, the
# library's own bound, by default); the most a host may allow is an hour.
DEFAULT_ACCOUNTANT_SECONDS = 30.0
MAX_ACCOUNTANT_SECONDS = 3600.0
# Words that switch a cap off.
NO_LIMIT_WORDS = ("none", "off")


def upload_limit_text() -> str:
    """What the upload box says about its limit (Streamlit's own uploader shows the same MB figure)."""
    return f"CSV files up to {MAX_UPLOAD_MB} MB each."


@dataclass(frozen=True)
class RunLimits:
    """What one participant's runs may take; the host can change them while the server runs.

    ``max_running``: runs of one participant training at once ($DPEXPLORER_MAX_RUNNING, default 1).
    ``max_queued``: runs of one participant waiting for a worker ($DPEXPLORER_MAX_QUEUED, default 3).
    ``max_example_passes``: the compute cap of one run, training examples × epochs
    ($DPEXPLORER_MAX_EXAMPLE_PASSES, default 6,000,000; "none" for no cap).
    ``max_run_seconds``: the wall time after which a running run is stopped, keeping its finished
    epochs ($DPEXPLORER_MAX_RUN_SECONDS, default 3600; "none" for no cap).
    """

    max_running: int = DEFAULT_MAX_RUNNING
    max_queued: int = DEFAULT_MAX_QUEUED
    max_example_passes: Optional[int] = DEFAULT_MAX_EXAMPLE_PASSES
    max_run_seconds: Optional[float] = DEFAULT_MAX_RUN_SECONDS

    def __post_init__(self) -> None:
        _check_whole("max_running", self.max_running, low=1)
        _check_whole("max_queued", self.max_queued, low=0)
        if self.max_example_passes is not None:
            _check_whole("max_example_passes", self.max_example_passes, low=1)
        if self.max_run_seconds is not None:
            value = self.max_run_seconds
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise UserInputError(
                    "max_run_seconds",
                    f"{value!r} is not a positive number of seconds",
                    allowed="a number of seconds above 0, or None for no cap",
                )

    def replace(self, **changes: object) -> RunLimits:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ServerSettings:
    """Everything a served DP Explorer is configured with; ``from_env()`` reads it at start-up.

    ``workers``: training threads ($DPEXPLORER_WORKERS, default the machine's cores).
    ``limits``: the per-participant and per-run limits (``RunLimits``).
    ``data_dir``: the only folder whose files the "CSV file on the server" box and configs from
    links or uploads may name ($DPEXPLORER_DATA_DIR); None (the default) turns that box off.
    ``host_secret``: the instructor's secret ($DPEXPLORER_HOST_SECRET, or the first line of the file
    $DPEXPLORER_HOST_SECRET_FILE names); None means there is no host, so nobody can manage others'
    runs. It is never shown (``repr`` leaves it out) and never belongs in a URL.
    ``ray_address``: a Ray cluster to train on ($DPEXPLORER_RAY_ADDRESS, e.g. "ray://head:10001" or
    "auto"); it takes precedence over ``backend``.
    ``accountant_processes``: processes that answer the pages' accountant questions, kept waiting
    between them; twice as many may compute at once ($DPEXPLORER_ACCOUNTANT_PROCESSES, default the
    machine's cores; 0: in the server process, without a deadline).
    ``accountant_seconds``: the longest one accountant question of a page may take, a sweep's preview
    or a calibration included: one estimated to take longer is refused before it starts, and one
    still running then is stopped ($DPEXPLORER_ACCOUNTANT_SECONDS, default 30).
    ``backend``: where runs train without Ray ($DPEXPLORER_BACKEND, one of BACKENDS): "process" (the
    default) in long-lived, lower-priority child processes; "local" in the server's worker threads.
    The upload limit is ``MAX_UPLOAD_BYTES``, fixed because .streamlit/config.toml must agree with it.
    """

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    limits: RunLimits = field(default_factory=RunLimits)
    data_dir: Optional[Path] = None
    host_secret: Optional[str] = field(default=None, repr=False)
    ray_address: Optional[str] = None
    backend: str = DEFAULT_BACKEND
    accountant_processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    accountant_seconds: float = DEFAULT_ACCOUNTANT_SECONDS

    def __post_init__(self) -> None:
        _check_whole("workers", self.workers, low=1)
        _check_whole("accountant_processes", self.accountant_processes, low=0)
        value = self.accountant_seconds
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_ACCOUNTANT_SECONDS:
            raise UserInputError(
                "accountant_seconds",
                f"{value!r} is out of range",
                allowed=f"a number of seconds above 0, at most {MAX_ACCOUNTANT_SECONDS:g}",
            )
        if self.backend not in BACKENDS:
            raise UserInputError(
                "backend", f"{self.backend!r} is not a training backend", allowed=" or ".join(BACKENDS)
            )
        if self.host_secret is not None and len(self.host_secret) < MIN_HOST_SECRET_CHARS:
            raise UserInputError(
                "host_secret",
                f"the host secret has {len(self.host_secret)} characters",
                allowed=f"at least {MIN_HOST_SECRET_CHARS} characters",
            )

    @property
    def max_upload_bytes(self) -> int:
        """The largest file a person may upload (``MAX_UPLOAD_BYTES``)."""
        return MAX_UPLOAD_BYTES

    @property
    def has_host(self) -> bool:
        """Whether a host secret is configured (without one, nobody manages others' runs)."""
        return self.host_secret is not None

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> ServerSettings:
        """The settings the environment variables describe (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        defaults = RunLimits()
        limits = RunLimits(
            max_running=_env_whole(env, ENV_MAX_RUNNING, defaults.max_running, low=1),
            max_queued=_env_whole(env, ENV_MAX_QUEUED, defaults.max_queued, low=0),
            max_example_passes=_env_cap(env, ENV_MAX_EXAMPLE_PASSES, defaults.max_example_passes, whole=True),
            max_run_seconds=_env_cap(env, ENV_MAX_RUN_SECONDS, defaults.max_run_seconds, whole=False),
        )
        data_dir_text = env.get(ENV_DATA_DIR, "").strip()
        return cls(
            workers=_env_whole(env, ENV_WORKERS, os.cpu_count() or 1, low=1),
            limits=limits,
            data_dir=_data_dir(data_dir_text) if data_dir_text else None,
            host_secret=_host_secret(env),
            ray_address=env.get(ENV_RAY_ADDRESS, "").strip() or None,
            backend=_env_backend(env),
            accountant_processes=_env_whole(env, ENV_ACCOUNTANT_PROCESSES, os.cpu_count() or 1, low=0),
            accountant_seconds=_env_seconds(env, ENV_ACCOUNTANT_SECONDS, DEFAULT_ACCOUNTANT_SECONDS),
        )


def _env_backend(env: Mapping[str, str]) -> str:
    text = env.get(ENV_BACKEND, "").strip().lower() or DEFAULT_BACKEND
    if text not in BACKENDS:
        raise UserInputError(ENV_BACKEND, f"{text!r} is not a training backend", allowed=" or ".join(BACKENDS))
    return text


def _check_whole(name: str, value: object, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserInputError(
            name, f"{value!r} is not a whole number of at least {low}", allowed=f"a whole number, {low} or more"
        )


def _env_whole(env: Mapping[str, str], name: str, default: int, *, low: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < low:
        raise UserInputError(
            name, f"{text!r} is not a whole number of at least {low}", allowed=f"a whole number, {low} or more"
        )
    return int(text)


def _env_cap(env: Mapping[str, str], name: str, default: Optional[float], *, whole: bool):
    text = env.get(name, "").strip()
    if not text:
        return default
    if text.lower() in NO_LIMIT_WORDS:
        return None
    allowed = f"a {'whole number' if whole else 'number'} above 0, or {' / '.join(NO_LIMIT_WORDS)} for no cap"
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        raise UserInputError(name, f"{text!r} is not a number", allowed=allowed) from None
    if not 0 < value < float("inf"):
        raise UserInputError(name, f"{text!r} is out of range", allowed=allowed)
    return value


def _env_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    allowed = f"a number of seconds above 0, at most {MAX_ACCOUNTANT_SECONDS:g}"
    try:
        value = float(text)
    except ValueError:
        raise UserInputError(name, f"{text[:40]!r} is not a number", allowed=allowed) from None
    if not 0 < value <= MAX_ACCOUNTANT_SECONDS:
        raise UserInputError(name, f"{text[:40]!r} is out of range", allowed=allowed)
    return value


def _data_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if "\x00" in text or not path.is_dir():
        raise UserInputError(ENV_DATA_DIR, f"{text!r} is not a folder", allowed="an existing folder")
    return path.resolve()


def _host_secret(env: Mapping[str, str]) -> Optional[str]:
    secret = env.get(ENV_HOST_SECRET, "")
    file_name = env.get(ENV_HOST_SECRET_FILE, "").strip()
    if secret and file_name:
        raise UserInputError(
            ENV_HOST_SECRET, f"both {ENV_HOST_SECRET} and {ENV_HOST_SECRET_FILE} are set", allowed="one of them"
        )
    if file_name:
        try:
            with open(file_name, encoding="utf-8") as handle:
                secret = handle.readline()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserInputError(
                ENV_HOST_SECRET_FILE,
                f"cannot read {file_name!r}: {exc}",
                allowed="a readable UTF-8 file whose first line is the secret",
            ) from None
        secret = secret.rstrip("\r\n")
        name = ENV_HOST_SECRET_FILE
    else:
        name = ENV_HOST_SECRET
    if not secret:
        return None
    if len(secret) < MIN_HOST_SECRET_CHARS:
        raise UserInputError(
            name,
            f"the host secret has {len(secret)} characters",
            allowed=f"at least {MIN_HOST_SECRET_CHARS} characters",
        )
    return secret
