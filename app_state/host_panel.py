"""The host's panel in the sidebar: unlock, the room now (who is here, what runs, the server's load), the
room-wide actions behind a confirmation step with a report of what they did, the limits, names and room code.

Drawn by app.py after the shared sidebar; it reads and changes the room only through ``app_state``.
Its widget keys start with ``host_`` and are spelled nowhere else (tests may use them).
"""

from __future__ import annotations

import time
from typing import Optional

import pandas as pd
import streamlit as st

import app_state
from dpcore.errors import UserInputError
from dpcore.runs import sweeps
from dpcore.runs.room_status import RoomStatus, ServerLoad

PENDING_KEY = "host_pending"  # the room-wide action waiting for its confirmation: (action, owner id or "")
REPORT_KEY = "host_report"  # what the last action did, or why it was refused: (kind, text, where to show it)

CANCEL_ALL, CLEAR, REMOVE = "cancel_all", "clear", "remove"
# Where a report shows: at the top of the panel, or under the room-wide actions that made it.
TOP, ACTIONS = "top", "actions"


def _report(kind: str, text: str, where: str = TOP) -> None:
    st.session_state[REPORT_KEY] = (kind, text, where)


def _n(count: int, one: str, many: str = "") -> str:
    """``count`` and the word, singular or plural: "1 run", "3 runs"."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _unlock_clicked() -> None:
    try:
        app_state.unlock_host(st.session_state.get("host_secret", ""))
        _report("success", "Host role unlocked for your name: a reload of this page keeps it until you leave it.")
    except UserInputError as exc:
        _report("error", str(exc))
    st.session_state["host_secret"] = ""


def _ask(action: str, who: str = "") -> None:
    st.session_state[PENDING_KEY] = (action, who)
    st.session_state.pop(REPORT_KEY, None)


def _back() -> None:
    st.session_state.pop(PENDING_KEY, None)


def _confirmed() -> None:
    action, who = st.session_state.pop(PENDING_KEY, ("", ""))
    try:
        if action == CANCEL_ALL:
            _report("success", app_state.cancel_every_run().text() + ".", ACTIONS)
        elif action == CLEAR:
            deleted, when = app_state.clear_board()
            _report(
                "success",
                f"Board cleared at {app_state.clock(when)}: {deleted.text()}. Each participant is told so "
                "once, on their next page.",
                ACTIONS,
            )
        elif action == REMOVE:
            name = app_state.store().display_names().get(who, who)
            cancelled = app_state.remove_participant(who)
            _report("success", f"Removed {name}: {cancelled.text()}. Their ended runs stay.", ACTIONS)
    except UserInputError as exc:
        _report("error", str(exc), ACTIONS)


def _room_code_clicked() -> None:
    try:
        app_state.set_room_code(st.session_state.get("host_room_code", ""))
        _report(
            "success",
            "Joining needs a room code now." if app_state.room_code_required() else "Joining needs no room code now.",
        )
    except UserInputError as exc:
        _report("error", str(exc))


def _limits_clicked() -> None:
    ss = st.session_state
    try:
        current = app_state.runner().limits
        if current is None:
            return
        limits = current.replace(
            max_running=int(ss["host_max_running"]),
            max_queued=int(ss["host_max_queued"]),
            max_sweep_runs=int(ss["host_max_sweep_runs"]),
            max_example_passes=int(ss["host_max_passes"]) or None,
            max_run_seconds=float(ss["host_max_seconds"]) or None,
        )
        app_state.runner().set_limits(limits, by=app_state.caller())
        _report("success", "Limits changed for everyone.")
    except UserInputError as exc:
        _report("error", str(exc))


def _bytes(count: Optional[int]) -> str:
    return "?" if count is None else f"{count / 1e9:.1f} GB"


def load_text(load: ServerLoad) -> str:
    """The server's load in one line: CPU load, memory, the store's disk, the workers."""
    cpu = "?" if load.load_1m is None else f"{load.load_1m:.2f}"
    return (
        f"Load {cpu} on {load.cpus} CPU{'' if load.cpus == 1 else 's'} (1 min) · memory "
        f"{_bytes(load.memory_available_bytes)} free of {_bytes(load.memory_total_bytes)} · disk "
        f"{_bytes(load.disk_free_bytes)} free for the store · workers {load.workers_busy} of "
        f"{load.workers_total} busy"
    )


def _ago(when: Optional[float], now: float) -> str:
    """How long ago, short enough for a narrow column: "45 s", "12 min", "3 h"."""
    if when is None:
        return ""
    seconds = max(0, int(now - when))
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min" if seconds < 7200 else f"{seconds // 3600} h"


def _room_section(status: RoomStatus) -> None:
    """Who is here, what is queued and training, the server's load."""
    now = time.time()
    st.markdown(f"**The room now** · {time.strftime('%H:%M:%S', time.localtime(now))}")
    st.button("Refresh", key="host_refresh", icon=":material/refresh:", help="Read the room again.")
    st.caption(load_text(status.load))
    st.markdown(f"**Who joined** ({len(status.people)})")
    if status.people:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "name": p.display_name,
                        "wait": p.queued,
                        "train": p.training,
                        "done": p.ended,
                        "seen": _ago(p.last_seen, now),
                    }
                    for p in status.people
                ]
            ),
            hide_index=True,
            key="host_people",
            column_config={
                "wait": st.column_config.NumberColumn(help="Runs waiting in the queue", width=40),
                "train": st.column_config.NumberColumn(help="Runs training now", width=40),
                "done": st.column_config.NumberColumn(help="Stored runs that ended", width=40),
                "seen": st.column_config.TextColumn(help="How long ago a page of theirs last loaded", width=50),
            },
        )
    training = sum(1 for r in status.active if r.state == "running")
    st.markdown(f"**Training {training} · waiting {len(status.active) - training}**")
    if status.active:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "run": str(r.id) if r.kind == "train" else f"audit {r.id}",
                        "by": r.owner_name,
                        "state": "training" if r.state == "running" else "waiting",
                        "for": _ago(r.since, now),
                    }
                    for r in status.active
                ]
            ),
            hide_index=True,
            key="host_active",
            column_config={
                "run": st.column_config.TextColumn(help="The run's id (an audit: of that run)", width=50),
                "for": st.column_config.TextColumn(
                    help="Training since its start, waiting since it was sent", width=50
                ),
            },
        )


