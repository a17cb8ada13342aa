"""What an accountant query will cost, estimated before it runs: its noise levels, its PLD grid and
compositions, and about how many seconds of one core they take.

RDP computes one step's Rényi divergences per noise level (``RDP_LEVEL_SECONDS`` each) and adds them
up; PLD builds one step's PLD per level and composes one block per run of equal σ (``pld_grid``).
A query estimated beyond ``limits.query_seconds()`` (``MAX_QUERY_SECONDS`` unless a served app's
accountant process was given its server's bound) is refused with an ``AccountingError`` naming the
setting to change (``check_seconds``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dpcore.privacy.events import epoch_blocks, sampling_probability, unit_count, whole_run_blocks
from dpcore.privacy.limits import RDP_LEVEL_SECONDS, AccountingError, query_seconds
from dpcore.privacy.noise import CONSTANT_NOISE, NoiseSchedule
from dpcore.privacy.pld_grid import plan_pld, pld_time_refusal


@dataclass(frozen=True)
class QueryWork:
    """An accountant query's estimated work: ``seconds`` of one core for ``levels`` noise levels and
    (PLD) ``compositions`` blocks composed on the grid ``grid`` (0 for RDP) into ``composed_points``."""

    accountant: str
    levels: int
    compositions: int
    grid: float
    seconds: float
    composed_points: float = 0.0

    def describe(self) -> str:
        """The estimate in words, e.g. "about 12 s (40 noise levels)"."""
        parts = [f"{self.levels:,} noise level{'s' if self.levels != 1 else ''}"]
        if self.accountant == "pld":
            parts.append(f"{self.compositions:,} composition{'s' if self.compositions != 1 else ''}")
        return f"about {self.seconds:.2g} s of the accountant's work ({', '.join(parts)})"


def plan_query(
    *,
    n: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    accountant: str,
    sampling: str,
    interactive: bool,
    per_epoch: bool,
    schedule: NoiseSchedule = CONSTANT_NOISE,
    preprocessing_noise: float = 0.0,
) -> QueryWork:
    """The work of one ε (or, ``per_epoch``, one per-epoch curve) of a checked query; an AccountingError
    naming the setting when it is beyond the bounds. A private preprocessing adds one level."""
    args = (int(n), int(batch_size), int(epochs), sampling, float(noise_multiplier), schedule)
    blocks = whole_run_blocks(*args)
    extra = 1 if preprocessing_noise > 0 else 0
    if accountant == "rdp":
        levels = len({sigma for sigma, _ in blocks}) + extra
        work = QueryWork("rdp", levels, 0, 0.0, levels * RDP_LEVEL_SECONDS)
        check_seconds(work, limit=query_seconds())
        return work
    plan = plan_pld(
        sampling_probability(n, batch_size, sampling),
        blocks,
        unit_count(int(n), int(batch_size), int(epochs), sampling),
        interactive=interactive,
        epoch_blocks=epoch_blocks(*args) if per_epoch else None,
    )
    return QueryWork(
        "pld", plan.levels + extra, plan.compositions + extra, plan.grid, plan.seconds, plan.composed_points
    )


def check_seconds(work: QueryWork, *, limit: float, what: str = "this query") -> None:
    """Refuse ``work`` estimated beyond ``limit`` seconds, naming the setting that makes it long."""
    if work.seconds <= limit:
        return
    if work.accountant == "pld":
        raise pld_time_refusal(
            seconds=work.seconds,
            limit=limit,
            levels=work.levels,
            compositions=work.compositions,
            grid=work.grid,
            what=what,
        )
    raise AccountingError(
        "noise_schedule",
        f"the RDP accountant would need about {work.seconds:.0f} s for {what}: {work.levels:,} noise "
        f"levels, each one step's Rényi divergence (the bound is {limit:g} s)",
        allowed="fewer noise levels: a higher noise floor, or a smaller σ_0",
    )
