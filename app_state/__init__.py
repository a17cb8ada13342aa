"""What the app's pages share, behind one API: the current config, notices, this session's runs, the store.

Pages read and change shared state only through these functions; the session-state keys below are
spelled nowhere else (tests may read them).
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, TypeVar

import pandas as pd
import streamlit as st
from streamlit import runtime
from streamlit.runtime.runtime import RuntimeState
from streamlit.runtime.scriptrunner import get_script_run_ctx

from app_state import csv_drafts
from dpcore.audit.report import AUDIT_NOTE
from dpcore.child_calls import CallAbandoned, CallTimedOut, ChildCalls
from dpcore.config import ACCOUNTANT_TITLES, MAX_BATCH_SIZE, MAX_CLIP, MAX_EPOCHS, MAX_NOISE, DPConfig
from dpcore.data import datasets
from dpcore.data.types import DatasetInfo
from dpcore.errors import UserInputError, describe_exception
from dpcore.export import share
from dpcore.export.files import ExportFile, file_name
from dpcore.privacy import accounting, calibration
from dpcore.privacy.accounting import EpsilonReport, EpsilonSplit
from dpcore.privacy.calibration import Calibration
from dpcore.results import (
    TEST_METRICS_LABEL,
    TRAIN_ACCURACY_TITLE,
    TRAIN_LOSS_TITLE,
    TRAIN_METRICS_LABEL,
    TRAIN_METRICS_NOTE,
)
from dpcore.room import host_guard, joins, participants, presence, server_paths, uploads
from dpcore.room.participants import TOKEN_PARAM, Caller, Participant
from dpcore.room.server_settings import ENV_ACCOUNTANT_SECONDS, ServerSettings
from dpcore.runs import owners, room_status, sweeps, warm_start
from dpcore.runs.capacity import check_sweep_size
from dpcore.runs.comparison import (
    AUDIT_AUC_COLUMN,
    AUDIT_BOUND_COLUMN,
    RUN_TABLE_FORMATS,
    TEST_SPREAD_COLUMN,
    DatasetChoice,
    run_rows,
)
from dpcore.runs.job_state import JobSnapshot
from dpcore.runs.jobs import CancelReport, JobRunner, get_runner
from dpcore.runs.records import RunRecord, SweepRecord
from dpcore.runs.run_table import ACCURACY_SPREAD_NOTE
from dpcore.runs.store import RunStore
from dpcore.runs.warm_start import WarmStart
from dpcore.safe_io import quote

CONFIG_KEY = "dpx_config"
OWNER_KEY = "dpx_owner"  # the participant's owner id, once they have typed a display name
NAME_KEY = "dpx_name"  # their display name
TOKEN_KEY = "dpx_token"  # their token, put back into the URL when a page switch drops the query string
JOINED_AT_KEY = "dpx_joined_at"  # when this participant joined (Unix seconds), read once from the store
BOARD_SEEN_KEY = "dpx_board_seen"  # the board clear this session was told of (Unix seconds)
PROBLEM_KEY = "dpx_input_problem"  # why the current settings cannot train (a failed upload, a refused value)
NOTICE_KEY = "dpx_notice"  # a success message for the next render, e.g. from a button callback
ERROR_KEY = "dpx_error"  # a problem for the next render, e.g. a bad share link
ROOM_NOTICE_KEY = "dpx_room_notice"  # news from the host for the next render, e.g. the board was cleared
PAGE_ASKS_NAME_KEY = "dpx_page_asks_name"  # True while this render's page shows its own name box
EXPORTS_KEY = "dpx_exports"  # files made on request (a privacy report, a model), the latest of each kind
# Explore's widget keys: dropped whenever the config is replaced, so the widgets re-read it.
WIDGET_PREFIX = "w_"
PAGE_PATHS = ("explore", "train", "sweep", "compare", "export", "learn")
# How long a room-wide cancel waits for training runs to stop, so its report says how each really ended.
ROOM_ACTION_WAIT_SECONDS = 10.0

# Each participant's current config, kept in this server process, so a reload (which starts a new
# browser session with the same ``?me=`` token) finds the settings they left. Lost when the server stops.
_SAVED_CONFIGS: dict[str, DPConfig] = {}
_SAVED_LOCK = threading.Lock()
# Wrong host secrets of every session and address, kept by this server process.
_HOST_GUARD = host_guard.HostGuard()
# Joins per address, the host's room code and the names the host removed, kept by this server process.
_JOIN_GUARD = joins.JoinGuard()
# Each participant's latest page load and the latest clear of the board, kept by this server process.
_PRESENCE = presence.RoomPresence()


class PageDone(Exception):
    """A page has shown all it can (say, after an error message); app.py catches it and goes on."""


def finish_page() -> NoReturn:
    """End the current page early; unlike st.stop(), the shared sidebar is still drawn."""
    raise PageDone


def runner() -> JobRunner:
    """The process-wide job runner (``jobs.get_runner``: one per server, shared by all browser sessions)."""
    return get_runner()


_WARM_LOCK = threading.Lock()
_warm_start: Optional[WarmStart] = None


def warm_server() -> WarmStart:
    """Warm this server once per process (``dpcore.runs.warm_start``): the job runner with its training
    processes, the accountant and the default dataset, in the background; later calls return the same
    warming. ``serve.py`` calls it as the server starts, before any page runs: warming beside page runs
    would have its first imports race theirs across threads.

    The charts' Plotly, which every page's first run would pay for, is imported here, before the thread.
    """
    global _warm_start
    with _WARM_LOCK:
        if _warm_start is None:
            import dpcore.views.charts  # noqa: F401 - imported for its import time only

            _warm_start = warm_start.begin(start_runner=_start_runner, ask=_ask_to_warm)
        return _warm_start


def _ask_to_warm(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """An accountant question asked as the pages ask it (the accountant processes, whose kept answers the
    first visitor then finds), without a page: no status line, no visitor to leave."""
    calls = _accountant_calls()
    if calls is None:
        return function(*args, **kwargs)

    def timed_out(seconds: float) -> UserInputError:
        return CallTimedOut("accountant", f"warming took more than {seconds:g} s")

    return calls.call(
        function, *args, deadline_seconds=settings().accountant_seconds, timeout_error=timed_out, **kwargs
    )


def _start_runner() -> None:
    runner().prepare()  # the training processes start (and warm up) now, not at the first run


def store() -> RunStore:
    """The run store the runner writes to."""
    return runner().store


def settings() -> ServerSettings:
    """The server's settings (``ServerSettings.from_env``; a bad variable raises its UserInputError).

    Read on each call (a few environment look-ups), so the data folder and host secret are the
    environment's; the runner took its workers and limits once, when it started.
    """
    return ServerSettings.from_env()


def init_session() -> None:
    """Find this browser's participant from the ``?me=`` token, restore their config, then any share link's config.

    A share link's config wins over the saved one; the token stays in the URL (share links ignore it).
    """
    st.session_state.pop(PAGE_ASKS_NAME_KEY, None)  # a page asks for the name afresh on each render
    params = st.query_params.to_dict()
    token = params.get(TOKEN_PARAM)
    _forget_if_removed()
    if OWNER_KEY not in st.session_state and token:
        try:
            found = participants.find(store(), participants.check_token(token))
        except UserInputError as exc:
            found = None
            post_error(f"This link's participant could not be found ({exc}); type your name again.")
        if found is None:
            if TOKEN_PARAM in st.query_params:
                del st.query_params[TOKEN_PARAM]
            if ERROR_KEY not in st.session_state:
                post_error("This link's participant is not known to this server; type your name again.")
        else:
            _join(found, token)
    if TOKEN_KEY in st.session_state and st.query_params.get(TOKEN_PARAM) != st.session_state[TOKEN_KEY]:
        st.query_params[TOKEN_PARAM] = st.session_state[TOKEN_KEY]  # switching pages drops the query string
    if CONFIG_KEY not in st.session_state:
        with _SAVED_LOCK:
            saved = _SAVED_CONFIGS.get(st.session_state.get(OWNER_KEY, ""))
        st.session_state[CONFIG_KEY] = saved if saved is not None else DPConfig()
    if share.is_shared(params):
        try:
            link = share.decode_link(params)
            restored, wanted = restore_paths(link.config)
            set_config(restored)
            ignored = f" Ignored: {', '.join(link.ignored)} (not config settings)." if link.ignored else ""
            if out_of_range(link.config):  # Explore lists them; the config is not "restored" until it can be shown
                post_error(
                    "The share link's settings were read, but some are outside what the controls allow." + ignored
                )
            elif wanted:
                post_notice(
                    f"Settings restored from the share link; a link carries no data, so upload {wanted} "
                    "on Explore to train." + ignored
                )
            else:
                post_notice("Config restored from the share link." + ignored)
        except UserInputError as exc:
            post_error(f"The share link holds a bad config: {exc}")
        for name in list(st.query_params):
            if name != TOKEN_PARAM:
                del st.query_params[name]
    _PRESENCE.seen(owner())
    _tell_of_a_cleared_board()


def _joined_at() -> Optional[float]:
    """When this participant joined (Unix seconds; None before they did), read from the store once per session."""
    if not owner():
        return None
    if st.session_state.get(JOINED_AT_KEY, (None,))[0] != owner():
        joined_at = next((when for who, _, when in store().list_participants() if who == owner()), None)
        st.session_state[JOINED_AT_KEY] = (owner(), joined_at)
    return st.session_state[JOINED_AT_KEY][1]


def _tell_of_a_cleared_board() -> None:
    """Once per session, tell a participant who joined before the host's latest "Clear the board" that
    their runs and uploads were removed (the host who cleared it was told in the panel)."""
    joined_at = _joined_at()
    cleared = None if joined_at is None else _PRESENCE.cleared_since(joined_at)
    if cleared is None or st.session_state.get(BOARD_SEEN_KEY) == cleared:
        return
    st.session_state[BOARD_SEEN_KEY] = cleared
    st.session_state[ROOM_NOTICE_KEY] = (
        f"The host cleared the board at {_clock(cleared)}: your runs and uploaded files were removed. "
        "Your settings are kept; if they named an uploaded CSV file, upload it again."
    )


def _clock(when: float) -> str:
    """A time of day on the server's clock, HH:MM."""
    return time.strftime("%H:%M", time.localtime(when))


