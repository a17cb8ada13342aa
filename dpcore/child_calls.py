"""Calls of this library's functions in child interpreters, each with a deadline and a way to give it up.

A served app asks its accountant questions here instead of in the server process: a long one then
holds neither the server's GIL (its network loop and every other visitor's page) nor a thread that
SIGTERM would wait for. ``ChildCalls.call`` sends the function's name and arguments to an idle child
(``dpcore.child_process``; at most ``busy_limit`` compute at once, the rest wait their turn) and waits,
checking every ``POLL_SECONDS`` whether its deadline has passed or its caller gave up (a visitor who
left): then the child is killed at once and a new one starts for the next call. A person's mistake
in the child (a ``UserInputError``) comes back as the same error; any other failure as one line.
Answers and refusals are kept (at most ``KEPT_BYTES`` of them, pickled, the least recently used
going first; none larger than ``KEPT_ANSWER_BYTES``), so a page drawn again asks nothing again, and a
call that ran out of time is not started again for the same arguments for ``TIMEOUT_KEPT_SECONDS``
(a busy moment passes; a page reloaded over and over does not start it each time).
"""

from __future__ import annotations

import importlib
import math
import pickle
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Hashable
from multiprocessing.connection import Connection
from typing import Any, Callable, Optional, TypeVar

from dpcore.child_process import ChildProcess
from dpcore.errors import UserInputError, describe_exception

POLL_SECONDS = 0.1
KEPT_BYTES = 32 * 2**20
KEPT_ANSWER_BYTES = 256 * 2**10
TIMEOUT_KEPT_SECONDS = 600.0
# Children compute at a lower priority than the server, whose network loop must stay responsive.
CHILD_NICE = 5
# Only this library's functions may be named in a call.
_CALLABLE_PACKAGE = "dpcore."
T = TypeVar("T")


class CallTimedOut(UserInputError):
    """A call still unanswered at its deadline: the child was stopped."""


class CallAbandoned(Exception):
    """The caller gave up on a call (``cancelled`` said so): the child was stopped, nothing answers."""


