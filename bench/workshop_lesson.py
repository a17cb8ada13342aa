"""The workshop lesson (docs/workshop.md) played by a host and N participants on one real server; one JSON line.

Starts `streamlit run app.py` on a free port with its own throwaway run store and the lesson's server
settings (a host secret, the lesson's limits), then connects light websocket clients
(bench/room_client.py: the protocol a browser speaks, without rendering). Before the room arrives, one
lone participant moves the "Noise multiplier" slider to fresh values: the reference latency. Then the
host joins and unlocks the host panel, and each participant, arriving at a random moment in the first
INTERVAL seconds:

1. opens the lesson's share link (a tiny digits run: 1 epoch of 300 examples) on Explore;
2. on Train, types a name, joins and clicks "Start training" (audited when it ends, as digits runs are);
3. on Explore, moves the noise slider to a value nobody has used, MOVES times about INTERVAL s apart, timing
   from sending the change to receiving the new "Projected ε" (a fresh accountant query every time);
4. one in SWEEP_EVERY starts a sweep over σ (two values, two seeds each) on the Sweep page;
5. opens Compare (everyone's runs: the chart must be drawn) and Export (the JSON download must parse
   back into the config it trained).

Every page opened is a page load (the script run's time, from the request to its last element). Then the
bench waits until every accepted run has ended and counts those that completed. "errors" is anything a
participant saw as an exception or an error message other than a refusal by the room's limits (those are
"refused_by_limits"), timeouts, dropped connections, unchanged ε, a missing chart or a bad export.

Target on 2 cores: N = 30 with the lesson's runs training, 0 errors, every accepted run completed,
slider-to-ε p95 <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.app_server import streamlit_server  # noqa: E402
from bench.room_client import (  # noqa: E402
    EPSILON_LABEL,
    REPLY_TIMEOUT_S,
    Client,
    Reply,
    number_state,
    percentile,
    slider_state,
    text_state,
    trigger_state,
    wait_for_runs,
    warm_up,
)
from dpcore.config import DPConfig  # noqa: E402
from dpcore.export import share  # noqa: E402
from dpcore.runs.sweeps import SWEEP_KNOBS, knob_label  # noqa: E402

TARGET_P95_S = 1.0
DEFAULT_PARTICIPANTS = 30
DEFAULT_INTERVAL_S = 5.0
DEFAULT_MOVES = 6
REFERENCE_MOVES = 8
SWEEP_EVERY = 5
RUNS_TIMEOUT_S = 1800.0
CHART_TIMEOUT_S = 600.0
HOST_SECRET = "workshop-lesson-bench-secret"
# The lesson's run: digits (the default dataset and MLP), one epoch over 300 examples.
LESSON_RUN = DPConfig(epochs=1, batch_size=32, max_train_examples=300, learning_rate=0.5)
# The sweep of the lesson's σ section: two noise multipliers, two seeds each.
SWEEP_KNOB = SWEEP_KNOBS[0]  # the noise multiplier σ, the knob the Sweep page offers first
SWEEP_VALUES = "1, 2"
SWEEP_SEEDS = 2
SWEEP_RUNS = SWEEP_SEEDS * len(SWEEP_VALUES.split(","))
# The server settings docs/workshop.md starts the lesson's server with (beside the host secret and store):
# the defaults, written out: 1 training and 3 waiting per participant, a sweep counting once among them
# (so a run, its baseline and a sweep fit), and at most 24 runs per sweep.
LESSON_SETTINGS = {"DPEXPLORER_MAX_RUNNING": "1", "DPEXPLORER_MAX_QUEUED": "3", "DPEXPLORER_MAX_SWEEP_RUNS": "24"}
# Refusals by the room's limits name these fields (dpcore.runs.capacity.CapacityError).
LIMIT_FIELDS = ("runs:", "compute:", "sweep_runs:")


@dataclass
class Participant:
    """What one participant did and saw."""

    index: int
    sweeps: bool
    page_loads: list[tuple[str, float]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    runs_submitted: int = 0
    runs_accepted: int = 0
    sweeps_submitted: int = 0
    sweeps_accepted: int = 0


def _sort_errors(p: Participant, reply: Reply) -> bool:
    """File the reply's errors as refusals by the limits or errors; True when there was none of either."""
    for error in reply.errors:
        text = error.removeprefix("error: ")
        (p.refused if text.startswith(LIMIT_FIELDS) else p.errors).append(error)
    return not reply.errors


