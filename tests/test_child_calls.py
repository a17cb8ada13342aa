"""dpcore.child_calls: library functions answered in child processes, stopped at their deadline or when
their caller gives up, with the child's refusals passed on as the same errors."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from dpcore import child_calls
from dpcore.child_calls import CallAbandoned, CallTimedOut, ChildCalls
from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.privacy import accounting, limits
from dpcore.privacy.limits import AccountingError
from tests.conftest import wait_until

# A schedule through 144 noise levels: RDP computes each level's step RDP, tens of seconds in all.
MANY_LEVELS = DPConfig(noise_multiplier=5.0, noise_schedule="step", noise_decay_rate=0.005, noise_floor=0.3, epochs=100)


def _timeout(seconds: float) -> UserInputError:
    return CallTimedOut("accountant", f"more than {seconds:g} s", allowed="less")


@pytest.fixture
def calls():
    pool = ChildCalls(idle_limit=1, busy_limit=2)
    yield pool
    pool.close()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_answer_is_this_process_answer_computed_in_a_child(calls, monkeypatch):
    config = DPConfig(noise_multiplier=1.2345)
    expected = accounting.epsilon_report_for_config(config, n=1437)
    accounting.clear_caches()

    def not_here(*_args, **_kwargs):
        raise AssertionError("computed in the calling process")

    monkeypatch.setattr(accounting, "composed_epsilon", not_here)  # the child imports its own, unpatched
    answer = calls.call(
        accounting.epsilon_report_for_config, config, n=1437, deadline_seconds=60, timeout_error=_timeout
    )
    assert answer == expected
    [child] = calls.pids()
    assert child != os.getpid()


def test_a_refusal_comes_back_as_the_same_error(calls):
    with pytest.raises(AccountingError) as caught:
        calls.call(
            accounting.epsilon,
            n=1437,
            batch_size=64,
            noise_multiplier=0.001,
            epochs=1,
            delta=1e-5,
            accountant="pld",
            deadline_seconds=60,
            timeout_error=_timeout,
        )
    assert caught.value.field == "noise_multiplier" and "too small for the PLD accountant" in str(caught.value)
    assert str(caught.value).startswith("noise_multiplier: ") and caught.value.allowed


def test_past_its_deadline_a_call_is_refused_and_its_child_killed(calls):
    seen: list[int] = []
    with pytest.raises(CallTimedOut, match=r"^accountant: more than 0.5 s"):
        calls.call(
            accounting.epsilon_for_config,
            MANY_LEVELS,
            n=1437,
            deadline_seconds=0.5,
            timeout_error=_timeout,
            on_wait=lambda waited: seen.extend(calls.pids()),
        )
    assert seen and all(_gone(pid) for pid in set(seen)) and calls.pids() == []
    # Kept for a while: the same question is refused again at once, without a child.
    with pytest.raises(CallTimedOut):
        calls.call(accounting.epsilon_for_config, MANY_LEVELS, n=1437, deadline_seconds=0.5, timeout_error=_timeout)
    assert calls.pids() == []
    [(size, _, until)] = calls._answers.values()
    assert until - time.monotonic() <= child_calls.TIMEOUT_KEPT_SECONDS


def test_a_kept_time_out_is_forgotten_after_its_while(calls, monkeypatch):
    monkeypatch.setattr(child_calls, "TIMEOUT_KEPT_SECONDS", 0.0)
    waited_in: set[int] = set()  # the attempts that waited for a child's answer
    for attempt in range(2):
        with pytest.raises(CallTimedOut):
            calls.call(
                accounting.epsilon_for_config,
                MANY_LEVELS.replace(noise_floor=0.34),
                n=1437,
                deadline_seconds=0.5,
                timeout_error=_timeout,
                on_wait=lambda waited, attempt=attempt: waited_in.add(attempt),
            )
    assert waited_in == {0, 1}  # the second was computed again, not refused from what was kept


def test_a_call_its_caller_gives_up_is_stopped_at_once(calls):
    seen: list[int] = []
    with pytest.raises(CallAbandoned):
        calls.call(
            accounting.epsilon_for_config,
            MANY_LEVELS.replace(noise_floor=0.31),
            n=1437,
            deadline_seconds=600,
            timeout_error=_timeout,
            on_wait=lambda waited: seen.extend(calls.pids()),
            cancelled=lambda: bool(seen),
        )
    assert seen and all(_gone(pid) for pid in set(seen))
    # The next question gets a new child and its answer.
    assert (
        calls.call(
            accounting.epsilon,
            n=1437,
            batch_size=64,
            noise_multiplier=1.1,
            epochs=3,
            delta=1e-5,
            deadline_seconds=60,
            timeout_error=_timeout,
        )
        > 0
    )


def test_answers_are_kept_and_asked_once(calls, monkeypatch):
    args = dict(n=1437, batch_size=64, noise_multiplier=1.5, epochs=3, delta=1e-5)
    first = calls.call(accounting.epsilon, **args, deadline_seconds=60, timeout_error=_timeout)

    def no_child(*_args, **_kwargs):
        raise AssertionError("a child was asked again")

    monkeypatch.setattr(ChildCalls, "_take", no_child)
    assert calls.call(accounting.epsilon, **args, deadline_seconds=60, timeout_error=_timeout) == first


def test_the_kept_answers_are_bounded_in_bytes(calls, monkeypatch):
    def ask(sigma: float) -> float:
        return calls.call(
            accounting.epsilon,
            n=1437,
            batch_size=64,
            noise_multiplier=sigma,
            epochs=3,
            delta=1e-5,
            deadline_seconds=60,
            timeout_error=_timeout,
        )

    monkeypatch.setattr(child_calls, "KEPT_BYTES", 60)  # an ε answer pickles to under 30 bytes
    for sigma in (1.11, 1.22, 1.33):
        ask(sigma)
    assert 0 < calls._kept_bytes <= 60 and len(calls._answers) == 2  # the oldest went first
    monkeypatch.setattr(child_calls, "KEPT_ANSWER_BYTES", 10)
    ask(1.44)
    assert len(calls._answers) == 2  # too large to keep


def test_only_this_librarys_functions_may_be_called(calls):
    with pytest.raises(UserInputError, match="getcwd failed: .*not a function of this library"):
        calls.call(os.getcwd, deadline_seconds=60, timeout_error=_timeout)


def test_a_child_killed_from_outside_is_reported_and_replaced(calls):
    seen: list[int] = []

    def kill_it(waited: float) -> None:
        if not seen:
            seen.extend(calls.pids())
            os.kill(seen[0], signal.SIGKILL)

    with pytest.raises(UserInputError, match=r"^accountant: the process computing epsilon_for_config ended"):
        calls.call(
            accounting.epsilon_for_config,
            MANY_LEVELS.replace(noise_floor=0.32),
            n=1437,
            deadline_seconds=600,
            timeout_error=_timeout,
            on_wait=kill_it,
        )
    assert (
        calls.call(
            accounting.epsilon,
            n=1437,
            batch_size=64,
            noise_multiplier=1.7,
            epochs=3,
            delta=1e-5,
            deadline_seconds=60,
            timeout_error=_timeout,
        )
        > 0
    )


def test_the_setup_holds_the_childs_queries_to_the_servers_bound():
    pool = ChildCalls(idle_limit=1, busy_limit=1, setup=("dpcore.privacy.limits:limit_query_seconds", (2.0,)))
    try:
        with pytest.raises(
            AccountingError, match=r"^noise_schedule: the RDP accountant would need .*(the bound is 2 s)"
        ):
            pool.call(accounting.epsilon_for_config, MANY_LEVELS, n=1437, deadline_seconds=60, timeout_error=_timeout)
    finally:
        pool.close()
    assert limits.query_seconds() == limits.MAX_QUERY_SECONDS  # this process's bound is its own


def test_at_most_busy_limit_children_compute_and_a_waiting_call_keeps_its_deadline():
    pool = ChildCalls(idle_limit=0, busy_limit=1)
    started = threading.Event()
    outcome: dict[str, BaseException] = {}

    def long_call() -> None:
        try:
            pool.call(
                accounting.epsilon_for_config,
                MANY_LEVELS.replace(noise_floor=0.33),
                n=1437,
                deadline_seconds=600,
                timeout_error=_timeout,
                on_wait=lambda waited: started.set(),
                cancelled=lambda: "stop" in outcome,
            )
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion below
            outcome["long"] = exc

    thread = threading.Thread(target=long_call)
    thread.start()
    try:
        wait_until(started.is_set, what="the first call to be computing")
        with pytest.raises(CallTimedOut):  # no free child within its deadline: refused, nothing started
            pool.call(
                accounting.epsilon,
                n=1437,
                batch_size=64,
                noise_multiplier=1.9,
                epochs=3,
                delta=1e-5,
                deadline_seconds=0.5,
                timeout_error=_timeout,
            )
        assert len(pool.pids()) == 1
    finally:
        outcome["stop"] = RuntimeError("stop")
        thread.join()
        pool.close()
    assert isinstance(outcome["long"], CallAbandoned)


def test_the_callable_package_is_this_library():
    assert child_calls._CALLABLE_PACKAGE == "dpcore."
