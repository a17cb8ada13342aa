"""The privacy report of a config or a finished run: every figure it states, computed (``report_text`` words it).

What a DP training report must state (Ponomareva et al., "How to DP-fy ML", 2023, section 5.3): the unit
of privacy and adjacency, n treated as public, the sampling and whether the trainer really did it, the
accountant and its conversion, (ε, δ) with the noisy steps, σ, the clip norm, batch size and epochs; here
also ε after each epoch, RDP and PLD side by side with TensorFlow Privacy's own statement, the price of a
privately derived CSV schema, the selection ε of a sweep, the empirical audit, the non-private baseline,
the seed spread, what ε does not cover, and the software versions.

Nothing is written by hand: ε and steps come from ``dpcore.privacy`` (dp_accounting's events), a run's
figures from the run store, the statement from TensorFlow Privacy (``dpcore.dpsgd.privacy_statement``,
imported when a report is made, since it loads TensorFlow). A run's ε is the one its trainer recorded.
The report names a CSV file by its own name, never its path on the server, and a run's report is for
whoever may manage the run (its owner, or the host).
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import dpcore
from dpcore.config import ACCOUNTANTS, DPConfig
from dpcore.data import datasets
from dpcore.errors import UserInputError
from dpcore.export.files import file_name_only
from dpcore.privacy import accounting, events, noise
from dpcore.privacy.accounting import EpsilonSplit
from dpcore.privacy.limits import PRECISE_PLD_INTERVAL
from dpcore.room.participants import check_may_manage
from dpcore.runs import sweeps
from dpcore.runs.records import RunRecord, SweepRecord

if TYPE_CHECKING:
    from dpcore.audit.report import AuditReport
    from dpcore.room.participants import Caller
    from dpcore.runs.store import RunStore

# The packages whose versions a report states (distribution names, as pip knows them).
VERSIONED_PACKAGES = ("tensorflow", "tensorflow-privacy", "dp-accounting", "numpy", "scikit-learn")


# -- the facts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountantFigure:
    """ε of the same steps under one accountant, after each epoch; ``problem`` says why none was computed."""

    accountant: str
    curve: tuple[float, ...]
    discretization: float = 0.0  # PLD's grid (0 for RDP)
    problem: Optional[str] = None

    @property
    def epsilon(self) -> Optional[float]:
        return self.curve[-1] if self.curve else None

    @property
    def approximate(self) -> bool:
        return self.accountant == "pld" and self.discretization > PRECISE_PLD_INTERVAL


@dataclass(frozen=True)
class TfPrivacyStatement:
    """TensorFlow Privacy's statement for the same n, batch size, epochs and δ, with what it assumed.

    ``noise_multiplier`` is the σ it was given: the run's σ, or with a decaying schedule the smallest
    σ of any step (its statement assumes one σ throughout); ``poisson_steps`` the Poisson steps it composes.
    """

    text: str
    noise_multiplier: float
    poisson_steps: int


@dataclass(frozen=True)
class Baseline:
    """Finished non-private runs that train as the reported one does, without clipping or noise."""

    run_ids: tuple[int, ...]
    accuracy_mean: float
    accuracy_sd: float
    from_sweep: bool


@dataclass(frozen=True)
class SeedSpread:
    """The finished runs of the reported run's setting over several seeds (one sweep's seed group)."""

    run_ids: tuple[int, ...]
    accuracy_mean: float
    accuracy_sd: float


@dataclass(frozen=True)
class SweepFacts:
    """The sweep a run came from and the ε of releasing its best run."""

    sweep_id: int
    mode: str
    runs: int
    selection_text: str
    selection_epsilon: Optional[float]


@dataclass(frozen=True)
class PrivacyReport:
    """Everything a privacy report states, computed; ``render_markdown`` and ``render_html`` write it.

    ``config`` names a CSV file by its own name only. For a run, ``epoch_epsilons`` and ``epsilon``
    are what its trainer recorded and ``epochs`` the epochs it finished; for a config, the accountant's
    projection for the epochs within its budget. ``epsilon`` is ∞ for a non-private baseline.
    """

    config: DPConfig
    run_id: Optional[int]
    run_label: Optional[str]
    status: Optional[str]
    n: int
    epochs: int
    steps: int
    recorded_steps: Optional[int]  # σ values the trainer recorded, one per noisy step (None: not recorded)
    epsilon: float
    epoch_epsilons: tuple[float, ...]
    test_accuracies: tuple[float, ...]
    noise_multipliers: tuple[float, ...]  # σ of each noisy step
    accountants: tuple[AccountantFigure, ...]
    tf_privacy: Optional[TfPrivacyStatement]
    preprocessing: Optional[EpsilonSplit]
    sweep: Optional[SweepFacts]
    audit: Optional[AuditReport]
    baseline: Optional[Baseline]
    seed_spread: Optional[SeedSpread]
    versions: tuple[tuple[str, str], ...]
    created: float

    @property
    def delta(self) -> float:
        return self.config.delta

    @property
    def accountant(self) -> str:
        return self.config.accountant

    @property
    def sampling(self) -> str:
        return self.config.sampling

    @property
    def private(self) -> bool:
        return self.config.private

    @property
    def dataset_file(self) -> Optional[str]:
        """The CSV file's own name (None for a built-in dataset)."""
        return self.config.csv_path

    @property
    def title(self) -> str:
        return f"Privacy report: {self.subject}"

    @property
    def subject(self) -> str:
        if self.run_id is None:
            return "a config before training"
        return f"run {self.run_id}" + (f" ({self.run_label})" if self.run_label else "")

    def figure(self, name: str) -> Optional[AccountantFigure]:
        """The figure of accountant ``name`` ("rdp" or "pld")."""
        return next((f for f in self.accountants if f.accountant == name), None)