def _preview(action: str, who: str, status: RoomStatus) -> tuple[str, bool]:
    """What the pending action will do, in words, and whether it may go ahead now."""
    if action == CANCEL_ALL:
        queued = sum(1 for r in status.active if r.state == "queued")
        training = len(status.active) - queued
        people = len({r.owner for r in status.active})
        if not status.active:
            return "Nothing is queued or training now.", False
        return (
            f"This cancels {queued} waiting and stops {training} training (runs and audits) of "
            f"{_n(people, 'participant')}, for everyone in the room. A run that finishes while it stops is "
            "kept and reported as completed.",
            True,
        )
    if action == CLEAR:
        runs = app_state.store().list_runs()
        if status.active:
            return (
                f"{_n(len(status.active), 'run')} still queued or training: cancel them first, then clear the board.",
                False,
            )
        people = len({r.owner for r in runs})
        return (
            f"This deletes all {_n(len(runs), 'stored run')} of {_n(people, 'participant')} and every uploaded "
            "file, for good. Participants are told once that the board was cleared. Names that joined stay.",
            True,
        )
    person = next((p for p in status.people if p.owner == who), None)
    if person is None:
        return "That name is no longer in the room.", False
    return (
        f"This removes {person.display_name}: their {person.queued} waiting and {person.training} training "
        f"runs are cancelled and their link stops working; their {_n(person.ended, 'ended run')} stay.",
        True,
    )


CONFIRM_LABELS = {CANCEL_ALL: "Yes, cancel them", CLEAR: "Yes, delete everything", REMOVE: "Yes, remove the name"}


