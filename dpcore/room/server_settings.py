"""The settings of one DP Explorer server, read once from environment variables when it starts.

A workshop runs 20–40 people on one server; these settings bound what any one of them can take
(workers, per-participant limits, compute and wall-time caps, upload quotas, joins per address),
where server files may be read from, and how the instructor's host role is unlocked. Every variable is optional; a bad value is a
``UserInputError`` naming the variable and what it allows, so the server refuses to start rather
than run with a limit nobody asked for.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, overload

from dpcore.data.csv_files import MAX_CSV_BYTES, MAX_ENCODED_VALUES
from dpcore.errors import UserInputError
from dpcore.safe_io import quote

ENV_WORKERS = "DPEXPLORER_WORKERS"
ENV_RAY_ADDRESS = "DPEXPLORER_RAY_ADDRESS"
ENV_BACKEND = "DPEXPLORER_BACKEND"
ENV_ACCOUNTANT_PROCESSES = "DPEXPLORER_ACCOUNTANT_PROCESSES"
ENV_ACCOUNTANT_SECONDS = "DPEXPLORER_ACCOUNTANT_SECONDS"
ENV_MAX_RUNNING = "DPEXPLORER_MAX_RUNNING"
ENV_MAX_QUEUED = "DPEXPLORER_MAX_QUEUED"
ENV_MAX_SWEEP_RUNS = "DPEXPLORER_MAX_SWEEP_RUNS"
ENV_MAX_EXAMPLE_PASSES = "DPEXPLORER_MAX_EXAMPLE_PASSES"
ENV_MAX_RUN_SECONDS = "DPEXPLORER_MAX_RUN_SECONDS"
ENV_DATA_DIR = "DPEXPLORER_DATA_DIR"
ENV_HOST_SECRET = "DPEXPLORER_HOST_SECRET"
ENV_HOST_SECRET_FILE = "DPEXPLORER_HOST_SECRET_FILE"
ENV_ROOM_CODE = "DPEXPLORER_ROOM_CODE"
ENV_UPLOAD_QUOTA_MB = "DPEXPLORER_UPLOAD_QUOTA_MB"
ENV_UPLOADS_TOTAL_MB = "DPEXPLORER_UPLOADS_TOTAL_MB"
ENV_DISK_RESERVE_MB = "DPEXPLORER_DISK_RESERVE_MB"
ENV_JOINS_PER_ADDRESS = "DPEXPLORER_JOINS_PER_ADDRESS"
ENV_JOIN_WINDOW_SECONDS = "DPEXPLORER_JOIN_WINDOW_SECONDS"
ENV_HOST_LOCKOUT_FAILURES = "DPEXPLORER_HOST_LOCKOUT_FAILURES"
ENV_HOST_LOCKOUT_SECONDS = "DPEXPLORER_HOST_LOCKOUT_SECONDS"

# An upload is a CSV file read by the same loader as a file on the server, so the upload limit is
# the CSV reader's limit. .streamlit/config.toml's server.maxUploadSize (in MiB: Streamlit
# multiplies it by 1024 * 1024) must equal it; tests/room/test_server_settings.py compares them.
MAX_UPLOAD_BYTES = MAX_CSV_BYTES
MAX_UPLOAD_MB = MAX_UPLOAD_BYTES // 2**20

# Where a served app's runs train: child processes (dpcore.runs.process_backend, the default, so training
# never competes with the page runs for the server's GIL) or the server's own worker threads.
BACKENDS = ("process", "local")
DEFAULT_BACKEND = "process"

DEFAULT_MAX_RUNNING = 1
DEFAULT_MAX_QUEUED = 3
# A workshop's sweep: 4 noise multipliers × 3 seeds, plus 3 baselines, with room to spare.
DEFAULT_MAX_SWEEP_RUNS = 24
# 100 epochs of Fashion-MNIST's 60,000 training images; digits (1,437) fits 1000 epochs.
DEFAULT_MAX_EXAMPLE_PASSES = 6_000_000
DEFAULT_MAX_RUN_SECONDS = 3600.0
# A host secret is guessed online only (failures are slowed down and locked out, dpcore.room.host_guard),
# yet a workshop's address is public for hours: 16 characters of a random token (about 96 bits) put it
# out of reach of any number of addresses guessing at the lockout's pace.
MIN_HOST_SECRET_CHARS = 16
# A room code is typed by every participant, so it may be short; it only keeps out those not told it.
MAX_ROOM_CODE_CHARS = 64
DEFAULT_UPLOAD_QUOTA_MB = 200
DEFAULT_UPLOADS_TOTAL_MB = 2000
DEFAULT_DISK_RESERVE_MB = 1024
DEFAULT_JOINS_PER_ADDRESS = 10
DEFAULT_JOIN_WINDOW_SECONDS = 600.0
DEFAULT_HOST_LOCKOUT_FAILURES = 10
DEFAULT_HOST_LOCKOUT_SECONDS = 900.0
# Wrong host secrets a session or address may type before each further try waits (1 s, 2 s, 4 s, ...).
HOST_FREE_FAILURES = 3
HOST_FIRST_DELAY_SECONDS = 1.0
# The longest a page's accountant question may take (dpcore.privacy.limits.MAX_QUERY_SECONDS, the
# library's own bound, by default); the most a host may allow is an hour.
DEFAULT_ACCOUNTANT_SECONDS = 30.0
MAX_ACCOUNTANT_SECONDS = 3600.0
# Words that switch a cap off.
NO_LIMIT_WORDS = ("none", "off")


# A Ray cluster's address: "auto" (the cluster this machine belongs to), or host:port, with "ray://"
# for Ray Client. Anything else (an http:// URL, a path, shell syntax) is refused when it is read,
# not when the first run starts (where Ray would fail with an AssertionError).
RAY_ADDRESS_FORMS = "ray://host:port, host:port or auto"
MAX_RAY_ADDRESS_CHARS = 255
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_RAY_ADDRESS = re.compile(rf"(?:ray://)?(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9A-Fa-f:.]+\]):([0-9]{{1,5}})")


def check_ray_address(
    address: object, *, field: str = "ray_address", error: type[UserInputError] = UserInputError
) -> str:
    """``address`` without surrounding spaces if it has the form of a Ray address (``RAY_ADDRESS_FORMS``),
    port 1 to 65535; else ``error`` naming ``field``. Whether a cluster answers there is Ray's to find."""
    text = address.strip() if isinstance(address, str) else address
    if not isinstance(text, str) or not text:
        raise error(field, f"{quote(address)} is not a Ray address", allowed=RAY_ADDRESS_FORMS)
    if text == "auto":
        return text
    match = _RAY_ADDRESS.fullmatch(text) if len(text) <= MAX_RAY_ADDRESS_CHARS else None
    if match is None or not 1 <= int(match.group(1)) <= 65535:
        raise error(field, f"{quote(text)} is not a Ray address", allowed=RAY_ADDRESS_FORMS)
    return text