def config_report(config: DPConfig, *, n: Optional[int] = None) -> PrivacyReport:
    """The report of ``config`` before training, on ``n`` training rows (default: its dataset's, read now)."""
    rows = datasets.train_size(config) if n is None else int(n)
    config.check_dataset_size(rows)
    epochs = accounting.epochs_within_budget(config, n=rows)
    if config.private:
        curve = accounting.epsilon_curve_for_config(config, n=rows)[:epochs]
        epsilon = accounting.epsilon_for_config(config, n=rows)
    else:
        curve, epsilon = (math.inf,) * epochs, math.inf
    return _report(
        config,
        n=rows,
        epochs=epochs,
        epoch_epsilons=tuple(curve),
        epsilon=epsilon,
        record=None,
        store=None,
    )


def run_report(store: RunStore, run_id: int, *, caller: Optional[Caller]) -> PrivacyReport:
    """The report of stored run ``run_id``, for ``caller`` (None: the store's owner, as on the command line).

    Refused (UserInputError naming ``run``) for another participant's run, and for a run that has
    not finished an epoch yet: until then nothing of it has been released.
    """
    record = store.get_run(run_id)
    check_may_manage(caller, run_id=run_id, run_owner=record.owner, action="export")
    if not record.epochs:
        raise UserInputError(
            "run",
            f"run {run_id} is {record.status} and has not finished an epoch, so it has released nothing to report",
            allowed="a run with at least one finished epoch, or a report of its config before training",
        )
    config = record.config
    n = record.n_train if record.n_train else datasets.train_size(config)
    return _report(
        config,
        n=n,
        epochs=len(record.epochs),
        epoch_epsilons=tuple(m.epsilon for m in record.epochs),
        epsilon=record.epochs[-1].epsilon if config.private else math.inf,
        record=record,
        store=store,
    )