async def _open(client: Client, p: Participant, page: str, *, query: str = "") -> Reply:
    """Open a page by its title (the sidebar's), timing it as a page load."""
    target = client.pages.get(page)
    if target is None:
        raise LookupError(f"no {page} page among {sorted(client.pages)}")
    reply = await client.rerun(page=target, query=query)
    p.page_loads.append((page, reply.seconds))
    _sort_errors(p, reply)
    return reply


def _widget(reply: Reply, label: str) -> str:
    widget = reply.widgets.get(label)
    if widget is None:
        raise LookupError(f"no '{label}' on the page")
    return widget


async def _join(client: Client, p: Participant, name: str) -> Reply:
    """Open Train, type ``name`` and press Join, as each participant (and the host) does once."""
    on_train = await _open(client, p, "Train")
    joined = await client.rerun(
        widgets=(text_state(_widget(on_train, "Your name"), name), trigger_state(_widget(on_train, "Join")))
    )
    _sort_errors(p, joined)
    return joined


async def _join_and_train(client: Client, p: Participant, name: str) -> None:
    joined = await _join(client, p, name)
    p.runs_submitted += 1
    clicked = await client.rerun(widgets=(trigger_state(_widget(joined, "Start training")),))
    if _sort_errors(p, clicked):
        p.runs_accepted += 1


async def _move_sliders(client: Client, p: Participant, *, moves: int, interval: float, offset: float) -> None:
    """Move the noise slider to fresh values, timing each change until the new ε arrives."""
    rng = random.Random(p.index)
    explore = await _open(client, p, "Explore")
    slider, shown = _widget(explore, "Noise multiplier"), explore.epsilon
    for move in range(moves):
        await asyncio.sleep(interval * rng.uniform(0.8, 1.2))
        value = round(0.5 + 0.05 * move + offset, 6)
        reply = await client.rerun(widgets=(slider_state(slider, value),))
        _sort_errors(p, reply)
        if reply.epsilon is None or reply.epsilon_after is None:
            p.errors.append(f"no '{EPSILON_LABEL}' after moving the slider to {value}")
            continue
        if reply.epsilon == shown:
            p.errors.append(f"ε unchanged ({shown}) after moving the slider to {value}")
        shown = reply.epsilon
        p.latencies.append(reply.epsilon_after)


async def _sweep(client: Client, p: Participant) -> None:
    """Start the lesson's sweep over σ (the page's first knob): type its values and the seeds, press Start sweep."""
    page = await _open(client, p, "Sweep")
    states = (
        text_state(_widget(page, f"Values of {knob_label(SWEEP_KNOB)} (comma-separated)"), SWEEP_VALUES),
        number_state(_widget(page, "Seeds per setting"), SWEEP_SEEDS),
    )
    previewed = await client.rerun(widgets=states)
    _sort_errors(p, previewed)
    p.sweeps_submitted += 1
    started = await client.rerun(widgets=(*states, trigger_state(_widget(previewed, "Start sweep"))))
    if _sort_errors(p, started) and any(n.startswith("Sweep ") for n in started.notices):
        p.sweeps_accepted += 1


async def _compare_and_export(client: Client, p: Participant, url: str) -> None:
    """Open Compare (its accuracy-vs-ε chart must be drawn once a run has finished an epoch) and Export (the JSON must parse back into the
    lesson's run)."""
    compare = await _open(client, p, "Compare")
    waited = time.monotonic()
    while not compare.charts:  # until a run has finished its epoch, Compare says so instead of charting
        if time.monotonic() - waited > CHART_TIMEOUT_S:
            p.errors.append(f"Compare drew no chart within {CHART_TIMEOUT_S:.0f} s")
            break
        await asyncio.sleep(2.0)
        compare = await client.rerun()
        _sort_errors(p, compare)
    export = await _open(client, p, "Export")
    link = export.downloads.get("Download JSON")
    if not link:
        p.errors.append("no 'Download JSON' on Export")
        return
    text = await asyncio.to_thread(_fetch, url.rstrip("/") + link)
    exported = DPConfig.from_json(text)
    if (exported.dataset, exported.epochs, exported.max_train_examples) != (
        LESSON_RUN.dataset,
        LESSON_RUN.epochs,
        LESSON_RUN.max_train_examples,
    ):
        p.errors.append(f"the exported config is not the lesson's run: {json.loads(text)}"[:200])


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=REPLY_TIMEOUT_S) as response:
        return response.read().decode()


