"""The accountant's RDP in child processes (a served app): the same answers as in this process, really
computed elsewhere, and a pool process that dies is replaced without a wrong or missing answer."""

from __future__ import annotations

import os
import signal

import pytest

from dpcore.config import DPConfig
from dpcore.errors import UserInputError
from dpcore.privacy import accounting, composition

SIGMAS = (0.5123, 0.9377, 2.41)


@pytest.fixture()
def in_processes():
    accounting.clear_caches()
    composition.compute_rdp_in_processes(1)
    yield
    composition.compute_rdp_in_processes(0)
    accounting.clear_caches()


def _here(sigma: float) -> float:
    composition.compute_rdp_in_processes(0)
    accounting.clear_caches()
    try:
        return accounting.epsilon_for_config(DPConfig(noise_multiplier=sigma), n=1437)
    finally:
        accounting.clear_caches()


@pytest.mark.timeout(120)
def test_rdp_from_the_pool_is_the_same_and_computed_elsewhere(in_processes, monkeypatch):
    expected = {sigma: _here(sigma) for sigma in SIGMAS}
    composition.compute_rdp_in_processes(1)
    assert composition.rdp_process_count() == 1

    def not_here(*_):
        raise AssertionError("computed in the server process")

    monkeypatch.setattr(composition, "event_rdp", not_here)  # the pool's process has its own, unpatched module
    got = {sigma: accounting.epsilon_for_config(DPConfig(noise_multiplier=sigma), n=1437) for sigma in SIGMAS}
    assert got == expected
    curve = accounting.epsilon_curve_for_config(DPConfig(noise_multiplier=SIGMAS[0]), n=1437)
    assert curve[-1] == expected[SIGMAS[0]]


@pytest.mark.timeout(120)
def test_a_dead_accountant_process_is_replaced_and_the_answer_still_comes(in_processes):
    expected = {sigma: _here(sigma) for sigma in (1.2345, 1.4321)}
    composition.compute_rdp_in_processes(1)
    accounting.epsilon_for_config(DPConfig(noise_multiplier=3.3), n=1437)
    [first] = [child.pid for child in composition._RDP_PROCESSES._idle]
    assert first != os.getpid()
    os.kill(first, signal.SIGKILL)
    assert accounting.epsilon_for_config(DPConfig(noise_multiplier=1.2345), n=1437) == expected[1.2345]
    assert accounting.epsilon_for_config(DPConfig(noise_multiplier=1.4321), n=1437) == expected[1.4321]
    [second] = [child.pid for child in composition._RDP_PROCESSES._idle]
    assert second not in (first, os.getpid())


def test_the_process_count_is_checked():
    with pytest.raises(UserInputError, match="accountant_processes"):
        composition.compute_rdp_in_processes(-1)
    assert composition.rdp_process_count() == 0


@pytest.mark.timeout(120)
def test_the_child_does_not_run_the_parents_main_script(in_processes, monkeypatch, tmp_path):
    """Under Streamlit, __main__ is app.py: multiprocessing's "spawn" ran it again in every child."""
    import sys
    import types

    marker = tmp_path / "ran"
    script = tmp_path / "app.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n", encoding="utf-8")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    assert accounting.epsilon_for_config(DPConfig(noise_multiplier=2.7182), n=1437) > 0
    assert composition._RDP_PROCESSES._idle and not marker.exists()