def _report(
    config: DPConfig,
    *,
    n: int,
    epochs: int,
    epoch_epsilons: tuple[float, ...],
    epsilon: float,
    record: Optional[RunRecord],
    store: Optional[RunStore],
) -> PrivacyReport:
    steps = _steps(config, n=n, epochs=epochs)
    recorded = None
    sigmas: tuple[float, ...] = ()
    if config.private:
        sigmas = accounting.noise_schedule_values(config, n=n)[:steps]
        if record is not None:
            kept = tuple(value for m in record.epochs for value in m.noise_multipliers)
            recorded = len(kept) if kept else None
            sigmas = kept or sigmas
    others: list[RunRecord] = [] if record is None or store is None else store.list_runs(owner=record.owner)
    sweep_record = None
    if record is not None and store is not None:
        sweep_id = store.sweep_ids_of_runs().get(record.id)
        sweep_record = None if sweep_id is None else store.get_sweep(sweep_id)
    return PrivacyReport(
        config=file_name_only(config),
        run_id=None if record is None else record.id,
        run_label=None if record is None else record.name,
        status=None if record is None else record.status,
        n=n,
        epochs=epochs,
        steps=steps,
        recorded_steps=recorded,
        epsilon=epsilon,
        epoch_epsilons=epoch_epsilons,
        test_accuracies=() if record is None else tuple(m.test_accuracy for m in record.epochs),
        noise_multipliers=sigmas,
        accountants=_accountants(config, n=n, epochs=epochs),
        tf_privacy=_tf_privacy(config, n=n, epochs=epochs, sigmas=sigmas),
        preprocessing=_preprocessing(config if record is None else _trained(config, epochs), n=n),
        sweep=None if sweep_record is None else _sweep_facts(sweep_record, others),
        audit=None if record is None else record.audit,
        baseline=None if record is None else _baseline(record, others, sweep_record),
        seed_spread=None if record is None or sweep_record is None else _seed_spread(record, others, sweep_record),
        versions=software_versions(),
        created=time.time(),
    )


def _steps(config: DPConfig, *, n: int, epochs: int) -> int:
    """The noisy steps of ``epochs`` epochs (the steps a baseline takes, for one)."""
    if epochs == 0:
        return 0
    return events.epoch_end_steps(n=n, batch_size=config.batch_size, epochs=config.epochs, sampling=config.sampling)[
        epochs - 1
    ]


def _accountants(config: DPConfig, *, n: int, epochs: int) -> tuple[AccountantFigure, ...]:
    """ε after each of ``epochs`` epochs under each accountant, as the trainer computes it (its whole curve, cut)."""
    if not config.private or epochs == 0:
        return ()
    figures = []
    for name in ACCOUNTANTS:
        asked = config.replace(accountant=name)
        try:
            curve = accounting.epsilon_curve_for_config(asked, n=n)[:epochs]
            grid = (
                accounting.pld_discretization(
                    n=n,
                    batch_size=config.batch_size,
                    noise_multiplier=config.noise_multiplier,
                    epochs=config.epochs,
                    sampling=config.sampling,
                    per_epoch=True,
                    schedule=noise.schedule_of(config),
                )
                if name == "pld"
                else 0.0
            )
        except UserInputError as exc:
            figures.append(AccountantFigure(accountant=name, curve=(), problem=str(exc)))
            continue
        figures.append(AccountantFigure(accountant=name, curve=tuple(curve), discretization=grid))
    return tuple(figures)


def _tf_privacy(config: DPConfig, *, n: int, epochs: int, sigmas: tuple[float, ...]) -> Optional[TfPrivacyStatement]:
    if not config.private or epochs == 0:
        return None
    from dpcore.dpsgd import privacy_statement  # imports TensorFlow Privacy, and with it TensorFlow

    sigma = min(sigmas) if sigmas else config.noise_multiplier
    return TfPrivacyStatement(
        text=privacy_statement.tf_privacy_statement(
            n=n,
            batch_size=config.batch_size,
            epochs=epochs,
            noise_multiplier=sigma,
            delta=config.delta,
            accountant=config.accountant,
        ),
        noise_multiplier=sigma,
        poisson_steps=privacy_statement.tf_privacy_poisson_steps(n=n, batch_size=config.batch_size, epochs=epochs),
    )


