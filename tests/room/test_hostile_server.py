"""A real served app spoken to as a browser does (bench/room_client.py's websocket client), by a client
that sends what no browser would: widget values the page never offered, uploads the server does not
hold, and megabytes of text in boxes. Each ends in one message in the sender's session, never a
traceback, and nothing long is kept in the store.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.app_server import streamlit_server
from bench.room_client import Client, Reply, text_state, trigger_state
from dpcore.runs.store import RunStore
from tests.conftest import REPO_ROOT, run_coroutine

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

MIB_TEXT = "x" * 2**20
NAME_BOX, JOIN = "Your name", "Join"


def _string(widget_id: str, text: str):
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    return WidgetState(id=widget_id, string_value=text)


def _unheld_upload(widget_id: str, name: str):
    """An upload widget's value naming a file id this server never received."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    state = WidgetState(id=widget_id)
    info = state.file_uploader_state_value.uploaded_file_info.add()
    info.file_id, info.name, info.size = "no-such-file-id", name, 100
    return state


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("room")
    store = tmp / "runs.sqlite3"
    env = {
        "DPEXPLORER_STORE": str(store),
        "DPEXPLORER_BACKEND": "local",
        "DPEXPLORER_ACCOUNTANT_PROCESSES": "0",
        "DPEXPLORER_DATA_DIR": str(REPO_ROOT / "assets"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    with streamlit_server(env=env, log_path=tmp / "streamlit.log") as running:
        SERVER_LOGS[running.url] = tmp / "streamlit.log"
        yield running.url, store


# Each module server's log, so that a failure shows what the server wrote (a traceback the page redacts).
SERVER_LOGS: dict[str, Path] = {}


def _log_tail(url: str) -> str:
    path = SERVER_LOGS.get(url)
    return "" if path is None or not path.exists() else path.read_text(errors="replace")[-4000:]


async def _session(url: str, *, joined: bool, page: str = "Explore") -> tuple[Client, Reply]:
    """A new session on ``page`` (joined under a name when ``joined``)."""
    client = await Client(url).__aenter__()
    reply = await client.rerun(page="")
    if joined:
        reply = await client.rerun(
            widgets=(text_state(reply.widgets[NAME_BOX], "Mallory"), trigger_state(reply.widgets[JOIN]))
        )
        assert not reply.errors, reply.errors
    if page != "Explore":
        reply = await client.rerun(page=client.pages[page])
    return client, reply


def _one_message(reply: Reply, *words: str) -> str:
    """The one error the reply shows (no exception element), holding every word."""
    assert not [e for e in reply.errors if e.startswith("exception")], reply.errors
    (error,) = reply.errors
    assert all(word in error for word in words), error
    return error


async def _long_display_name(url: str) -> Reply:
    client = await Client(url).__aenter__()
    try:
        reply = await client.rerun(page="")
        return await client.rerun(
            widgets=(text_state(reply.widgets[NAME_BOX], MIB_TEXT), trigger_state(reply.widgets[JOIN]))
        )
    finally:
        await client.__aexit__()


async def _forged_dataset(url: str) -> Reply:
    client, reply = await _session(url, joined=False)
    try:
        return await client.rerun(widgets=(_string(reply.widgets["Dataset"], "nope"),))
    finally:
        await client.__aexit__()


async def _unheld_csv_upload(url: str) -> Reply:
    client, reply = await _session(url, joined=True)
    try:
        csv = _string(reply.widgets["Dataset"], "Your CSV file (tabular)")
        reply = await client.rerun(widgets=(csv,))
        return await client.rerun(widgets=(csv, _unheld_upload(reply.widgets["Upload a CSV file"], "data.csv")))
    finally:
        await client.__aexit__()


async def _unheld_config_upload(url: str) -> Reply:
    client, reply = await _session(url, joined=False, page="Export")
    try:
        box = reply.widgets["Upload a config file (.json, .yaml or .yml)"]
        return await client.rerun(widgets=(_unheld_upload(box, "config.yaml"),))
    finally:
        await client.__aexit__()


async def _long_run_name(url: str) -> Reply:
    client, reply = await _session(url, joined=True, page="Train")
    try:
        return await client.rerun(
            widgets=(
                _string(reply.widgets["Run name (optional)"], MIB_TEXT),
                trigger_state(reply.widgets["Start training"]),
            )
        )
    finally:
        await client.__aexit__()


async def _long_sweep_name(url: str) -> Reply:
    client, reply = await _session(url, joined=True, page="Sweep")
    try:
        return await client.rerun(widgets=(_string(reply.widgets["Sweep name (optional)"], MIB_TEXT),))
    finally:
        await client.__aexit__()


async def _long_values_box(url: str) -> Reply:
    client, reply = await _session(url, joined=True, page="Sweep")
    try:
        knob = _string(reply.widgets["Sweep over"], "Noise multiplier σ")
        reply = await client.rerun(widgets=(knob,))
        box = reply.widgets["Values of Noise multiplier σ (comma-separated)"]
        return await client.rerun(widgets=(knob, _string(box, "1," * 2**19)))
    finally:
        await client.__aexit__()


async def _sweep_over_the_limits(url: str) -> Reply:
    client, reply = await _session(url, joined=True, page="Sweep")
    try:
        values = ", ".join(f"{0.5 + i / 10:g}" for i in range(25))  # 25 runs; a sweep may hold 24 here
        box = _string(reply.widgets["Values of Noise multiplier σ (comma-separated)"], values)
        reply = await client.rerun(widgets=(box,))
        # The browser shows Start turned off; this client presses it anyway.
        return await client.rerun(widgets=(box, trigger_state(reply.widgets["Start sweep"])))
    finally:
        await client.__aexit__()


async def _long_schema(url: str) -> Reply:
    client, reply = await _session(url, joined=True)
    try:
        csv = _string(reply.widgets["Dataset"], "Your CSV file (tabular)")
        reply = await client.rerun(widgets=(csv,))
        path = _string(reply.widgets["CSV file on the server"], str(REPO_ROOT / "assets" / "sample.csv"))
        reply = await client.rerun(widgets=(csv, path))
        box = reply.widgets["Schema (YAML or JSON)"]
        return await client.rerun(widgets=(csv, path, _string(box, MIB_TEXT)))
    finally:
        await client.__aexit__()


CASES = {
    "a dataset the page never offered": (_forged_dataset, ("dataset: 'nope' is not one of the choices",)),
    "a CSV upload the server does not hold": (_unheld_csv_upload, ("csv_upload", "does not hold the uploaded file")),
    "a config upload the server does not hold": (_unheld_config_upload, ("config", "does not hold the uploaded file")),
    "a 1 MiB display name": (_long_display_name, ("display_name: the name has 41 characters",)),
    # A box's max_chars is one more than the library allows; Streamlit cuts what is longer to it.
    "a 1 MiB run name": (_long_run_name, ("name: the name has 201 characters", "at most 200")),
    "a 1 MiB sweep name": (_long_sweep_name, ("sweep_name: the name has 201 characters",)),
    "a 1 MiB values box": (_long_values_box, ("noise_multiplier", "4,001 characters", "at most 4,000 characters")),
    "a 1 MiB schema": (_long_schema, ("csv_schema", "too large", "256 KiB")),
}


@pytest.mark.timeout(300)
def test_a_sweep_over_the_limits_pressed_anyway_is_refused_on_the_server_and_leaves_no_sweep(server):
    url, store = server
    _one_message(run_coroutine(_sweep_over_the_limits(url)), "sweep_runs: this sweep has 25 runs", "at most 24 runs")
    assert all(sweep.run_ids for sweep in RunStore(store, read_only=True).list_sweeps())  # no sweep without runs


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(CASES))
def test_what_no_browser_sends_is_one_message_and_nothing_long_is_kept(name, server):
    url, store = server
    probe, words = CASES[name]
    reply = run_coroutine(probe(url))
    assert not [e for e in reply.errors if e.startswith("exception")], _log_tail(url)
    _one_message(reply, *words)
    kept = RunStore(store, read_only=True)
    names = (
        [run.name for run in kept.list_runs()]
        + [s.name for s in kept.list_sweeps()]
        + list(kept.display_names().values())
    )
    assert not any("xxxxxxxxxx" in name for name in names), [name[:40] for name in names]
