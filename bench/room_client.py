"""A light Streamlit client for the room benches and tests: it speaks the websocket protocol a browser speaks
(protobuf BackMsg/ForwardMsg) without rendering, so dozens of participants cost a few per cent of one core."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

REPLY_TIMEOUT_S = 60.0
EPSILON_LABEL = "Projected ε"


@dataclass
class Reply:
    """What one script run sent back: the ε shown, widget ids by label, download links by label, the keys of
    the charts drawn, success notices, errors, and timings."""

    page_hash: str = ""
    pages: dict[str, str] = field(default_factory=dict)
    epsilon: Optional[str] = None
    epsilon_after: Optional[float] = None
    widgets: dict[str, str] = field(default_factory=dict)
    downloads: dict[str, str] = field(default_factory=dict)
    charts: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Client:
    """A light Streamlit client: sends reruns with widget states and reads the deltas that come back."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://") + "_stcore/stream"
        self.ws = None
        self.page_hash = ""
        self.pages: dict[str, str] = {}

    async def __aenter__(self) -> Client:
        import websockets

        self.ws = await websockets.connect(
            self.url, subprotocols=["streamlit"], max_size=None, open_timeout=REPLY_TIMEOUT_S
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def rerun(self, *, page: Optional[str] = None, widgets: Sequence = (), query: str = "") -> Reply:
        """Ask for a script run (on ``page``'s hash, with ``widgets`` states and the address's ``query`` string,
        as a share link has it) and read until it finishes."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        message = BackMsg()
        message.rerun_script.query_string = query
        message.rerun_script.page_script_hash = self.page_hash if page is None else page
        message.rerun_script.widget_states.widgets.extend(widgets)
        start = time.perf_counter()
        await self.ws.send(message.SerializeToString())
        reply = Reply()
        while True:
            forward = ForwardMsg()
            forward.ParseFromString(await asyncio.wait_for(self.ws.recv(), REPLY_TIMEOUT_S))
            kind = forward.WhichOneof("type")
            if kind == "new_session":
                self.page_hash = forward.new_session.page_script_hash
            elif kind == "navigation":
                self.page_hash = forward.navigation.page_script_hash or self.page_hash
                self.pages = {p.page_name: p.page_script_hash for p in forward.navigation.app_pages}
            elif kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
                self._read_element(forward.delta.new_element, reply, start)
            elif kind == "script_finished":
                reply.seconds = time.perf_counter() - start
                reply.page_hash, reply.pages = self.page_hash, dict(self.pages)
                return reply

    @staticmethod
    def _read_element(element, reply: Reply, start: float) -> None:
        from streamlit.proto.Alert_pb2 import Alert

        kind = element.WhichOneof("type")
        body = getattr(element, kind)
        if kind == "metric" and body.label == EPSILON_LABEL and reply.epsilon is None:
            reply.epsilon, reply.epsilon_after = body.body, time.perf_counter() - start
        elif kind == "exception":
            reply.errors.append(f"exception: {body.type}: {body.message}"[:200])
        elif kind == "alert" and body.format == Alert.ERROR:
            reply.errors.append(f"error: {body.body}"[:200])
        elif kind == "alert" and body.format == Alert.SUCCESS:
            reply.notices.append(body.body)
        elif kind == "plotly_chart":
            reply.charts.append(body.id)
        elif kind == "download_button":
            reply.downloads[body.label] = body.url
            reply.widgets[body.label] = body.id
        elif getattr(body, "id", "") and getattr(body, "label", ""):
            reply.widgets[body.label] = body.id


def slider_state(widget_id: str, value: float):
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    state = WidgetState(id=widget_id)
    state.double_array_value.data.append(value)
    return state


def text_state(widget_id: str, text: str):
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    return WidgetState(id=widget_id, string_value=text)


def number_state(widget_id: str, value: float):
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    return WidgetState(id=widget_id, double_value=value)


def choices_state(widget_id: str, options: Sequence[str]):
    """A multiselect's state: the chosen options as the widget shows them."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    state = WidgetState(id=widget_id)
    state.string_array_value.data.extend(options)
    return state


def trigger_state(widget_id: str):
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    return WidgetState(id=widget_id, trigger_value=True)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_for_runs(store_path: Path, expected: int, *, timeout: float) -> tuple[dict[str, int], float]:
    """Poll the store until ``expected`` runs have ended; their statuses and the seconds waited."""
    from dpcore.results import FINAL_STATUSES
    from dpcore.runs.store import RunStore

    store = RunStore(store_path)
    start = time.monotonic()
    while True:
        runs = store.list_runs()
        if len(runs) >= expected and all(r.status in FINAL_STATUSES for r in runs):
            break
        if time.monotonic() - start > timeout:
            break
        time.sleep(1.0)
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[run.status] = statuses.get(run.status, 0) + 1
    return statuses, time.monotonic() - start


async def warm_up(url: str) -> None:
    """One untimed visit first, so the server's own start-up (imports, first accountant query) is not the room's."""
    async with Client(url) as client:
        await client.rerun(page="")