def _forget_if_removed() -> None:
    """Drop this session's name if the host removed it (its token no longer finds anyone either)."""
    held = st.session_state.get(OWNER_KEY)
    if not held or not _JOIN_GUARD.is_removed(held):
        return
    name = st.session_state.get(NAME_KEY, "")
    for key in (OWNER_KEY, NAME_KEY, TOKEN_KEY):
        st.session_state.pop(key, None)
    if TOKEN_PARAM in st.query_params:
        del st.query_params[TOKEN_PARAM]
    post_error(f"The host removed the name {name} from this room; type a name to join again.")


def _join(participant: Participant, token: str) -> None:
    st.session_state[OWNER_KEY] = participant.owner
    st.session_state[NAME_KEY] = participant.display_name
    st.session_state[TOKEN_KEY] = token


def join(display_name: str, *, room_code: str = "") -> Participant:
    """Register this browser as a participant named ``display_name`` and keep their token in the URL (``?me=``).

    Checked on the server: one name per browser session, the room code if the room has one, and the
    names per address and window (``joins.JoinGuard.admit``); each refusal is a UserInputError.
    """
    if joined():
        raise UserInputError(
            "display_name",
            f"this browser tab has already joined as {st.session_state.get(NAME_KEY, '')}",
            allowed="one name per tab",
        )
    name = participants.validate_display_name(display_name)
    _JOIN_GUARD.admit(address=client_address(), code=room_code, settings=settings())
    participant, token = participants.register(store(), name)
    _join(participant, token)
    st.query_params[TOKEN_PARAM] = token
    _save_config(config())
    return participant


