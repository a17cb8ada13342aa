"""A real `streamlit run app.py` driven as a hostile client would (bench/room_client.py's websocket client,
which sends widget states as a browser does): a visitor who never joined cannot start a sweep, joins are
limited per address and need the room code, wrong host secrets are locked out and logged without their
text; a store that cannot be written, is replaced by garbage and is put back is survived without a restart."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from bench.app_server import streamlit_app
from bench.room_client import Client, Reply, text_state, trigger_state
from dpcore.config import DPConfig
from dpcore.runs.store import RunStore
from tests.conftest import run_coroutine

SECRET = "room-test-host-secret-0123"
ROOM_CODE = "ROOM-42"


@dataclass
class Page(Reply):
    """A script run's reply with its warnings and infos too."""

    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)


class Visitor(Client):
    """The bench's client, keeping every alert and exception of a reply."""

    async def open(self, page: Optional[str] = None, widgets: tuple = ()) -> Page:
        self._page = Page()
        reply = await self.rerun(page=page, widgets=widgets)
        self._page.__dict__.update({k: v for k, v in reply.__dict__.items()})
        return self._page

    def _read_element(self, element, reply: Reply, start: float) -> None:
        from streamlit.proto.Alert_pb2 import Alert

        Client._read_element(element, reply, start)
        kind = element.WhichOneof("type")
        page = getattr(self, "_page", None)
        if page is None:
            return
        if kind == "alert" and element.alert.format == Alert.WARNING:
            page.warnings.append(element.alert.body)
        elif kind == "alert" and element.alert.format == Alert.INFO:
            page.infos.append(element.alert.body)
        elif kind == "exception":
            page.exceptions.append(f"{element.exception.type}: {element.exception.message}")


async def _join(url: str, name: str, code: str) -> Page:
    async with Visitor(url) as visitor:
        first = await visitor.open(page="")
        widgets = [text_state(first.widgets["Your name"], name), trigger_state(first.widgets["Join"])]
        if "Room code" in first.widgets:
            widgets.insert(1, text_state(first.widgets["Room code"], code))
        return await visitor.open(widgets=tuple(widgets))


async def _visitor_starts_a_sweep(url: str) -> tuple[Page, Page]:
    async with Visitor(url) as visitor:
        await visitor.open(page="")
        sweep = visitor.pages["Sweep"]
        shown = await visitor.open(page=sweep)
        # The button is disabled in the browser; this client presses it anyway.
        pressed = await visitor.open(page=sweep, widgets=(trigger_state(shown.widgets["Start sweep"]),))
        return shown, pressed


async def _guess_host_secrets(url: str, guesses: list[str]) -> list[Page]:
    async with Visitor(url) as visitor:
        first = await visitor.open(page="")
        joined = await visitor.open(
            widgets=(
                text_state(first.widgets["Your name"], "Host"),
                text_state(first.widgets["Room code"], ROOM_CODE),
                trigger_state(first.widgets["Join"]),
            )
        )
        assert not joined.errors, joined.errors
        replies = []
        for guess in guesses:
            page = await visitor.open(
                widgets=(text_state(joined.widgets["Host secret"], guess), trigger_state(joined.widgets["Unlock"]))
            )
            replies.append(page)
        return replies