def _actions_section(status: RoomStatus) -> None:
    """The room-wide actions: each asks first, showing what it will do, then reports what it did."""
    st.markdown("**Room-wide actions**")
    pending = st.session_state.get(PENDING_KEY)
    st.button(
        "Cancel every queued or training run…",
        key="host_cancel_all",
        on_click=_ask,
        args=(CANCEL_ALL,),
        width="stretch",
    )
    st.button("Clear the board…", key="host_clear", on_click=_ask, args=(CLEAR,), width="stretch")
    if status.people:
        labels = {p.owner: f"{p.display_name} (joined {app_state.clock(p.joined)})" for p in status.people}
        st.selectbox("Name to remove", list(labels), format_func=labels.get, key="host_remove_who")
        st.button(
            "Remove name…",
            key="host_remove",
            on_click=lambda: _ask(REMOVE, st.session_state.get("host_remove_who") or ""),
            width="stretch",
            help="Its queued and training runs are cancelled and it can no longer act; its ended runs stay.",
        )
    _show_report(ACTIONS)
    if pending:
        action, who = pending
        text, allowed = _preview(action, who, status)
        with st.container(border=True, key="host_confirm_box"):
            (st.warning if allowed else st.info)(text)
            st.button(
                CONFIRM_LABELS[action],
                key="host_confirm",
                type="primary",
                on_click=_confirmed,
                disabled=not allowed,
                width="stretch",
            )
            st.button("Go back", key="host_back", on_click=_back, width="stretch")


def _limits_section() -> None:
    limits = app_state.runner().limits
    if limits is None:
        return
    st.markdown("**Limits per participant**")
    st.number_input(
        "Runs training per participant",
        min_value=1,
        max_value=100,
        step=1,
        value=limits.max_running,
        key="host_max_running",
    )
    st.number_input(
        "Runs waiting per participant",
        min_value=0,
        max_value=100,
        step=1,
        value=limits.max_queued,
        key="host_max_queued",
        help="A sweep counts as one, however many runs it holds: its runs wait their turn inside it.",
    )
    st.number_input(
        "Runs per sweep",
        min_value=1,
        max_value=max(sweeps.MAX_SWEEP_RUNS, limits.max_sweep_runs),
        step=1,
        value=limits.max_sweep_runs,
        key="host_max_sweep_runs",
    )
    st.number_input(
        "Example passes per run (0: no cap)",
        min_value=0,
        max_value=10**12,
        step=100_000,
        value=limits.max_example_passes or 0,
        key="host_max_passes",
    )
    st.number_input(
        "Seconds per run (0: no cap)",
        min_value=0.0,
        max_value=10.0**7,
        step=60.0,
        value=float(limits.max_run_seconds or 0),
        key="host_max_seconds",
    )
    st.button("Apply limits", key="host_limits", on_click=_limits_clicked)


def _room_code_section() -> None:
    st.caption(
        "Joining needs a room code now." if app_state.room_code_required() else "Joining needs no room code now."
    )
    st.text_input(
        "Room code",
        key="host_room_code",
        help="Joining needs this code from now on; names that already joined keep theirs. Empty: "
        "the server's own setting (DPEXPLORER_ROOM_CODE), if any.",
    )
    st.button("Set room code", key="host_set_room_code", on_click=_room_code_clicked)


def _show_report(where: str) -> None:
    """The last action's report, once, if it belongs ``where``."""
    report = st.session_state.get(REPORT_KEY)
    if report and report[2] == where:
        del st.session_state[REPORT_KEY]
        kind, text, _ = report
        (st.success if kind == "success" else st.error)(text)


def render() -> None:
    """The instructor's panel: unlock with the host secret (a password box, never the URL) once joined,
    then the room now, the room-wide actions, the limits and the room code."""
    if not app_state.settings().has_host or not app_state.joined():
        return
    with st.sidebar.expander("Host", expanded=app_state.is_host()):
        _show_report(TOP)
        if not app_state.is_host():
            st.text_input(
                "Host secret",
                type="password",
                key="host_secret",
                help="The secret the server was started with (DPEXPLORER_HOST_SECRET). The role stays with "
                "your name until you leave it, so a reload keeps it.",
            )
            st.button("Unlock", key="host_unlock", on_click=_unlock_clicked)
            return
        st.caption(
            "You are the host: Compare shows everyone's runs with rename and delete for each. This page's "
            "address holds your key (?me=…) and so the host role: keep it off the projector."
        )
        status = app_state.room_now()
        _room_section(status)
        _actions_section(status)
        _limits_section()
        _room_code_section()
        st.button("Leave the host role", key="host_lock", on_click=app_state.lock_host)