def joined() -> bool:
    """Whether this browser has a participant (typed a display name), so it can upload and train."""
    return bool(owner())


def owner() -> str:
    """This participant's owner id ("" before they typed a name, or once the host removed it); their
    runs and uploads carry it."""
    held = st.session_state.get(OWNER_KEY, "")
    return "" if held and _JOIN_GUARD.is_removed(held) else held


def room_code_required() -> bool:
    """Whether joining needs the room code (set by DPEXPLORER_ROOM_CODE or by the host)."""
    return _JOIN_GUARD.room_code(settings()) is not None


def display_name() -> str:
    """The name this participant typed ("" before they did)."""
    return st.session_state.get(NAME_KEY, "")


def is_host() -> bool:
    """Whether this participant unlocked the host role with the server's host secret, in this tab or another
    of theirs (``host_guard.HostGuard.is_host``: kept by this server until they give it up or it stops)."""
    return _HOST_GUARD.is_host(owner())


def caller() -> Caller:
    """Who this session acts as when it renames, deletes or cancels a run, or names a file."""
    return Caller(owner=owner(), is_host=is_host())


def session_id() -> str:
    """This browser session's id (one per open tab or connection), for the limits kept per session."""
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "none"


def client_address() -> str:
    """The network address this session connects from (its TCP peer); one shared name for every
    connection from the server's own machine, a reverse proxy included."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "this machine"


def unlock_host(secret: str) -> None:
    """Make this participant the host if ``secret`` is the server's host secret (refused before they joined);
    wrong secrets are slowed down, locked out and logged per session and address (``host_guard.HostGuard``),
    refused with a NotAllowedError. A reload with the same ``?me=`` token is still the host."""
    _HOST_GUARD.unlock(
        owner=owner(), secret=secret, settings=settings(), session=session_id(), address=client_address()
    )


def lock_host() -> None:
    """Give up the host role, in every tab of this participant's."""
    _HOST_GUARD.release(owner())


def check_paths(cfg: DPConfig) -> DPConfig:
    """``cfg`` with its CSV path checked for this caller (``server_paths.check_server_path``): their uploads, or the data folder."""
    if cfg.csv_path:
        _check_upload_still_there(cfg.csv_path)
    return server_paths.check_server_path(cfg, settings(), caller=caller(), uploads_directory=uploads.uploads_dir())


def restore_paths(cfg: DPConfig) -> tuple[DPConfig, str]:
    """``cfg`` from a link or a file, with its CSV file found for this caller, and the name of a file to ask for.

    A link or an exported config names its CSV file by the file's own name (``share.share_url``): it
    is this caller's upload of that name when exactly one has it, or a file under the data folder;
    otherwise every other setting is kept and the file's name is returned, for Explore to ask for it.
    """
    if cfg.csv_path is None:
        return cfg, ""
    try:
        return check_paths(cfg), ""
    except UserInputError:
        name = file_name(cfg.csv_path)
    own = uploads.find_upload(name, owner=owner(), directory=uploads.uploads_dir()) if joined() else None
    if own is not None:
        return cfg.replace(csv_path=str(own)), ""
    return cfg.replace(csv_path=name), name


def wanted_file(path: Optional[str]) -> str:
    """The file name a restored config asks for (a bare name this caller cannot read as a path), else ""."""
    if not path or file_name(path) != path:
        return ""
    try:
        check_csv_path(path)
    except UserInputError:
        return path
    return ""


def check_csv_path(path: str) -> str:
    """A CSV path typed or uploaded on Explore, resolved, if this caller may read it (``server_paths.check_csv_path``)."""
    _check_upload_still_there(path)
    return server_paths.check_csv_path(path, settings(), caller=caller(), uploads_directory=uploads.uploads_dir())


def _check_upload_still_there(path: str) -> None:
    """A plain UserInputError, by the file's name, for an upload of this caller's that is gone (the host
    cleared the board, or removed it), instead of a missing server path."""
    directory = uploads.uploads_dir()
    if uploads.upload_owner(path, directory=directory) is None or Path(path).exists():
        return
    if not uploads.may_use(path, caller(), directory=directory):
        return  # another participant's: the path check refuses it without naming it
    joined_at = _joined_at()
    cleared = None if joined_at is None else _PRESENCE.cleared_since(joined_at)
    why = f"the host cleared the board at {_clock(cleared)}" if cleared is not None else "it was removed"
    raise UserInputError(
        "csv_path",
        f"your uploaded file {shown_file(path)} is no longer on this server ({why})",
        allowed="upload the file again",
    )


def server_files_enabled() -> bool:
    """Whether the "CSV file on the server" box is on (DPEXPLORER_DATA_DIR is set)."""
    return server_paths.server_files_enabled(settings())


def shown_file(path: Optional[str]) -> str:
    """The CSV file name this caller may see for ``path`` ("" for none); another participant's upload stays unnamed."""
    if not path:
        return ""
    return uploads.shown_name(path, caller(), directory=uploads.uploads_dir())


def is_upload(path: Optional[str]) -> bool:
    """Whether ``path`` is a file kept by an upload (shown by its own name, never by its path)."""
    return bool(path) and uploads.upload_owner(str(path), directory=uploads.uploads_dir()) is not None


