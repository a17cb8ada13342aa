"""Which process trains a run: a token of its pid and start time, so a run whose process died is found.

A pid alone can be reused by another process after a restart; the start time read from /proc tells
them apart (``mark_interrupted``).
"""

from __future__ import annotations

import os
import socket
from typing import Optional

# -- process identity ------------------------------------------------------------------


def _process_start_ticks(pid: int) -> Optional[str]:
    """The kernel's start time of ``pid`` (Linux /proc), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after it are plain.
    rest = text[text.rfind(")") + 2 :].split()
    if len(rest) < 20:
        return None
    if rest[0] in ("Z", "X"):  # a zombie or dead process is not running anything
        return "dead"
    return rest[19]


def process_token(pid: Optional[int] = None) -> str:
    """``host:pid:start`` naming a live process, so a reused pid is not mistaken for it."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_process_start_ticks(pid) or ''}"


def process_alive(token: str) -> bool:
    """Whether the process named by ``token`` still runs; a process on another host counts as alive."""
    host, _, rest = token.partition(":")
    pid_text, _, start = rest.partition(":")
    if not host or not pid_text.isdigit():
        return False
    if host != socket.gethostname():
        return True
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    now = _process_start_ticks(pid)
    if now == "dead":
        return False
    return not (start and now and now != start)