def serve(conn: Connection) -> None:
    """A child's life (``child_process`` calls it): run one call at a time until the pipe closes.

    The first message may be ("setup", module, function, args, kwargs): run once before any call,
    unanswered; if it fails, the child ends (its caller sees the pipe close).
    """
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        kind, module_name, function_name, args, kwargs = request
        if kind == "setup":
            _function(module_name, function_name)(*args, **kwargs)
            continue
        try:
            answer: tuple[Any, ...] = ("ok", _function(module_name, function_name)(*args, **kwargs))
        except UserInputError as exc:
            answer = _refusal(exc)
        except Exception as exc:  # noqa: BLE001 - any failure goes back to the caller as one line
            traceback.print_exc(file=sys.stderr)  # the server's log keeps the traceback
            answer = ("failed", describe_exception(exc))
        try:
            conn.send(answer)
        except (EOFError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 - an answer that cannot be pickled
            conn.send(("failed", describe_exception(exc)))


def _refusal(exc: UserInputError) -> tuple[Any, ...]:
    """A UserInputError as a picklable answer (its class by name, its field, message and allowed values)."""
    return ("user", type(exc).__module__, type(exc).__qualname__, exc.field, str(exc), exc.allowed)


def _function(module_name: str, function_name: str) -> Callable[..., Any]:
    if not module_name.startswith(_CALLABLE_PACKAGE) or "." in function_name:
        raise ValueError(f"{module_name}.{function_name} is not a function of this library")
    return getattr(importlib.import_module(module_name), function_name)


def _error(answer: tuple[Any, ...]) -> UserInputError:
    """The child's UserInputError, rebuilt as its own class where that is one (the message unchanged)."""
    _, module_name, class_name, field, text, allowed = answer
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        cls = UserInputError
    if not (isinstance(cls, type) and issubclass(cls, UserInputError)):
        cls = UserInputError
    error = cls.__new__(cls)
    ValueError.__init__(error, text)
    error.field, error.allowed = field, allowed
    return error


class ChildCalls:
    """Up to ``busy_limit`` children computing at once, ``idle_limit`` of them kept waiting between calls.

    ``setup`` ("module:function", args) runs in each new child before its first call, e.g. to give it
    the server's bounds.
    """

    def __init__(
        self,
        *,
        idle_limit: int,
        busy_limit: int,
        setup: Optional[tuple[str, tuple[Any, ...]]] = None,
        nice: int = CHILD_NICE,
    ) -> None:
        if busy_limit < 1 or idle_limit < 0:
            raise ValueError("ChildCalls needs busy_limit >= 1 and idle_limit >= 0")
        self.idle_limit, self.busy_limit, self.nice = idle_limit, busy_limit, nice
        self._setup = setup
        self._cond = threading.Condition()
        self._idle: list[ChildProcess] = []
        self._busy: set[ChildProcess] = set()
        self._closed = False
        self._starting = 0
        # key: (bytes, answer, monotonic time after which it is forgotten)
        self._answers: OrderedDict[Hashable, tuple[int, tuple[Any, ...], float]] = OrderedDict()
        self._kept_bytes = 0

    def call(
        self,
        function: Callable[..., T],
        *args: Any,
        deadline_seconds: float,
        timeout_error: Callable[[float], UserInputError],
        cancelled: Callable[[], bool] = lambda: False,
        on_wait: Optional[Callable[[float], None]] = None,
        **kwargs: Any,
    ) -> T:
        """``function(*args, **kwargs)`` computed in a child; its answer, or its UserInputError.

        Past ``deadline_seconds`` (waiting for a free child included) the child is killed and
        ``timeout_error(seconds)`` raised; when ``cancelled()`` turns true, CallAbandoned. ``on_wait``
        is called with the seconds waited so far at every check (it may raise to give up, too).
        """
        key = _key(function, args, kwargs)
        kept = self._kept(key)
        if kept is not None:
            return _answer(function, kept)
        start = time.monotonic()

        def check() -> None:
            waited = time.monotonic() - start
            if cancelled():
                raise CallAbandoned(f"{function.__name__} was given up after {waited:.1f} s")
            if waited > deadline_seconds:
                error = timeout_error(deadline_seconds)
                refusal = _refusal(error)
                self._keep(key, refusal, len(pickle.dumps(refusal)), expires=TIMEOUT_KEPT_SECONDS)
                raise error
            if on_wait is not None:
                on_wait(waited)

        child = self._take(check)
        healthy = False
        try:
            child.conn.send(("call", function.__module__, function.__name__, args, kwargs))
            while not child.conn.poll(POLL_SECONDS):
                check()
            raw = child.conn.recv_bytes()
            healthy = True
        except (EOFError, OSError):
            raise UserInputError(
                "accountant",
                f"the process computing {function.__name__} ended before answering (exit code {child.exitcode})",
                allowed="asking again; a smaller query if it ran out of memory",
            ) from None
        finally:
            self._give_back(child, healthy=healthy)
        answer = pickle.loads(raw)  # from this library's own child
        if answer[0] != "failed":
            self._keep(key, answer, len(raw))
        return _answer(function, answer)

    def _kept(self, key: Optional[Hashable]) -> Optional[tuple[Any, ...]]:
        if key is None:
            return None
        with self._cond:
            if key not in self._answers:
                return None
            size, answer, until = self._answers[key]
            if time.monotonic() > until:
                del self._answers[key]
                self._kept_bytes -= size
                return None
            self._answers.move_to_end(key)
            return answer

    def _keep(self, key: Optional[Hashable], answer: tuple[Any, ...], size: int, *, expires: float = math.inf) -> None:
        if key is None or size > KEPT_ANSWER_BYTES:
            return
        with self._cond:
            if key in self._answers:
                self._kept_bytes -= self._answers.pop(key)[0]
            self._answers[key] = (size, answer, time.monotonic() + expires)
            self._kept_bytes += size
            while self._kept_bytes > KEPT_BYTES:
                self._kept_bytes -= self._answers.popitem(last=False)[1][0]

    def _take(self, check: Callable[[], None]) -> ChildProcess:
        """An idle child, a new one while fewer than ``busy_limit`` compute, or the next to come back."""
        while True:
            with self._cond:
                if self._closed:
                    raise RuntimeError("these child calls have been closed")
                while self._idle:
                    child = self._idle.pop()
                    if child.is_alive():
                        self._busy.add(child)
                        return child
                if len(self._busy) + self._starting < self.busy_limit:
                    self._starting += 1
                    break
                self._cond.wait(POLL_SECONDS)
            check()  # outside the lock: it may call back into the caller's framework
        try:
            child = ChildProcess("dpcore.child_calls:serve", nice=self.nice)
        finally:
            with self._cond:
                self._starting -= 1
        with self._cond:
            self._busy.add(child)
        if self._setup is not None:
            module_name, _, function_name = self._setup[0].partition(":")
            child.conn.send(("setup", module_name, function_name, self._setup[1], {}))
        return child

    def _give_back(self, child: ChildProcess, *, healthy: bool) -> None:
        with self._cond:
            self._busy.discard(child)
            keep = healthy and not self._closed and len(self._idle) < self.idle_limit
            if keep:
                self._idle.append(child)
            self._cond.notify_all()
        if keep:
            return
        if healthy:
            child.end()  # idle: it leaves when its pipe closes
        else:
            child.kill()  # still computing, or dead: stopped at once

    def close(self) -> None:
        """Stop every child, idle or computing; calls waiting for one are refused."""
        with self._cond:
            self._closed = True
            children = self._idle + list(self._busy)
            self._idle = []
            self._cond.notify_all()
        for child in children:
            child.kill()

    def pids(self) -> list[int]:
        """The process ids of the children now alive (idle and computing)."""
        with self._cond:
            return [child.pid for child in self._idle + list(self._busy) if child.is_alive()]


def _answer(function: Callable[..., T], answer: tuple[Any, ...]) -> T:
    """The value of a child's answer, or the error it stands for."""
    if answer[0] == "ok":
        return answer[1]
    if answer[0] == "user":
        raise _error(answer)
    raise UserInputError("accountant", f"{function.__name__} failed: {answer[1]}")


def _key(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Optional[Hashable]:
    """The call as a key for the kept answers; None when an argument cannot be a key."""
    key = (function.__module__, function.__name__, args, tuple(sorted(kwargs.items())))
    try:
        hash(key)
    except TypeError:
        return None
    return key