def dataset_title(choice: DatasetChoice) -> str:
    """How Compare and Learn name a dataset the runs trained on: a built-in's name, or the CSV file (as this
    caller may see it) with its label column."""
    if choice.dataset != "csv":
        return choice.dataset
    return f"{shown_file(choice.csv_path)} → {choice.csv_label}"


def may_see_file(path: Optional[str]) -> bool:
    """Whether this caller may see ``path`` in full: no file, a data-folder file, or an upload of theirs (or any, for the host)."""
    directory = uploads.uploads_dir()
    return (
        not path
        or uploads.upload_owner(path, directory=directory) is None
        or uploads.may_use(path, caller(), directory=directory)
    )


@dataclass(frozen=True)
class Upload:
    """A file held by an upload widget: the name the browser gave it and its bytes."""

    name: str
    raw: bytes


def uploaded_file(key: str, *, field: str) -> Optional[Upload]:
    """The file upload widget ``key`` holds (None when it holds none).

    A widget value naming a file this server does not hold (forged, or an upload that has expired)
    is a UserInputError naming ``field``, one message instead of a traceback in the sender's session.
    """
    upload = st.session_state.get(key)
    if upload is None:
        return None
    name, getvalue = getattr(upload, "name", None), getattr(upload, "getvalue", None)
    if not isinstance(name, str) or not callable(getvalue):
        raise UserInputError(
            field, "this server does not hold the uploaded file (it may have expired)", allowed="upload the file again"
        )
    return Upload(name=name, raw=getvalue())


def max_chars(limit: int) -> int:
    """The ``max_chars`` of a text box whose text the library allows up to ``limit`` characters: one more.

    Streamlit cuts a longer value to ``max_chars`` on the server (a browser never sends more), so a text
    of ``limit + 1`` reaches the library's check and is refused with its message instead of being cut.
    """
    return limit + 1


def choice(value: Any, options: Sequence[Any], *, field: str) -> Any:
    """``value`` if it is one of ``options``: a selection widget's value, checked on the server because a
    client can send any value for it (the browser offers only the options)."""
    if value not in options:
        raise UserInputError(
            field, f"{quote(value)} is not one of the choices", allowed=", ".join(map(str, options))[:200]
        )
    return value


def save_upload(raw: bytes, *, name: str) -> Path:
    """Keep an uploaded CSV as this participant's (``uploads.save_csv`` with their owner id, within the
    room's quotas and disk reserve); refused before they joined, whatever the browser sent."""
    return uploads.save_csv(raw, name=name, owner=owner(), directory=uploads.uploads_dir(), limits=settings().room)


def set_input_problem(text: Optional[str]) -> None:
    """Record why the current settings cannot train (None: they can); Train refuses to start while one is set."""
    if text:
        st.session_state[PROBLEM_KEY] = text
    else:
        st.session_state.pop(PROBLEM_KEY, None)


def input_problem() -> Optional[str]:
    """The problem Explore found with the current settings, if any (a failed upload, a value out of range)."""
    return st.session_state.get(PROBLEM_KEY)


def _save_config(cfg: DPConfig) -> None:
    if owner():
        with _SAVED_LOCK:
            _SAVED_CONFIGS[owner()] = cfg


def config() -> DPConfig:
    """The current config (the one the Explore page's widgets show)."""
    return st.session_state[CONFIG_KEY]


def set_config(new: DPConfig, *, reset_widgets: bool = True) -> None:
    """Replace the current config; Explore's widgets pick it up on their next render.

    ``reset_widgets=False`` is for the config Explore's widgets have just produced themselves.
    """
    st.session_state[CONFIG_KEY] = new
    _save_config(new)
    if new.dataset != "csv" and csv_drafts.kept(owner()).active:
        csv_drafts.keep(owner(), active=False)  # Explore opens on the config's dataset again after a reload
    if reset_widgets:
        for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(WIDGET_PREFIX)]:
            del st.session_state[key]


def seed_widget(key: str, value: Any) -> None:
    """Give a widget its starting value (from the config) the first time it renders, and after
    ``set_config`` reset the widgets; later renders keep what the person set."""
    if key not in st.session_state:
        st.session_state[key] = value


def update_config(**changes: Any) -> DPConfig:
    """Change some fields of the current config (validated) and return the new one."""
    new = config().replace(**changes)
    set_config(new)
    return new


# What each number entry accepts: field -> (label, lowest, highest). The entries themselves take any
# number, so that a value typed outside these bounds is refused here with a message (a browser
# would otherwise keep the old value beside a new-looking entry); a config from a link, a file or a
# run with a value outside them is reported the same way. Nothing is clamped.
ENTRY_RANGES: dict[str, tuple[str, Any, Any]] = {
    "noise_multiplier": ("Noise multiplier", 0.001, MAX_NOISE),
    "l2_norm_clip": ("Clip norm", 0.001, MAX_CLIP),
    "batch_size": ("Batch size", 1, MAX_BATCH_SIZE),
    "epochs": ("Epochs", 1, MAX_EPOCHS),
    "learning_rate": ("Learning rate", 1e-6, 100.0),
    "delta": ("δ (delta)", 1e-15, 0.5),
    "momentum": ("Momentum", 0.0, 0.999),
    "seed": ("Seed", 0, 2**31 - 1),
    "max_train_examples": ("Use at most this many training examples", 0, 10**9),
}


def out_of_range(cfg: DPConfig) -> list[str]:
    """One line per value of ``cfg`` that its number entry cannot hold, naming the value and the range."""
    problems: list[str] = []
    for field, (label, lo, hi) in ENTRY_RANGES.items():
        if field == "momentum" and cfg.optimizer != "momentum":
            continue  # not used, and not shown
        if (not cfg.private) and field == "noise_multiplier":
            continue  # a baseline carries no noise; Explore offers to make it private
        value = getattr(cfg, field)
        if value is None:
            continue
        if not lo <= value <= hi:
            problems.append(f"{label} = {value:g} (allowed {lo:g} to {hi:g})")
    return problems