def upload_limit_text() -> str:
    """What the upload box says about its limit (Streamlit's own uploader shows the same MB figure)."""
    return f"CSV files up to {MAX_UPLOAD_MB} MB each."


@dataclass(frozen=True)
class RunLimits:
    """What one participant's runs may take; the host can change them while the server runs.

    ``max_running``: runs of one participant training at once ($DPEXPLORER_MAX_RUNNING, default 1).
    ``max_queued``: runs of one participant waiting for a worker ($DPEXPLORER_MAX_QUEUED, default 3).
    A sweep counts once in these two, however many runs it holds: its runs wait their turn inside it.
    ``max_sweep_runs``: runs one sweep may hold ($DPEXPLORER_MAX_SWEEP_RUNS, default 24).
    ``max_example_passes``: the compute cap of one run, training examples × epochs
    ($DPEXPLORER_MAX_EXAMPLE_PASSES, default 6,000,000; "none" for no cap).
    ``max_run_seconds``: the wall time after which a running run is stopped, keeping its finished
    epochs ($DPEXPLORER_MAX_RUN_SECONDS, default 3600; "none" for no cap).
    """

    max_running: int = DEFAULT_MAX_RUNNING
    max_queued: int = DEFAULT_MAX_QUEUED
    max_sweep_runs: int = DEFAULT_MAX_SWEEP_RUNS
    max_example_passes: Optional[int] = DEFAULT_MAX_EXAMPLE_PASSES
    max_run_seconds: Optional[float] = DEFAULT_MAX_RUN_SECONDS

    def __post_init__(self) -> None:
        _check_whole("max_running", self.max_running, low=1)
        _check_whole("max_queued", self.max_queued, low=0)
        _check_whole("max_sweep_runs", self.max_sweep_runs, low=1)
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
class RoomLimits:
    """What one person (or one address) may take of a shared server outside training; fixed at start-up.

    ``upload_quota_bytes``: all uploads of one participant together ($DPEXPLORER_UPLOAD_QUOTA_MB,
    default 200 MiB). ``uploads_total_bytes``: every upload on the server together
    ($DPEXPLORER_UPLOADS_TOTAL_MB, default 2000 MiB). ``disk_reserve_bytes``: free disk an upload
    must leave for the run store ($DPEXPLORER_DISK_RESERVE_MB, default 1024 MiB).
    ``joins_per_address``: names registered from one network address within ``join_window_seconds``
    ($DPEXPLORER_JOINS_PER_ADDRESS, default 10; $DPEXPLORER_JOIN_WINDOW_SECONDS, default 600).
    ``host_lockout_failures``: wrong host secrets in a row from one session or address before it is
    locked out for ``host_lockout_seconds`` ($DPEXPLORER_HOST_LOCKOUT_FAILURES, default 10;
    $DPEXPLORER_HOST_LOCKOUT_SECONDS, default 900).
    """

    upload_quota_bytes: int = DEFAULT_UPLOAD_QUOTA_MB * 2**20
    uploads_total_bytes: int = DEFAULT_UPLOADS_TOTAL_MB * 2**20
    disk_reserve_bytes: int = DEFAULT_DISK_RESERVE_MB * 2**20
    joins_per_address: int = DEFAULT_JOINS_PER_ADDRESS
    join_window_seconds: float = DEFAULT_JOIN_WINDOW_SECONDS
    host_lockout_failures: int = DEFAULT_HOST_LOCKOUT_FAILURES
    host_lockout_seconds: float = DEFAULT_HOST_LOCKOUT_SECONDS

    def __post_init__(self) -> None:
        _check_whole("upload_quota_bytes", self.upload_quota_bytes, low=1)
        _check_whole("uploads_total_bytes", self.uploads_total_bytes, low=1)
        _check_whole("disk_reserve_bytes", self.disk_reserve_bytes, low=0)
        _check_whole("joins_per_address", self.joins_per_address, low=1)
        _check_whole("host_lockout_failures", self.host_lockout_failures, low=1)
        for name in ("join_window_seconds", "host_lockout_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise UserInputError(name, f"{value!r} is not a positive number of seconds", allowed="seconds above 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RoomLimits:
        """The room limits the environment variables describe (defaults for those unset)."""
        mib = 2**20
        return cls(
            upload_quota_bytes=_env_whole(env, ENV_UPLOAD_QUOTA_MB, DEFAULT_UPLOAD_QUOTA_MB, low=1) * mib,
            uploads_total_bytes=_env_whole(env, ENV_UPLOADS_TOTAL_MB, DEFAULT_UPLOADS_TOTAL_MB, low=1) * mib,
            disk_reserve_bytes=_env_whole(env, ENV_DISK_RESERVE_MB, DEFAULT_DISK_RESERVE_MB, low=0) * mib,
            joins_per_address=_env_whole(env, ENV_JOINS_PER_ADDRESS, DEFAULT_JOINS_PER_ADDRESS, low=1),
            join_window_seconds=_env_seconds(env, ENV_JOIN_WINDOW_SECONDS, DEFAULT_JOIN_WINDOW_SECONDS),
            host_lockout_failures=_env_whole(env, ENV_HOST_LOCKOUT_FAILURES, DEFAULT_HOST_LOCKOUT_FAILURES, low=1),
            host_lockout_seconds=_env_seconds(env, ENV_HOST_LOCKOUT_SECONDS, DEFAULT_HOST_LOCKOUT_SECONDS),
        )


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
    ``ray_address``: a Ray cluster to train on ($DPEXPLORER_RAY_ADDRESS: ray://host:port, host:port or
    "auto", checked by ``check_ray_address`` when read); it takes precedence over ``backend``.
    ``accountant_processes``: processes that answer the pages' accountant questions, kept waiting
    between them; twice as many may compute at once ($DPEXPLORER_ACCOUNTANT_PROCESSES, default the
    machine's cores; 0: in the server process, without a deadline).
    ``accountant_seconds``: the longest one accountant question of a page may take, a sweep's preview
    or a calibration included: one estimated to take longer is refused before it starts, and one
    still running then is stopped ($DPEXPLORER_ACCOUNTANT_SECONDS, default 30).
    ``backend``: where runs train without Ray ($DPEXPLORER_BACKEND, one of BACKENDS): "process" (the
    default) in long-lived, lower-priority child processes; "local" in the server's worker threads.
    ``room``: quotas of uploads, joins and host-secret tries (``RoomLimits``).
    ``room_code``: a code every participant must type to join ($DPEXPLORER_ROOM_CODE; None: joining
    needs none). The host can set another while the server runs (``dpcore.room.joins``).
    The upload limit is ``MAX_UPLOAD_BYTES``, fixed because .streamlit/config.toml must agree with it;
    the encoded size of a CSV is ``max_encoded_values``, fixed in the data room that checks it.
    """

    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    limits: RunLimits = field(default_factory=RunLimits)
    data_dir: Optional[Path] = None
    host_secret: Optional[str] = field(default=None, repr=False)
    ray_address: Optional[str] = None
    backend: str = DEFAULT_BACKEND
    accountant_processes: int = field(default_factory=lambda: os.cpu_count() or 1)
    room: RoomLimits = field(default_factory=RoomLimits)
    room_code: Optional[str] = field(default=None, repr=False)
    accountant_seconds: float = DEFAULT_ACCOUNTANT_SECONDS

    def __post_init__(self) -> None:
        _check_whole("workers", self.workers, low=1)
        if self.room_code is not None:
            check_room_code(self.room_code, name="room_code")
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
        if self.ray_address is not None:
            object.__setattr__(self, "ray_address", check_ray_address(self.ray_address))
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
    def max_encoded_values(self) -> int:
        """The most feature values a CSV may encode to, rows × input width (``csv_files.MAX_ENCODED_VALUES``),
        checked wherever a CSV is read, this server's processes and a CLI alike."""
        return MAX_ENCODED_VALUES

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
            max_sweep_runs=_env_whole(env, ENV_MAX_SWEEP_RUNS, defaults.max_sweep_runs, low=1),
            max_example_passes=_env_cap(env, ENV_MAX_EXAMPLE_PASSES, defaults.max_example_passes, whole=True),
            max_run_seconds=_env_cap(env, ENV_MAX_RUN_SECONDS, defaults.max_run_seconds, whole=False),
        )
        data_dir_text = env.get(ENV_DATA_DIR, "").strip()
        return cls(
            workers=_env_whole(env, ENV_WORKERS, os.cpu_count() or 1, low=1),
            limits=limits,
            data_dir=_data_dir(data_dir_text) if data_dir_text else None,
            host_secret=_host_secret(env),
            ray_address=_env_ray_address(env),
            backend=_env_backend(env),
            accountant_processes=_env_whole(env, ENV_ACCOUNTANT_PROCESSES, os.cpu_count() or 1, low=0),
            room=RoomLimits.from_env(env),
            room_code=check_room_code(env[ENV_ROOM_CODE], name=ENV_ROOM_CODE) if env.get(ENV_ROOM_CODE) else None,
            accountant_seconds=_env_seconds(
                env, ENV_ACCOUNTANT_SECONDS, DEFAULT_ACCOUNTANT_SECONDS, maximum=MAX_ACCOUNTANT_SECONDS
            ),
        )


def check_room_code(code: object, *, name: str) -> str:
    """``code`` if it can be a room code (1 to 64 printable characters, no spaces around); a UserInputError naming ``name`` otherwise."""
    allowed = f"1 to {MAX_ROOM_CODE_CHARS} printable characters without spaces around them"
    if not isinstance(code, str) or not code or code != code.strip():
        raise UserInputError(name, "the room code is empty or has spaces around it", allowed=allowed)
    if len(code) > MAX_ROOM_CODE_CHARS or not code.isprintable():
        raise UserInputError(name, f"the room code has {len(code)} characters or unprintable ones", allowed=allowed)
    return code


def _env_ray_address(env: Mapping[str, str]) -> Optional[str]:
    text = env.get(ENV_RAY_ADDRESS, "").strip()
    return check_ray_address(text, field=ENV_RAY_ADDRESS) if text else None


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


@overload
def _env_cap(env: Mapping[str, str], name: str, default: Optional[int], *, whole: Literal[True]) -> Optional[int]: ...


@overload
def _env_cap(
    env: Mapping[str, str], name: str, default: Optional[float], *, whole: Literal[False]
) -> Optional[float]: ...


def _env_cap(env: Mapping[str, str], name: str, default: Optional[float], *, whole: bool) -> Optional[float]:
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


def _env_seconds(env: Mapping[str, str], name: str, default: float, *, maximum: float = float("inf")) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    allowed = "a number of seconds above 0" + (f", at most {maximum:g}" if maximum < float("inf") else "")
    try:
        value = float(text)
    except ValueError:
        raise UserInputError(name, f"{text[:40]!r} is not a number", allowed=allowed) from None
    if not 0 < value <= maximum or value == float("inf"):
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
            allowed=f"at least {MIN_HOST_SECRET_CHARS} characters, e.g. from "
            "python -c 'import secrets; print(secrets.token_urlsafe(16))'",
        )
    return secret
