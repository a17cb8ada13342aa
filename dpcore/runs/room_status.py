"""The host's view of the room at a glance: who is here, what is queued and training, and the server's load.

Read on each page load of the host's panel from this server's runner, its store and the machine
(``os.getloadavg``, ``/proc/meminfo`` where Linux has it, the free space of the store's disk).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from dpcore.runs.jobs import JobRunner
from dpcore.runs.owners import Person, people


@dataclass(frozen=True)
class ActiveRun:
    """One run or audit queued or training: who it is for and since when (Unix seconds)."""

    id: int
    name: str
    kind: str  # "train", or "audit" for an audit asked for after the run ended
    owner: str
    owner_name: str
    state: str  # "queued" or "running"
    since: float  # when it was submitted (queued) or started (running)


@dataclass(frozen=True)
class ServerLoad:
    """The machine's load as this server process sees it; None where the system does not say."""

    load_1m: Optional[float]
    cpus: int
    memory_available_bytes: Optional[int]
    memory_total_bytes: Optional[int]
    disk_free_bytes: Optional[int]
    disk_total_bytes: Optional[int]
    workers_busy: int
    workers_total: int


@dataclass(frozen=True)
class RoomStatus:
    """Everyone who joined, every run queued or training (training first, then in queue order), the load."""

    people: tuple[Person, ...]
    active: tuple[ActiveRun, ...]
    load: ServerLoad


def room_status(runner: JobRunner, *, last_seen: Optional[Mapping[str, float]] = None) -> RoomStatus:
    """The room now: ``owners.people`` (with ``last_seen``), the runner's queued and training jobs, the server's load."""
    names = runner.store.display_names()
    jobs = runner.list_jobs() + runner.active_audits()
    active = [
        ActiveRun(
            id=job.id,
            name=job.name,
            kind=job.kind,
            owner=job.owner,
            owner_name=names.get(job.owner, ""),
            state=job.state,
            since=(job.started or job.submitted) if job.state == "running" else job.submitted,
        )
        for job in jobs
        if job.state in ("queued", "running")
    ]
    active.sort(key=lambda run: (run.state != "running", run.since, run.id))
    busy = sum(1 for run in active if run.state == "running")
    return RoomStatus(
        people=tuple(people(runner, last_seen=last_seen)),
        active=tuple(active),
        load=server_load(runner.store.path, workers_busy=busy, workers_total=runner.workers),
    )


def server_load(store_path: Path, *, workers_busy: int, workers_total: int) -> ServerLoad:
    """The 1-minute load average, memory and the free space where the store lives (None where unknown)."""
    try:
        load_1m: Optional[float] = os.getloadavg()[0]
    except (OSError, AttributeError):
        load_1m = None
    available, total = _memory()
    try:
        disk = shutil.disk_usage(Path(store_path).parent)
        disk_free: Optional[int] = disk.free
        disk_total: Optional[int] = disk.total
    except OSError:
        disk_free = disk_total = None
    return ServerLoad(
        load_1m=load_1m,
        cpus=os.cpu_count() or 1,
        memory_available_bytes=available,
        memory_total_bytes=total,
        disk_free_bytes=disk_free,
        disk_total_bytes=disk_total,
        workers_busy=workers_busy,
        workers_total=workers_total,
    )


def _memory() -> tuple[Optional[int], Optional[int]]:
    """(available, total) bytes of memory from /proc/meminfo; (None, None) where there is none."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    fields[key] = int(parts[0]) * 1024  # the file counts kB
    except OSError:
        return None, None
    return fields.get("MemAvailable"), fields.get("MemTotal")