def check_store() -> None:
    """Once per page run: look again at a damaged or unwritable store and put it right after failed
    writes (``JobRunner.check_store``), so a store put back in order is used without a restart."""
    runner().check_store()


def store_banner() -> None:
    """A warning at the top of every page while the run store is damaged, cannot be written or stopped
    taking writes: what is wrong, and that exploring still works."""
    current = store()
    if current.damage:
        st.warning(
            f"The run store is damaged, so new runs cannot be saved: {current.damage}. Exploring ε works; "
            "Compare shows the runs that can still be read. Each page looks at the store again when it loads."
        )
    elif current.unwritable:
        st.warning(
            f"The run store cannot be written, so runs cannot start: {current.unwritable}. Exploring ε "
            "works and Compare lists the stored runs. Each page looks at the store again when it loads."
        )
    elif runner().store_failure:
        st.warning(
            f"The run store stopped taking writes: {runner().store_failure}. Runs that were waiting were "
            "cancelled; their state is written once the store takes writes again."
        )


def post_notice(text: str) -> None:
    """Say ``text`` once, as a success message above the next render of any page (one message, no toast beside it)."""
    st.session_state[NOTICE_KEY] = text


def post_error(text: str) -> None:
    """Show ``text`` once, as an error, on the next render of any page."""
    st.session_state[ERROR_KEY] = text


def show_notices() -> None:
    """Messages posted by callbacks and link restores, shown once."""
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.success(notice)
    problem = st.session_state.pop(ERROR_KEY, None)
    if problem:
        st.error(problem)
    news = st.session_state.pop(ROOM_NOTICE_KEY, None)
    if news:
        st.warning(news, icon=":material/campaign:")


def my_runs() -> list[JobSnapshot]:
    """This participant's runs (queued, training or ended), in submission order; none before they joined.

    Runs of theirs from before a server restart come from the store (``JobSnapshot.from_record``).
    """
    if not owner():
        return []
    live = runner().list_jobs(owner=owner())
    known = {job.id for job in live}
    older = [JobSnapshot.from_record(r) for r in store().list_runs(owner=owner()) if r.id not in known]
    return sorted(older + live, key=lambda job: job.id)


def submit_run(cfg: DPConfig, *, name: str = "", audit: bool = False) -> int:
    """Queue ``cfg`` for training as this participant's run (its CSV path checked first; ``audit``: audit
    its model when it ends); returns its id.

    Refused (UserInputError) before they have a name, and with the runner's CapacityError over a limit.
    """
    participants.check_participant(owner(), action="runs")
    checked = check_paths(cfg)
    if checked.private:  # the run's per-epoch ε must be within the accountant's bounds before it queues
        ask_accountant(accounting.check_config, checked, n=rows_trained(checked), what="this run's ε")
    return runner().submit(checked, owner=owner(), name=name, audit=audit)


def may_manage(run_owner: str) -> bool:
    """Whether this caller may rename, delete or cancel a run owned by ``run_owner`` (their own; the host every run)."""
    return caller().may_manage(run_owner)


def rename_run(run_id: int, name: str) -> None:
    """Rename a run, as this caller (a NotAllowedError for another participant's run)."""
    store().rename_run(run_id, name, by=caller())


def delete_run(run_id: int) -> None:
    """Delete a run as this caller (a NotAllowedError for another participant's run) and drop it from the runner's list."""
    store().delete_run(run_id, by=caller())
    runner().forget([run_id])


def cancel_run(job_id: int) -> None:
    """Cancel a queued or training run, as this caller."""
    try:
        runner().cancel(job_id, by=caller())
    except UserInputError as exc:
        post_error(str(exc))


@dataclass(frozen=True)
class MadeExport:
    """Files made on request for this session: what they are of (``source``), the files, the Markdown report
    to read on the page (a report's), or why nothing was made (``error``, one line naming the field)."""

    source: str
    files: tuple[ExportFile, ...] = ()
    preview: str = ""
    error: Optional[str] = None


def export_source(run_id: Optional[int]) -> str:
    """What an export is of: one stored run, or the current config as it is now (None)."""
    if run_id is not None:
        return f"run {run_id}"
    return "config " + hashlib.sha256(config().to_json().encode("utf-8")).hexdigest()[:16]


def _make(kind: str, run_id: Optional[int], make: Callable[[], MadeExport]) -> MadeExport:
    try:
        made = make()
    except UserInputError as exc:
        made = MadeExport(source=export_source(run_id), error=str(exc))
    except Exception as exc:  # noqa: BLE001 - an export that breaks is a message, never a traceback
        made = MadeExport(
            source=export_source(run_id), error=f"The {kind} could not be made: {describe_exception(exc)}"
        )
    st.session_state.setdefault(EXPORTS_KEY, {})[kind] = made
    return made


def make_report(run_id: Optional[int]) -> MadeExport:
    """Make the privacy report (Markdown and HTML) of the current config (None) or of a run this caller
    may manage, and keep it for this session (``made_export``); a UserInputError becomes its ``error``.

    TensorFlow Privacy's statement loads TensorFlow the first time: seconds.
    """
    from dpcore.export import report, report_text

    def make() -> MadeExport:
        if run_id is None:
            checked = check_paths(config())
            made = report.config_report(checked, n=rows_trained(checked))
            stem = "dp-config"
        else:
            made = report.run_report(store(), run_id, caller=caller())
            stem = f"dp-run-{run_id}"
        markdown = report_text.render_markdown(made)
        html = report_text.render_html(made)
        return MadeExport(
            source=export_source(run_id),
            files=(
                ExportFile(f"{stem}-privacy-report.md", "text/markdown", markdown.encode("utf-8")),
                ExportFile(f"{stem}-privacy-report.html", "text/html", html.encode("utf-8")),
            ),
            preview=markdown,
        )

    return _make("report", run_id, make)