async def participant(url: str, p: Participant, *, count: int, interval: float, moves: int) -> None:
    """One participant's lesson; every failure is recorded, none stops the others."""
    await asyncio.sleep(random.Random(p.index).uniform(0, interval))
    try:
        async with Client(url) as client:
            first = await client.rerun(page="", query=urlencode(share.encode(LESSON_RUN)))
            p.page_loads.append(("Explore", first.seconds))
            _sort_errors(p, first)
            await _join_and_train(client, p, f"Participant {p.index}")
            await _move_sliders(client, p, moves=moves, interval=interval, offset=0.05 * p.index / count)
            if p.sweeps:
                await _sweep(client, p)
            await _compare_and_export(client, p, url)
    except asyncio.TimeoutError:
        p.errors.append(f"no reply within {REPLY_TIMEOUT_S:.0f} s")
    except Exception as exc:  # noqa: BLE001 - a dropped connection or a missing widget is a finding, not a crash
        p.errors.append(f"{type(exc).__name__}: {exc}"[:200])


async def host(url: str, errors: list[str]) -> None:
    """The host joins, unlocks the host panel with the secret and opens Compare with everyone's runs."""
    try:
        async with Client(url) as client:
            p = Participant(index=-1, sweeps=False)
            await client.rerun(page="")
            joined = await _join(client, p, "Host")
            unlocked = await client.rerun(
                widgets=(
                    text_state(_widget(joined, "Host secret"), HOST_SECRET),
                    trigger_state(_widget(joined, "Unlock")),
                )
            )
            if not any(n.startswith("Host role unlocked") for n in unlocked.notices):
                p.errors.append("the host secret did not unlock the host panel")
            await _open(client, p, "Compare")
            errors += p.errors + p.refused
    except Exception as exc:  # noqa: BLE001
        errors.append(f"host: {type(exc).__name__}: {exc}"[:200])


async def lone_reference(url: str, *, moves: int) -> list[float]:
    """Slider-to-ε latencies of one participant alone on the server, before the room arrives."""
    p = Participant(index=10_000, sweeps=False)
    async with Client(url) as client:
        await client.rerun(page="", query=urlencode(share.encode(LESSON_RUN)))
        await _move_sliders(client, p, moves=moves, interval=0.3, offset=0.0371)
    if p.errors:
        raise RuntimeError(f"the lone participant saw errors: {p.errors[:3]}")
    return p.latencies


async def room(url: str, count: int, *, interval: float, moves: int) -> tuple[list[Participant], list[str]]:
    people = [Participant(index=i, sweeps=i % SWEEP_EVERY == 0) for i in range(count)]
    host_errors: list[str] = []
    await asyncio.gather(
        host(url, host_errors),
        *(participant(url, p, count=count, interval=interval, moves=moves) for p in people),
    )
    return people, host_errors


def _sweeps_completed(store_path: Path) -> int:
    """Sweeps whose every run completed."""
    from dpcore.runs.store import RunStore

    store = RunStore(store_path)
    status = {r.id: r.status for r in store.list_runs()}
    return sum(1 for s in store.list_sweeps() if s.run_ids and all(status.get(i) == "completed" for i in s.run_ids))


