"""Latency of dpcore's ε and calibration over slider-like settings, next to direct dp_accounting calls.

Prints median and p95 in milliseconds, cold (first query of a setting) and cached (repeated), and the
ratio to calling dp_accounting directly in the same run. Targets: RDP median <= 20 ms cold and <= 1 ms
cached; interactive PLD <= 150 ms; calibration <= 1 s.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dp_accounting  # noqa: E402
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

from dpcore.privacy import accounting, calibration, events, limits

N = 60000
DELTA = 1e-5
GRID = list(itertools.product((0.6, 0.8, 1.0, 1.2, 1.5, 2.0), (64, 128, 256, 512), (1, 5, 15, 60)))
CALIBRATION_GRID = list(itertools.product((0.5, 1.0, 3.0, 8.0), (128, 256), (5, 30)))


def _timed(calls: Iterable[Callable[[], object]], *, cold: bool = False) -> list[float]:
    times = []
    for call in calls:
        if cold:
            accounting.clear_caches()
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def _summary(label: str, times: list[float], reference: list[float] | None = None, target: str = "") -> None:
    median = statistics.median(times)
    p95 = sorted(times)[max(0, int(round(0.95 * len(times))) - 1)]
    line = f"{label:<40} median {median:9.3f} ms   p95 {p95:9.3f} ms"
    if reference:
        line += f"   x{median / statistics.median(reference):.2f} of direct dp_accounting"
    if target:
        line += f"   (target {target})"
    print(line, flush=True)


def _direct(accountant: str, sigma: float, batch: int, epochs: int, grid: float) -> float:
    steps = events.dp_steps(n=N, batch_size=batch, epochs=epochs, sampling="poisson")
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(batch / N, dp_accounting.GaussianDpEvent(sigma)), steps
    )
    if accountant == "rdp":
        return rdp_privacy_accountant.RdpAccountant().compose(event).get_epsilon(DELTA)
    return pld_privacy_accountant.PLDAccountant(value_discretization_interval=grid).compose(event).get_epsilon(DELTA)


def _query(accountant: str, interactive: bool) -> list[Callable[[], object]]:
    return [
        (
            lambda s=s, b=b, e=e: accounting.epsilon(
                n=N,
                batch_size=b,
                noise_multiplier=s,
                epochs=e,
                delta=DELTA,
                accountant=accountant,
                interactive=interactive,
            )
        )
        for s, b, e in GRID
    ]


def main() -> None:
    print(f"{len(GRID)} settings: n={N}, noise x batch x epochs; δ={DELTA:g}")
    rdp_direct = _timed([(lambda s=s, b=b, e=e: _direct("rdp", s, b, e, 0)) for s, b, e in GRID])
    _summary("dp_accounting RdpAccountant (direct)", rdp_direct)
    _summary("dpcore RDP cold", _timed(_query("rdp", False), cold=True), rdp_direct, "<= 20 ms")
    _timed(_query("rdp", False))
    _summary("dpcore RDP cached", _timed(_query("rdp", False)), rdp_direct, "<= 1 ms")

    pld_grid = limits.INTERACTIVE_PLD_INTERVAL
    pld_direct = _timed([(lambda s=s, b=b, e=e: _direct("pld", s, b, e, pld_grid)) for s, b, e in GRID])
    _summary(f"dp_accounting PLDAccountant grid {pld_grid:g}", pld_direct)
    _summary("dpcore PLD interactive cold", _timed(_query("pld", True), cold=True), pld_direct, "<= 150 ms")
    _timed(_query("pld", True))
    _summary("dpcore PLD interactive cached", _timed(_query("pld", True)), pld_direct)
    sample = GRID[::8]
    precise_direct = _timed([(lambda s=s, b=b, e=e: _direct("pld", s, b, e, 1e-4)) for s, b, e in sample])
    _summary("dp_accounting PLDAccountant grid 1e-4", precise_direct)
    _summary(
        "dpcore PLD precise cold",
        _timed(
            [
                (
                    lambda s=s, b=b, e=e: accounting.epsilon(
                        n=N, batch_size=b, noise_multiplier=s, epochs=e, delta=DELTA, accountant="pld"
                    )
                )
                for s, b, e in sample
            ],
            cold=True,
        ),
        precise_direct,
    )

    curve = _timed(
        [
            (
                lambda s=s, b=b, e=e: accounting.epsilon_per_epoch(
                    n=N, batch_size=b, noise_multiplier=s, epochs=e, delta=DELTA
                )
            )
            for s, b, e in GRID
            if e == 60
        ],
        cold=True,
    )
    _summary("dpcore RDP per-epoch curve (60 epochs)", curve)

    for accountant, interactive in (("rdp", False), ("pld", True)):
        times = _timed(
            [
                (
                    lambda t=t, b=b, e=e, a=accountant, i=interactive: calibration.calibrate_noise(
                        target_epsilon=t,
                        n=N,
                        batch_size=b,
                        epochs=e,
                        delta=DELTA,
                        accountant=a,
                        interactive=i,
                    )
                )
                for t, b, e in CALIBRATION_GRID
            ],
            cold=True,
        )
        _summary(
            f"dpcore calibrate {accountant}{' interactive' if interactive else ''} cold", times, target="<= 1000 ms"
        )


if __name__ == "__main__":
    main()