def make_model(run_id: int) -> MadeExport:
    """Make the model archive (model.keras, config, report, README) of a finished run this caller may manage,
    and keep it for this session; a run whose weights were not kept gets its ``error``."""
    from dpcore.export.model_file import model_archive

    return _make(
        "model",
        run_id,
        lambda: MadeExport(source=export_source(run_id), files=(model_archive(store(), run_id, caller=caller()),)),
    )


def made_export(kind: str, run_id: Optional[int]) -> Optional[MadeExport]:
    """The ``kind`` ("report" or "model") this session made last, if it was of this run (or of the current
    config as it is now, for None)."""
    made = st.session_state.get(EXPORTS_KEY, {}).get(kind)
    return made if made is not None and made.source == export_source(run_id) else None


def request_audit(run_id: int) -> JobSnapshot:
    """Queue an audit of a finished run as this caller (its owner, or the host), within their limits;
    it runs where training runs, never in a page run (``JobRunner.request_audit``)."""
    return runner().request_audit(run_id, by=caller())


def audit_request(run_id: int) -> Optional[JobSnapshot]:
    """The latest audit of ``run_id`` asked for on this server (queued, running or ended), or None."""
    return runner().audit_snapshot(run_id)


def preview_sweep(spec: sweeps.SweepSpec) -> sweeps.SweepPreview:
    """Projected ε of each point of ``spec``, its selection ε and its compute at this server's measured speeds.

    Refused before the accountant is asked when the sweep would be refused anyway (a CapacityError:
    more runs than one sweep may hold, or no room among this participant's entries, ``sweeps.check_fits``)
    or asks for too many ε (``sweeps.check_preview_size``); the ε are computed in an accountant process,
    within the server's accountant limit.
    """
    limits = runner().limits
    if limits is not None and spec.mode == "grid":
        check_sweep_size(spec.size, limits)
    if joined():
        sweeps.check_fits(runner(), dataclasses.replace(spec, base=check_paths(spec.base)), owner=owner())
    sweeps.check_preview_size(spec)
    privacy = ask_accountant(sweeps.preview_privacy, spec, interactive=True, what="this sweep's preview")
    return sweeps.preview(spec, throughput=runner().throughput, privacy=privacy)


def start_sweep(spec: sweeps.SweepSpec) -> sweeps.StartedSweep:
    """Queue ``spec`` as one sweep of this participant's (refused before they joined, and whole when over the limits)."""
    participants.check_participant(owner(), action="sweeps")
    return sweeps.start(runner(), dataclasses.replace(spec, base=check_paths(spec.base)), owner=owner())


def sweep_epsilon(record: SweepRecord, runs: Sequence[RunRecord]) -> sweeps.SweepEpsilon:
    """The ε of releasing the best run of a stored sweep (``sweeps.sweep_epsilon``), from the accountant processes."""
    return ask_accountant(sweeps.sweep_epsilon, record, list(runs), what="this sweep's selection ε")


def sweep_refusal(spec: sweeps.SweepSpec) -> Optional[str]:
    """Why starting ``spec`` now would be refused by this server's limits (naming the limit and what the
    host would raise), or None when it fits; ``start_sweep`` checks the same again on the server."""
    if not joined():
        return None  # the page asks for a name first
    try:
        sweeps.check_fits(runner(), dataclasses.replace(spec, base=check_paths(spec.base)), owner=owner())
    except UserInputError as exc:
        return str(exc)
    return None


def cancel_sweep(sweep_id: int) -> int:
    """Cancel every queued or running run of a sweep of this caller's (the host: anyone's); return how many."""
    return sweeps.cancel(runner(), sweep_id, by=caller())


def my_sweeps() -> list[SweepRecord]:
    """This session's sweeps, oldest first."""
    return store().list_sweeps(owner=owner())


# -- the accountant: every question of the pages in an accountant process, within the server's limit ----

_CALLS_LOCK = threading.Lock()
# The server's accountant processes, started with the first question, by the settings they hold.
_calls: dict[tuple[int, float], ChildCalls] = {}
# A question still unanswered after this long shows how long it has taken (and lets a newer page
# run, or the visitor leaving, stop it: each status update is a point where Streamlit can).
STATUS_AFTER_SECONDS = 1.0
T = TypeVar("T")


def _accountant_calls() -> Optional[ChildCalls]:
    """The accountant processes (None with DPEXPLORER_ACCOUNTANT_PROCESSES=0: questions run here).

    ``accountant_processes`` are kept waiting and twice as many compute at once; each holds the
    library's query bounds to ``accountant_seconds`` (``limits.limit_query_seconds``).
    """
    config = settings()
    if config.accountant_processes == 0:
        return None
    key = (config.accountant_processes, config.accountant_seconds)
    with _CALLS_LOCK:
        if key not in _calls:
            for old in _calls.values():  # settings read anew (tests change them): the old ones go
                old.close()
            _calls.clear()
            _calls[key] = ChildCalls(
                idle_limit=config.accountant_processes,
                busy_limit=2 * config.accountant_processes,
                setup=("dpcore.privacy.limits:limit_query_seconds", (config.accountant_seconds,)),
            )
            atexit.register(_calls[key].close)
        return _calls[key]