def _trained(config: DPConfig, epochs: int) -> DPConfig:
    """A run's config counting the ``epochs`` (at least one) it trained: its budget, if any, already spoke."""
    return config.replace(epochs=epochs, epsilon_budget=None)


def _preprocessing(config: DPConfig, *, n: int) -> Optional[EpsilonSplit]:
    """A privately derived CSV schema's share of ε, for the epochs ``config`` counts (its budget applied)."""
    if config.dataset != "csv" or config.csv_preprocessing_epsilon is None:
        return None
    return accounting.epsilon_split(config, n=n)


def _sweep_facts(sweep: SweepRecord, runs: Sequence[RunRecord]) -> SweepFacts:
    try:
        chosen = sweeps.sweep_epsilon(sweep, runs)
        text, value = chosen.text(), (None if chosen.selection is None else chosen.selection.epsilon)
    except UserInputError as exc:  # the sweep's data can no longer be read (a CSV file removed)
        text, value = f"The selection ε cannot be computed now: {exc}", None
    return SweepFacts(
        sweep_id=sweep.id, mode=sweep.mode, runs=len(sweep.run_ids), selection_text=text, selection_epsilon=value
    )


# Settings a non-private baseline ignores: a baseline "of" a run differs from it in these only.
_PRIVACY_ONLY_FIELDS = (
    "noise_multiplier",
    "noise_schedule",
    "noise_decay_rate",
    "noise_floor",
    "l2_norm_clip",
    "adaptive_clipping",
    "target_unclipped_quantile",
    "clip_learning_rate",
    "clip_update",
    "count_noise_multiplier",
    "delta",
    "epsilon_budget",
    "accountant",
    "secure_mode",
    "seed",
    "private",
)


def _training_recipe(config: DPConfig) -> tuple[object, ...]:
    data = config.to_dict()
    return tuple((name, repr(value)) for name, value in sorted(data.items()) if name not in _PRIVACY_ONLY_FIELDS)


def _baseline(record: RunRecord, runs: Sequence[RunRecord], sweep: Optional[SweepRecord]) -> Optional[Baseline]:
    """The sweep's non-private baseline runs if it has finished ones, else the owner's finished non-private
    runs that train exactly as ``record`` does; None when there is neither."""
    if not record.config.private:
        return None
    finished = [r for r in runs if not r.config.private and r.status == "completed" and r.test_accuracy is not None]
    from_sweep = []
    if sweep is not None:
        members = set(sweep.run_ids)
        from_sweep = [r for r in finished if r.id in members]
    recipe = _training_recipe(record.config)
    chosen = from_sweep or [r for r in finished if _training_recipe(r.config) == recipe]
    if not chosen:
        return None
    accuracies = [float(r.test_accuracy) for r in chosen if r.test_accuracy is not None]
    return Baseline(
        run_ids=tuple(r.id for r in chosen),
        accuracy_mean=statistics.fmean(accuracies),
        accuracy_sd=statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        from_sweep=bool(from_sweep),
    )


def _seed_spread(record: RunRecord, runs: Sequence[RunRecord], sweep: SweepRecord) -> Optional[SeedSpread]:
    for group in sweeps.seed_groups(sweep, runs):
        if record.id in group.run_ids and len(group.run_ids) > 1:
            return SeedSpread(run_ids=group.run_ids, accuracy_mean=group.accuracy_mean, accuracy_sd=group.accuracy_sd)
    return None


def software_versions() -> tuple[tuple[str, str], ...]:
    """Python, DP Explorer and the packages that train and account, as installed now."""
    found = [("Python", platform.python_version()), ("DP Explorer (dpcore)", dpcore.__version__)]
    for name in VERSIONED_PACKAGES:
        try:
            found.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            found.append((name, "not installed"))
    return tuple(found)