@pytest.mark.timeout(300)
def test_joins_sweeps_and_the_host_secret_are_checked_on_the_server(tmp_path: Path) -> None:
    log = tmp_path / "streamlit.log"
    env = {
        "DPEXPLORER_STORE": str(tmp_path / "runs.sqlite3"),
        "DPEXPLORER_HOST_SECRET": SECRET,
        "DPEXPLORER_ROOM_CODE": ROOM_CODE,
        "DPEXPLORER_JOINS_PER_ADDRESS": "4",
        "DPEXPLORER_HOST_LOCKOUT_FAILURES": "4",
        "DPEXPLORER_ACCOUNTANT_PROCESSES": "0",
    }
    with streamlit_app(env=env, log_path=log) as url:
        shown, pressed = run_coroutine(_visitor_starts_a_sweep(url))
        assert any("Type your name in the sidebar to start a sweep" in i for i in shown.infos)
        assert any(e.startswith("error: display_name: sweeps need a name") for e in pressed.errors), pressed.errors
        assert not pressed.exceptions and RunStore(tmp_path / "runs.sqlite3").list_sweeps() == []

        wrong = run_coroutine(_join(url, "Mallory", "ROOM-41"))  # a wrong code counts as a try
        assert any("room_code: that is not this room's code" in e for e in wrong.errors), wrong.errors
        for name in ("Ana", "Ben"):
            assert not run_coroutine(_join(url, name, ROOM_CODE)).errors
        guesses = [f"guess-number-{i}" for i in range(4)] + [SECRET]
        replies = run_coroutine(_guess_host_secrets(url, guesses))  # the fourth join from this address
        for reply in replies[:4]:
            assert any("host_secret: that is not the host secret" in e for e in reply.errors), reply.errors
        # Four wrong in a row: locked out, so even the right secret is refused before it is compared.
        assert any("try again in 15 min" in e for e in replies[4].errors), replies[4].errors
        fifth = run_coroutine(_join(url, "Eve", ROOM_CODE))
        assert any("4 names joined from this address" in e for e in fifth.errors), fifth.errors
        assert [name for _, name, _ in RunStore(tmp_path / "runs.sqlite3").list_participants()] == [
            "Ana",
            "Ben",
            "Host",
        ]
    text = log.read_text()
    lines = [line for line in text.splitlines() if "wrong host secret" in line]
    assert len(lines) == 4 and lines[-1].endswith("4 wrong in a row; locked out for 15 min")
    assert all("address this machine" in line for line in lines) and "guess-number" not in text
    assert "WARNING dpcore.room.joins: wrong room code from address this machine" in text
    assert "Traceback" not in text


async def _visit(url: str, titles: tuple[str, ...]) -> dict[str, Page]:
    async with Visitor(url) as visitor:
        seen = {"Explore": await visitor.open(page="")}
        for title in titles:
            seen[title] = await visitor.open(page=visitor.pages[title])
        return seen


@pytest.mark.timeout(300)
def test_a_store_that_cannot_be_written_is_garbage_or_is_put_back_is_survived_without_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs.sqlite3"
    store = RunStore(path)
    run_id = store.create_run(DPConfig(), owner="p" + "a" * 16, name="kept")
    store.set_status(run_id, "completed")
    good = tmp_path / "good-copy.sqlite3"
    shutil.copy(path, good)
    blocker = tmp_path / "runs.sqlite3-wal"
    blocker.mkdir()  # as a read-only folder: SQLite can make no log beside the store (even as root)
    log = tmp_path / "streamlit.log"
    pages = ("Train", "Sweep", "Compare", "Export", "Learn")
    env = {"DPEXPLORER_STORE": str(path), "DPEXPLORER_ACCOUNTANT_PROCESSES": "0", "DPEXPLORER_WORKERS": "1"}
    with streamlit_app(env=env, log_path=log) as url:
        started = run_coroutine(_visit(url, pages))
        assert started["Explore"].epsilon is not None  # Explore serves
        assert any(w.startswith("The run store cannot be written") for w in started["Explore"].warnings)
        assert not any(p.exceptions for p in started.values()), {t: p.exceptions for t, p in started.items()}
        assert not any("No runs stored yet" in i for i in started["Compare"].infos)  # its run is listed

        blocker.rmdir()  # the folder takes writes again: the next page run sees it
        writable = run_coroutine(_visit(url, ("Compare",)))
        assert not writable["Explore"].warnings and not writable["Compare"].exceptions

        path.write_bytes(bytes(range(256)) * 64)  # the store replaced by garbage while serving
        os.utime(path)
        damaged = run_coroutine(_visit(url, pages))
        assert not any(p.exceptions for p in damaged.values()), {t: p.exceptions for t, p in damaged.items()}
        assert not any(e for p in damaged.values() for e in p.errors if "Traceback" in e)
        for title in ("Sweep", "Compare", "Export", "Learn"):
            assert any(w.startswith("The run store is damaged") for w in damaged[title].warnings), title

        shutil.copy(good, path)  # a good copy put back: used without a restart
        healed = run_coroutine(_visit(url, ("Compare",)))
        assert not healed["Explore"].warnings and not healed["Compare"].exceptions
        assert not any("No runs stored yet" in i for i in healed["Compare"].infos)
    assert "Traceback" not in log.read_text()
