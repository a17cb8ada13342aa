"""A fresh Python interpreter that runs one function of this library, connected to its parent by a pipe.

The served app's training and accountant processes are started this way rather than with
multiprocessing's "spawn": Streamlit installs app.py as the ``__main__`` module of every script
run, and "spawn" imports the parent's ``__main__`` in each child, which started a second app (and
job runner) in every child. Here the child runs ``python -m dpcore.child_process TARGET FD NICE``:
it imports only the target's module, lowers its own priority by NICE and calls ``target(conn)``
with its end of a socket pair wrapped as a ``multiprocessing.connection.Connection`` (pickled
messages). It leaves when the pipe closes or its parent dies.
"""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Optional

# A child checks this often whether the process that started it is still there.
PARENT_CHECK_SECONDS = 1.0
_LIBRARY_ROOT = str(Path(__file__).resolve().parents[1])


class ChildProcess:
    """``target`` ("module:function", taking the connection) running in a new interpreter niced by ``nice``."""

    def __init__(self, target: str, *, nice: int = 0) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([_LIBRARY_ROOT, *filter(None, [env.get("PYTHONPATH")])])
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "dpcore.child_process", target, str(theirs.fileno()), str(nice)],
                pass_fds=[theirs.fileno()],
                env=env,
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def exitcode(self) -> Optional[int]:
        """None while it runs; its exit code once it ended (minus the signal number if a signal ended it)."""
        return self._process.poll()

    def is_alive(self) -> bool:
        return self._process.poll() is None

    def kill(self) -> None:
        """Stop the process at once (SIGKILL), whatever it is doing, and close the pipe."""
        try:
            self._process.kill()
        except OSError:
            pass
        self._process.wait()
        try:
            self.conn.close()
        except OSError:
            pass

    def end(self, *, timeout: float = 10.0) -> None:
        """Close the pipe (a healthy child leaves on its own), then make sure the process is gone."""
        try:
            self.conn.close()
        except OSError:
            pass
        try:
            self._process.wait(timeout=timeout if self.is_alive() else 0)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=timeout)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def main(argv: list[str]) -> None:
    target, fd, nice = argv
    if int(nice):
        os.nice(int(nice))
    threading.Thread(target=_watch_parent, args=(os.getppid(),), name="dpcore-child-parent", daemon=True).start()
    module_name, function_name = target.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    function(Connection(int(fd)))


if __name__ == "__main__":
    main(sys.argv[1:])
