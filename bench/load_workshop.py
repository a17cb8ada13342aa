"""A room on one server: N participants move a slider while their runs train; latency, errors, memory.

Starts a real `streamlit run app.py` on a free port with a throwaway run store and connects N light
clients that speak Streamlit's own websocket protocol (the protobuf BackMsg/ForwardMsg a browser
exchanges with the server, without rendering anything). Each participant, joining at a random
moment in the first INTERVAL seconds:

1. opens the app and waits for Explore's "Projected ε" (page load, reported apart);
2. opens Train, types a name and joins, and clicks "Start training" (the default config: digits, MLP, 20 epochs);
3. back on Explore, about every INTERVAL seconds (±20 %) moves the "Noise multiplier" slider to a
   value nobody has used (so every move is a fresh accountant query, no cache hits) and times from
   sending the change to receiving the new "Projected ε" text.

Printed per N: p50/p95/max of those latencies, errors (error or exception elements, timeouts,
unchanged ε, dropped connections, runs that did not complete), the server's resident memory
(sampled twice a second, with its child processes), the clients' own CPU time, and when the last
run finished. Target (issue 10): no errors and p95 <= 1 s at N = 30 on 2 cores, every run finishing.

Why not browsers: ten Chromium contexts on the same 2 cores competed with the server (p95 8.2 s);
these clients cost a few per cent of one core. What they leave out is the browser's own rendering
(about 100-200 ms per change in bench/app_latency.py's headless Chromium) and the Train page's
one-second polling, which a participant watching Explore does not trigger.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.app_server import streamlit_server  # noqa: E402
from bench.room_client import (  # noqa: E402
    EPSILON_LABEL,
    REPLY_TIMEOUT_S,
    Client,
    percentile,
    slider_state,
    text_state,
    trigger_state,
    wait_for_runs,
    warm_up,
)

TARGET_P95_S = 1.0
DEFAULT_INTERVAL_S = 5.0
DEFAULT_MOVES = 12
RUNS_TIMEOUT_S = 1800.0
SLIDER_LABEL = "Noise multiplier"
START_LABEL = "Start training"
# Each participant types a name once (app_state.identity_form) before they can start a run.
NAME_LABEL = "Your name"
JOIN_LABEL = "Join"


@dataclass
class Participant:
    """One participant's measurements."""

    index: int
    load_seconds: Optional[float] = None
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started_run: bool = False


async def participant(url: str, p: Participant, *, interval: float, moves: int, count: int, train: bool) -> None:
    """One participant's session; every failure is recorded, none stops the others."""
    rng = random.Random(p.index)
    await asyncio.sleep(rng.uniform(0, interval))
    try:
        async with Client(url) as client:
            first = await client.rerun(page="")
            p.errors += first.errors
            p.load_seconds = first.epsilon_after
            explore = first.page_hash
            if train:
                train_page = client.pages.get("Train")
                if train_page is None:
                    p.errors.append(f"no Train page among {sorted(client.pages)}")
                    return
                on_train = await client.rerun(page=train_page)
                name_box, join = on_train.widgets.get(NAME_LABEL), on_train.widgets.get(JOIN_LABEL)
                if name_box is None or join is None:
                    p.errors.append("no name box and 'Join' button to join with")
                    return
                joined = await client.rerun(
                    page=train_page, widgets=(text_state(name_box, f"Participant {p.index}"), trigger_state(join))
                )
                p.errors += joined.errors
                start = joined.widgets.get(START_LABEL)
                if start is None:
                    p.errors.append("no 'Start training' button on Train")
                    return
                clicked = await client.rerun(page=train_page, widgets=(trigger_state(start),))
                p.errors += clicked.errors
                p.started_run = not clicked.errors
            back = await client.rerun(page=explore)
            slider, shown = back.widgets.get(SLIDER_LABEL), back.epsilon
            if slider is None:
                p.errors.append("no 'Noise multiplier' slider on Explore")
                return
            for move in range(moves):
                await asyncio.sleep(interval * rng.uniform(0.8, 1.2))
                # Fresh values: 0.05 apart per move, offset per participant.
                value = round(0.5 + 0.05 * move + 0.05 * p.index / count, 6)
                reply = await client.rerun(widgets=(slider_state(slider, value),))
                p.errors += reply.errors
                if reply.epsilon is None:
                    p.errors.append(f"no '{EPSILON_LABEL}' after moving the slider to {value}")
                    continue
                if reply.epsilon == shown:
                    p.errors.append(f"ε unchanged ({shown}) after moving the slider to {value}")
                shown = reply.epsilon
                p.latencies.append(reply.epsilon_after)
    except asyncio.TimeoutError:
        p.errors.append(f"no reply within {REPLY_TIMEOUT_S:.0f} s")
    except Exception as exc:  # noqa: BLE001 - a dropped connection is a finding, not a crash of the bench
        p.errors.append(f"{type(exc).__name__}: {exc}"[:200])


async def room(url: str, count: int, *, interval: float, moves: int, train: bool) -> list[Participant]:
    people = [Participant(index=i) for i in range(count)]
    await asyncio.gather(
        *(participant(url, p, interval=interval, moves=moves, count=count, train=train) for p in people)
    )
    return people