def _session_gone() -> Callable[[], bool]:
    """Whether this browser session has ended (the visitor left) or the server is stopping."""
    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None or not runtime.exists():
        return lambda: False
    server, session_id = runtime.get_instance(), ctx.session_id
    return lambda: (
        server.state in (RuntimeState.STOPPING, RuntimeState.STOPPED) or not server.is_active_session(session_id)
    )


def ask_accountant(function: Callable[..., T], *args: Any, what: str = "this question", **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` (an accountant function of dpcore) answered in an accountant process.

    The server's process and its other visitors never wait for it: it is given up (the process
    stopped) when it has run ``accountant_seconds`` (a UserInputError saying so), when this visitor's
    session ends, or when a newer run of the page replaces this one. Answers are kept for repeats.
    """
    calls = _accountant_calls()
    if calls is None:
        return function(*args, **kwargs)
    limit = settings().accountant_seconds
    status: list[Any] = []  # the status line, once the question has taken a while

    def on_wait(waited: float) -> None:
        if waited < STATUS_AFTER_SECONDS:
            return
        if not status:
            status.append(st.empty())
            status.append(-1)
        if int(waited) != status[1]:
            status[1] = int(waited)
            status[0].caption(f"The accountant is working on {what}… {waited:.0f} s (stopped after {limit:g} s).")

    def timed_out(seconds: float) -> UserInputError:
        return CallTimedOut(
            "accountant",
            f"{what} needed more than {seconds:g} s of the accountant and was stopped "
            f"(this server's limit, {ENV_ACCOUNTANT_SECONDS})",
            allowed="fewer epochs, fewer noise levels or values, or accountant 'rdp'",
        )

    try:
        return calls.call(
            function,
            *args,
            deadline_seconds=limit,
            timeout_error=timed_out,
            cancelled=_session_gone(),
            on_wait=on_wait,
            **kwargs,
        )
    except CallAbandoned:
        st.stop()  # the visitor left or the server is stopping: this page run ends quietly
        raise
    finally:
        if status:
            status[0].empty()


def epsilon_report(cfg: DPConfig, *, n: int, interactive: bool = True) -> EpsilonReport:
    """``accounting.epsilon_report_for_config`` from the accountant processes (the interactive grid by default)."""
    return ask_accountant(accounting.epsilon_report_for_config, cfg, n=n, interactive=interactive, what="this ε")


def epsilon(cfg: DPConfig, *, n: int, interactive: bool = True) -> float:
    """``accounting.epsilon_for_config`` from the accountant processes (∞ for a baseline)."""
    return ask_accountant(accounting.epsilon_for_config, cfg, n=n, interactive=interactive, what="this ε")


def epsilon_curve(cfg: DPConfig, *, n: int, interactive: bool = True) -> tuple[float, ...]:
    """``accounting.epsilon_curve_for_config`` from the accountant processes."""
    return ask_accountant(
        accounting.epsilon_curve_for_config, cfg, n=n, interactive=interactive, what="the ε after each epoch"
    )


def epsilon_split(cfg: DPConfig, *, n: int) -> EpsilonSplit:
    """``accounting.epsilon_split`` (interactive) from the accountant processes."""
    return ask_accountant(accounting.epsilon_split, cfg, n=n, interactive=True, what="the ε of each part")


def calibrate(cfg: DPConfig, *, target_epsilon: float, n: int) -> Calibration:
    """``calibration.calibrate_noise_for_config`` (interactive) from the accountant processes."""
    return ask_accountant(
        calibration.calibrate_noise_for_config,
        cfg,
        target_epsilon=target_epsilon,
        n=n,
        interactive=True,
        what="the calibration",
    )


def dataset_info(cfg: DPConfig) -> DatasetInfo:
    """What ``cfg`` trains on, as a page may show it before a run (``datasets.describe_before_run``: a
    privately derived schema is not drawn). A CSV file is read and described in an accountant process:
    a person's file is never parsed in the server's process."""
    if cfg.dataset != "csv":
        return datasets.describe_before_run(cfg)
    return ask_accountant(datasets.describe_before_run, check_paths(cfg), what="this CSV file's description")


def rows_trained(cfg: DPConfig) -> int:
    """n for the accountant (``datasets.train_size``); a CSV's rows are counted in an accountant process."""
    checked = check_paths(cfg)
    if checked.dataset != "csv":
        return datasets.train_size(checked)
    return ask_accountant(datasets.train_size, checked, what="this CSV file's rows")


def train_size(cfg: DPConfig) -> Optional[int]:
    """n for the accountant, or None (with the error shown) when the dataset cannot say or its file is not this caller's to read."""
    try:
        return rows_trained(cfg)
    except UserInputError as exc:
        st.error(str(exc))
        return None


def run_table(runs: Sequence[RunRecord], *, key: str, train_metrics: bool = False) -> None:
    """The sortable table of runs that Train and Compare show (one row per run, from comparison.run_rows;
    ``train_metrics``: with the training figures, titled as not covered by ε)."""
    rows = run_rows(runs, train_metrics=train_metrics)
    names = store().display_names()
    for row, run in zip(rows, runs):
        row["by"] = "you" if owner() and run.owner == owner() else names.get(run.owner, "")
        row["CSV file"] = shown_file(run.config.csv_path)
    st.dataframe(
        pd.DataFrame(rows).style.format(RUN_TABLE_FORMATS, na_rep=""),
        hide_index=True,
        width="stretch",
        key=key,
        placeholder="",  # an unknown value is an empty cell, not "None"
        column_config={
            "ε": st.column_config.Column(help="∞ for non-private baselines; empty until the first epoch ends"),
            "test accuracy": st.column_config.Column(help=f"The last epoch's, {TEST_METRICS_LABEL}"),
            TEST_SPREAD_COLUMN: st.column_config.Column(help=ACCURACY_SPREAD_NOTE),
            TRAIN_ACCURACY_TITLE: st.column_config.Column(help=TRAIN_METRICS_NOTE),
            TRAIN_LOSS_TITLE: st.column_config.Column(help=TRAIN_METRICS_NOTE),
            AUDIT_AUC_COLUMN: st.column_config.Column(
                help="The best membership-inference attack's ROC AUC (0.5 is guessing); empty if never audited. "
                + AUDIT_NOTE
            ),
            AUDIT_BOUND_COLUMN: st.column_config.Column(
                help="The empirical ε lower bound the attacks prove (95% confidence); never above ε for a correct "
                "run. " + AUDIT_NOTE
            ),
        },
    )


def _join_clicked(key: str, code_key: str) -> None:
    try:
        participant = join(st.session_state.get(key, ""), room_code=st.session_state.get(code_key, ""))
    except UserInputError as exc:
        st.session_state[f"{key}_error"] = str(exc)
        return
    post_notice(
        f"Welcome, {participant.display_name}. Your runs and uploads are yours; this page's "
        "address now holds your key, so a reload finds them again."
    )


def identity_form(where: str) -> None:
    """Ask for a display name once (a text box and a button); ``where`` keeps the widget keys apart.

    A page that asks in its own body (``where`` other than "sidebar") is the one place that asks on this
    render: the sidebar then leaves its own box out, so nobody sees two name boxes.
    """
    if where != "sidebar":
        st.session_state[PAGE_ASKS_NAME_KEY] = True
    key = f"join_name_{where}"
    st.text_input(
        "Your name",
        key=key,
        max_chars=max_chars(participants.MAX_DISPLAY_NAME_CHARS),
        placeholder="e.g. Ada",
        help="Shown beside your runs. Your runs and uploads belong to this "
        "name; the page's address keeps a key to it (?me=…), so do not share that address.",
    )
    code_key = f"join_code_{where}"
    if room_code_required():
        st.text_input("Room code", key=code_key, help="The code the host gave the room.")
    st.button("Join", key=f"join_{where}", on_click=_join_clicked, args=(key, code_key), type="primary")
    if f"{key}_error" in st.session_state:
        st.error(st.session_state.pop(f"{key}_error"))


def remove_participant(owner_id: str) -> CancelReport:
    """Remove a name as the host: its queued and training runs are cancelled (waiting a few seconds to
    report how each really ended), its sessions stop acting as it and its token finds no one
    (``owners.remove_participant``); a host role it held is given up."""
    report = owners.remove_participant(runner(), owner=owner_id, by=caller(), wait_seconds=ROOM_ACTION_WAIT_SECONDS)
    _JOIN_GUARD.remove(owner_id, by=caller())
    _HOST_GUARD.release(owner_id)
    return report


def cancel_every_run() -> CancelReport:
    """As the host, cancel every queued and training run and waiting audit, waiting a few seconds to
    report how each training run really ended (``JobRunner.cancel_all``)."""
    return runner().cancel_all(by=caller(), wait_seconds=ROOM_ACTION_WAIT_SECONDS)


def clear_board() -> tuple[owners.DeletedReport, float]:
    """As the host, delete every run and upload (refused while any run is queued or training); returns what
    went and when (Unix seconds). Each participant who joined before is told once (``ROOM_NOTICE_KEY``)."""
    report = owners.delete_runs_and_uploads(runner(), by=caller(), owner=None, uploads_directory=uploads.uploads_dir())
    cleared = _PRESENCE.board_cleared()
    st.session_state[BOARD_SEEN_KEY] = cleared  # the host who cleared it reads the report instead
    return report, cleared


def room_now() -> room_status.RoomStatus:
    """The host's view of the room: who joined (queued, training, ended, last seen), what is active, the load."""
    return room_status.room_status(runner(), last_seen=_PRESENCE.last_seen())


def clock(when: float) -> str:
    """A time of day on the server's clock, HH:MM, as the room's notices say it."""
    return _clock(when)


def set_room_code(code: str) -> None:
    """Set the code joining needs from now on, as the host ("": back to DPEXPLORER_ROOM_CODE, if set)."""
    _JOIN_GUARD.set_room_code(code or None, by=caller())


def sidebar() -> None:
    """The shared sidebar: who you are, the current config at a glance, your running jobs (the host's panel
    follows it: ``app_state.host_panel``)."""
    cfg = config()
    with st.sidebar:
        page_asks = st.session_state.pop(PAGE_ASKS_NAME_KEY, False)
        if joined():
            st.caption(f"You are **{display_name()}**" + (" (host)" if is_host() else "") + ".")
        elif page_asks:
            st.caption("Type your name on the page to join.")
        else:
            identity_form("sidebar")
        st.markdown("**Current config**")
        st.caption(
            f"{cfg.dataset} · {cfg.model} · {cfg.optimizer} (lr {cfg.learning_rate:g})  \n"
            f"σ {cfg.noise_multiplier:g} · C {cfg.l2_norm_clip:g} · batch {cfg.batch_size} · "
            f"{cfg.epochs} epochs  \n{ACCOUNTANT_TITLES[cfg.accountant]} accountant · {cfg.sampling} sampling · "
            f"δ {cfg.delta:.0e}"
        )
        active = [j for j in my_runs() if not j.done]
        if active:
            st.caption(f"{len(active)} run(s) of yours queued or training.")


def train_metrics_toggle(key: str) -> bool:
    """The switch Train and Compare offer to show or hide the training figures (on by default)."""
    return st.toggle(
        "Show training loss and accuracy",
        value=True,
        key=key,
        help=f"Training figures are {TRAIN_METRICS_LABEL} (exact means over the private batches, "
        f"without noise); test figures are {TEST_METRICS_LABEL}.",
    )