def play_lesson(
    count: int,
    *,
    interval: float = DEFAULT_INTERVAL_S,
    moves: int = DEFAULT_MOVES,
    reference_moves: int = REFERENCE_MOVES,
    runs_timeout: float = RUNS_TIMEOUT_S,
    server_log: Optional[Path] = None,
    store_dir: Optional[Path] = None,
) -> dict:
    """Play the lesson with ``count`` participants on a fresh server (its store in ``store_dir``, else thrown
    away); the figures the bench prints."""
    wall_start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(store_dir or tmp) / "runs.sqlite3"
        if store_path.exists():
            raise FileExistsError(f"{store_path} exists: the lesson starts from an empty store")
        env = {
            **LESSON_SETTINGS,
            "DPEXPLORER_STORE": str(store_path),
            "DPEXPLORER_HOST_SECRET": HOST_SECRET,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            # Every client joins from this machine, one address: let all of them (and the host).
            "DPEXPLORER_JOINS_PER_ADDRESS": str(count + 1),
        }
        log_path = server_log or Path(tmp) / "streamlit.log"
        with streamlit_server(env=env, log_path=log_path) as server:
            asyncio.run(warm_up(server.url))
            reference = asyncio.run(lone_reference(server.url, moves=reference_moves)) if reference_moves else []
            people, host_errors = asyncio.run(room(server.url, count, interval=interval, moves=moves))
            accepted = sum(p.runs_accepted for p in people) + SWEEP_RUNS * sum(p.sweeps_accepted for p in people)
            statuses, _ = wait_for_runs(store_path, accepted, timeout=runs_timeout)
            sweeps_completed = _sweeps_completed(store_path)
        log_text = log_path.read_text()
    errors = host_errors + [e for p in people for e in p.errors]
    if "Traceback" in log_text:
        errors.append("a traceback in the server's log")
    refused = [e for p in people for e in p.refused]
    latencies = [x for p in people for x in p.latencies]
    loads = [seconds for p in people for _, seconds in p.page_loads]
    by_page: dict[str, list[float]] = {}
    for p in people:
        for page, seconds in p.page_loads:
            by_page.setdefault(page, []).append(seconds)
    runs_submitted = sum(p.runs_submitted for p in people)
    p95 = percentile(latencies, 0.95) if latencies else float("nan")
    reference_p50 = statistics.median(reference) if reference else None
    room_p50 = statistics.median(latencies) if latencies else float("nan")
    return {
        "participants": count,
        "runs_submitted": runs_submitted + SWEEP_RUNS * sum(p.sweeps_submitted for p in people),
        "runs_accepted": accepted,
        "runs_completed": statuses.get("completed", 0),
        "run_statuses": statuses,
        "sweeps_submitted": sum(p.sweeps_submitted for p in people),
        "sweeps_accepted": sum(p.sweeps_accepted for p in people),
        "sweeps_completed": sweeps_completed,
        "errors": len(errors),
        "error_messages": sorted(set(errors))[:10],
        "refused_by_limits": len(refused),
        "refusal_messages": sorted(set(refused))[:5],
        "slider_changes": len(latencies),
        "slider_to_eps_p50_s": round(room_p50, 3),
        "slider_to_eps_p95_s": round(p95, 3),
        "page_load_p50_s": round(statistics.median(loads), 3) if loads else None,
        "page_load_p50_by_page_s": {page: round(statistics.median(v), 3) for page, v in sorted(by_page.items())},
        "lone_slider_to_eps_p50_s": round(reference_p50, 3) if reference_p50 is not None else None,
        "room_to_lone_p50_ratio": round(room_p50 / reference_p50, 2) if reference_p50 else None,
        "target_met": not errors and statuses.get("completed", 0) == accepted and p95 <= TARGET_P95_S,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "wall_s": round(time.monotonic() - wall_start, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=DEFAULT_PARTICIPANTS, help="room size (default 30)")
    parser.add_argument(
        "--interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds between slider moves (default 5)"
    )
    parser.add_argument("--moves", type=int, default=DEFAULT_MOVES, help="slider moves per participant (default 6)")
    parser.add_argument(
        "--reference-moves",
        type=int,
        default=REFERENCE_MOVES,
        help="slider moves of the lone participant before the room arrives (default 8; 0: no reference)",
    )
    parser.add_argument("--server-log", type=Path, default=None, help="keep the server's log in this file")
    parser.add_argument(
        "--store-dir", type=Path, default=None, help="keep the run store in this folder (default: thrown away)"
    )
    args = parser.parse_args()
    result = play_lesson(
        args.participants,
        interval=args.interval,
        moves=args.moves,
        reference_moves=args.reference_moves,
        server_log=args.server_log,
        store_dir=args.store_dir,
    )
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
