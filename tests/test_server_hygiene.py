"""A real `streamlit run app.py`: the favicon every page load asks for, no traceback in the log, and a
long accountant question that neither outlives its visitor nor keeps SIGTERM from stopping the server."""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.request
from pathlib import Path

import pytest

from bench.app_server import streamlit_app
from tests.conftest import run_coroutine, wait_until


def test_favicon_and_page_answer_without_a_traceback(tmp_path: Path) -> None:
    log = tmp_path / "streamlit.log"
    with streamlit_app(env={"DPEXPLORER_STORE": str(tmp_path / "runs.sqlite3")}, log_path=log) as url:
        for accept in ("identity", "gzip"):  # urllib's default, and what a browser sends
            request = urllib.request.Request(url + "favicon.png", headers={"Accept-Encoding": accept})
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "image/png"
                assert response.read(8) == b"\x89PNG\r\n\x1a\n"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
    assert "Traceback" not in log.read_text()


# -- a long accountant question: given up when its visitor leaves, and no obstacle to SIGTERM --------

SWEEP_MODE_LABEL = "Mode"
SWEEP_VALUES_LABEL = "Values of Noise multiplier σ (comma-separated)"  # σ: the knob the page offers first
PRIVATE_SELECTION = "Private selection: a random number of trials"
WORKING = "The accountant is working on this sweep's preview"


def _accountant_children(server_pid: int) -> set[int]:
    """The server's accountant processes (``python -m dpcore.child_process dpcore.child_calls:serve``),
    whichever of its threads started them (/proc lists a child under the thread that started it)."""
    found = set()
    for children in Path(f"/proc/{server_pid}/task").glob("*/children"):
        for pid in map(int, children.read_text().split()):
            try:
                if b"dpcore.child_calls:serve" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.add(pid)
            except OSError:
                pass
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def _start_heavy_preview(url: str, values: str):
    """Open Sweep as a browser would, ask for a private-selection preview of ``values`` (100 σ, each a
    fresh RDP of about 0.1 to 0.4 s), and return the client once the page says the accountant is at work."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    from bench.load_workshop import Client, text_state

    client = await Client(url).__aenter__()
    await client.rerun(page="")
    sweep_page = client.pages["Sweep"]
    first = await client.rerun(page=sweep_page)
    mode = text_state(first.widgets[SWEEP_MODE_LABEL], PRIVATE_SELECTION)
    chosen = await client.rerun(page=sweep_page, widgets=(mode,))
    assert not chosen.errors, chosen.errors
    heavy = (mode, text_state(chosen.widgets[SWEEP_VALUES_LABEL], values))
    from streamlit.proto.BackMsg_pb2 import BackMsg

    message = BackMsg()
    message.rerun_script.page_script_hash = sweep_page
    message.rerun_script.widget_states.widgets.extend(heavy)
    await client.ws.send(message.SerializeToString())
    while True:
        forward = ForwardMsg()
        forward.ParseFromString(await asyncio.wait_for(client.ws.recv(), 120))
        kind = forward.WhichOneof("type")
        assert kind != "script_finished", "the preview ended before the test could catch it at work"
        if kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
            element = forward.delta.new_element
            if element.WhichOneof("type") == "markdown" and WORKING in element.markdown.body:
                return client


def _values(start: float) -> str:
    return ", ".join(f"{start + 0.0101 * i:.4f}" for i in range(100))


@pytest.mark.timeout(300)
def test_a_long_preview_is_given_up_when_its_visitor_leaves_and_sigterm_still_stops_the_server(tmp_path: Path) -> None:
    """A long preview runs in an accountant process: the visitor's leaving
    stops that process, and SIGTERM during another one ends the server and its processes."""
    from bench.app_server import streamlit_server

    log = tmp_path / "streamlit.log"
    env = {
        "DPEXPLORER_STORE": str(tmp_path / "runs.sqlite3"),
        "DPEXPLORER_ACCOUNTANT_PROCESSES": "1",
        "DPEXPLORER_ACCOUNTANT_SECONDS": "600",
    }
    with streamlit_server(env=env, log_path=log) as server:

        async def leave() -> int:
            client = await _start_heavy_preview(server.url, _values(0.5))
            [computing] = _accountant_children(server.pid)
            await client.__aexit__(None, None, None)  # the visitor closes the tab
            return computing

        computing = run_coroutine(leave())
        wait_until(lambda: not _alive(computing), what="the preview's accountant process to be stopped", timeout=60)

        async def terminate() -> set[int]:
            client = await _start_heavy_preview(server.url, _values(0.6))
            children = _accountant_children(server.pid)
            os.kill(server.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(client.ws.wait_closed(), 60)
            except asyncio.TimeoutError:
                pass
            return children

        children = run_coroutine(terminate())
        assert children
        wait_until(lambda: not _alive(server.pid), what="the server to exit on SIGTERM", timeout=60)
        wait_until(lambda: not any(_alive(pid) for pid in children), what="its accountant processes to end", timeout=30)
    assert "Traceback" not in log.read_text()