class MemorySampler:
    """The resident memory of a process and its descendants, read from /proc twice a second, and the
    machine's one-minute load average beside it (the machine may be shared: it says how crowded)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[int] = []
        self.loads: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.loads.append(os.getloadavg()[0])
            total = sum(_rss_bytes(pid) for pid in _tree(self.pid))
            if total:
                self.samples.append(total)


def _tree(pid: int) -> list[int]:
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            pids.append(child)
            frontier.append(child)
    return pids


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process itself has used so far, its children not included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    count: int,
    *,
    interval: float,
    moves: int,
    workers: Optional[int],
    train: bool,
    backend: Optional[str] = None,
    server_log: Optional[Path] = None,
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "runs.sqlite3"
        # Every client joins from this machine, one address: let all of them.
        env = {
            "DPEXPLORER_STORE": str(store_path),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "DPEXPLORER_JOINS_PER_ADDRESS": str(count),
        }
        if workers:
            env["DPEXPLORER_WORKERS"] = str(workers)
        if backend:
            env["DPEXPLORER_BACKEND"] = backend
        with streamlit_server(env=env, log_path=server_log or Path(tmp) / "streamlit.log") as server:
            asyncio.run(warm_up(server.url))
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
            server_cpu_before = _cpu_seconds(server.pid)
            wall_start = time.monotonic()
            with MemorySampler(server.pid) as memory:
                people = asyncio.run(room(server.url, count, interval=interval, moves=moves, train=train))
                room_seconds = time.monotonic() - wall_start
                server_cpu = _cpu_seconds(server.pid) - server_cpu_before
                started = sum(p.started_run for p in people)
                statuses, waited = wait_for_runs(store_path, started, timeout=RUNS_TIMEOUT_S)
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    latencies = [x for p in people for x in p.latencies]
    errors = [e for p in people for e in p.errors]
    not_completed = sum(n for status, n in statuses.items() if status != "completed")
    if not_completed:
        errors.append(f"{not_completed} runs did not complete: {statuses}")
    loads = [p.load_seconds for p in people if p.load_seconds is not None]
    client_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    return {
        "participants": count,
        "changes": len(latencies),
        "errors": errors,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p95": percentile(latencies, 0.95) if latencies else float("nan"),
        "max": max(latencies) if latencies else float("nan"),
        "load_p50": statistics.median(loads) if loads else float("nan"),
        "load_max": max(loads) if loads else float("nan"),
        "memory_peak": max(memory.samples, default=0),
        "memory_first": memory.samples[0] if memory.samples else 0,
        "runs": statuses,
        "runs_started": started,
        "last_run_after": room_seconds + waited,
        "room_seconds": room_seconds,
        "client_cpu_share": client_cpu / max(room_seconds, 1e-9),
        # The server process's own CPU (training children apart) while the room ran, per slider change:
        # joins, run submissions and page loads are in it too, so it is an upper bound.
        "server_cpu_per_change": server_cpu / max(len(latencies), 1),
        "load_min": min(memory.loads, default=math.nan),
        "load_max_avg": max(memory.loads, default=math.nan),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--participants",
        type=int,
        nargs="+",
        default=[1, 10, 30],
        help="room sizes to measure, one server each (default 1 10 30)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_S,
        help="seconds between one participant's slider moves (default 5)",
    )
    parser.add_argument("--moves", type=int, default=DEFAULT_MOVES, help="slider moves per participant (default 12)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="training workers (default: the server's own default, the machine's cores)",
    )
    parser.add_argument(
        "--backend",
        choices=("process", "local"),
        default=None,
        help="where runs train (default: the server's own default, child processes)",
    )
    parser.add_argument(
        "--server-log",
        type=Path,
        default=None,
        help="keep the server's log in this file (default: thrown away with the store)",
    )
    parser.add_argument(
        "--no-training",
        action="store_true",
        help="participants only move the slider (no runs), to tell the UI's cost from training's",
    )
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"{os.cpu_count()} cores, load average {load:.1f} before the first room; "
        f"slider moves every {args.interval:g} s, {args.moves} per participant; "
        f"{'no runs' if args.no_training else 'one run each'}"
    )
    print(
        f"{'N':>3} {'changes':>7} {'p50 s':>6} {'p95 s':>6} {'max s':>6} {'errors':>6} {'load p50 s':>10} "
        f"{'RSS MiB':>12} {'runs done':>10} {'last run s':>10} {'client CPU':>10} {'load avg':>10} "
        f"{'server CPU/change':>17}"
    )
    for count in args.participants:
        r = measure(
            count,
            interval=args.interval,
            moves=args.moves,
            workers=args.workers,
            train=not args.no_training,
            backend=args.backend,
            server_log=args.server_log,
        )
        completed = r["runs"].get("completed", 0)
        print(
            f"{r['participants']:>3} {r['changes']:>7} {r['p50']:>6.2f} {r['p95']:>6.2f} {r['max']:>6.2f} "
            f"{len(r['errors']):>6} {r['load_p50']:>10.2f} "
            f"{r['memory_first'] / 2**20:>5.0f}->{r['memory_peak'] / 2**20:<5.0f} "
            f"{completed:>4}/{r['runs_started']:<5} {r['last_run_after']:>10.0f} {r['client_cpu_share']:>9.1%} "
            f"{r['load_min']:>4.1f}-{r['load_max_avg']:<4.1f} {r['server_cpu_per_change'] * 1000:>14.0f} ms"
        )
        for error in sorted(set(r["errors"]))[:10]:
            print(f"      error: {error}")
        verdict = "met" if not r["errors"] and r["p95"] <= TARGET_P95_S else "NOT met"
        print(
            f"      target (no errors, p95 <= {TARGET_P95_S:g} s): {verdict} (p95 / target = {r['p95'] / TARGET_P95_S:.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
