"""export.report and export.report_text: the privacy report's ε, steps and accountant are the run's (or the
config's), TensorFlow Privacy's statement agrees with them, and both renderings say so; HTML is self-contained."""

from __future__ import annotations

import math
import re

import dp_accounting
import pytest

from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.errors import UserInputError
from dpcore.export.report import config_report, run_report
from dpcore.export.report_text import render_html, render_markdown, render_report, sections
from dpcore.privacy import accounting, events, explain
from dpcore.room.participants import Caller, NotAllowedError
from dpcore.runs import sweeps
from tests.conftest import REPO_ROOT
from tests.export_runs import OTHER, OWNER, TINY

DIGITS_N = 1437


def _tf_privacy_epsilons(text: str) -> tuple[float, float]:
    """(once per epoch, assuming Poisson sampling) as TensorFlow Privacy's statement prints them."""
    once = re.search(r"once per epoch:\s+([0-9.]+)", text)
    poisson = re.search(r"Poisson sampling \(\*\):\s+([0-9.]+)", text)
    assert once and poisson, text
    return float(once.group(1)), float(poisson.group(1))


def _facts_table(markdown: str) -> dict[str, str]:
    """The settings table of the report's first section, by setting."""
    first = markdown.split("\n## ")[1]
    rows = re.findall(r"^\| ([^|]+?) \| (.+?) \|$", first, flags=re.M)
    return {key.replace("\\", ""): value.replace("\\", "") for key, value in rows}


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_config_report_states_the_configs_epsilon_steps_and_accountant(accountant):
    config = DPConfig(epochs=4, accountant=accountant)
    report = config_report(config)
    expected = accounting.epsilon_report_for_config(config, n=DIGITS_N)
    assert report.n == DIGITS_N and report.epochs == 4
    assert report.steps == expected.steps == events.dp_steps(n=DIGITS_N, batch_size=128, epochs=4, sampling="poisson")
    assert report.epsilon == expected.epsilon and report.accountant == accountant
    assert report.epoch_epsilons == accounting.epsilon_curve_for_config(config, n=DIGITS_N)
    # Both accountants side by side, each as dp_accounting composes the same steps.
    for name in ("rdp", "pld"):
        figure = report.figure(name)
        alone = accounting.epsilon_for_config(config.replace(accountant=name), n=DIGITS_N)
        assert figure.epsilon == pytest.approx(alone, rel=1e-3) and figure.problem is None
    assert report.figure("pld").epsilon < report.figure("rdp").epsilon

    markdown = render_markdown(report)
    assert (
        f"(ε, δ) = ({explain.format_epsilon(expected.epsilon)}, 1e-05) after {expected.steps} noisy steps" in markdown
    )
    facts = _facts_table(markdown)
    assert facts["Noisy steps"] == str(expected.steps) and facts["Training rows n"] == "1,437"
    assert facts["Accountant"].startswith(accountant.upper()) and facts["Sampling"].startswith("poisson, q = 0.0890745")
    assert facts["ε"] == explain.format_epsilon(expected.epsilon)
    for title in ("Unit of privacy and adjacency", "Sampling", "Accountant and conversion", "What ε does not cover"):
        assert f"## {title}" in markdown
    assert "add or remove one row" in markdown and "treated as public" in markdown


@pytest.mark.parametrize("sampling", ["poisson", "shuffle"])
def test_tf_privacys_statement_agrees_with_the_reports_epsilon(sampling):
    config = DPConfig(epochs=3, sampling=sampling, noise_multiplier=1.3)
    report = config_report(config)
    once, poisson = _tf_privacy_epsilons(report.tf_privacy.text)
    ours = poisson if sampling == "poisson" else once
    assert ours == pytest.approx(report.epsilon, abs=6e-4)  # it prints three decimals
    note = render_markdown(report)
    if sampling == "poisson":
        assert "here that line is the guarantee" in note
    else:
        assert "does not cover shuffled batches" in note


def test_tf_privacy_counting_one_more_step_is_said_and_is_what_its_figure_composes():
    # n = 122, batch 10, 5 epochs: the trainer takes ceil(5 * 122 / 10) = 61 steps; TensorFlow Privacy
    # counts ceil(5 / (10 / 122)) = 62, the division rounding up in floating point.
    config = DPConfig(epochs=5, batch_size=10, max_train_examples=122, noise_multiplier=1.1, delta=1e-3)
    report = config_report(config)
    assert report.steps == 61 and report.tf_privacy.poisson_steps == 62
    _, poisson = _tf_privacy_epsilons(report.tf_privacy.text)
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(10 / 122, dp_accounting.GaussianDpEvent(1.1)), 62
    )
    assert poisson == pytest.approx(dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(1e-3), abs=6e-4)
    assert poisson > report.epsilon
    assert "= 62 steps in floating point where the trainer took 61" in render_markdown(report)


def test_a_decaying_schedule_gives_tf_privacy_the_smallest_sigma_and_draws_it():
    config = DPConfig(
        epochs=3,
        batch_size=50,
        max_train_examples=300,
        sampling="shuffle",
        noise_schedule="step",
        noise_decay_rate=0.05,
        noise_floor=1.0,
    )
    report = config_report(config)
    sigmas = accounting.noise_schedule_values(config, n=300)
    assert len(set(sigmas)) > 5
    assert report.noise_multipliers == sigmas and report.tf_privacy.noise_multiplier == min(sigmas)
    once, _ = _tf_privacy_epsilons(report.tf_privacy.text)
    assert once > report.epsilon  # every epoch at the smallest σ of all: an upper bound
    markdown = render_markdown(report)
    assert "given the smallest σ of any step" in markdown and f"over {len(sigmas)} steps" in markdown
    assert "at each noisy step" in render_html(report)  # the σ chart's title


def test_a_private_csv_schema_reports_its_share_and_names_the_file_by_its_own_name():
    path = REPO_ROOT / "assets" / "sample.csv"
    config = DPConfig(
        dataset="csv", csv_path=str(path), csv_label="decision", csv_preprocessing_epsilon=0.5, epochs=2, delta=1e-4
    )
    report = config_report(config)
    n = datasets.train_size(config)
    split = accounting.epsilon_split(config, n=n)
    assert report.preprocessing == split and report.epsilon == split.total
    assert report.dataset_file == "sample.csv"
    for text in (render_markdown(report), render_html(report)):
        assert str(path.parent) not in text and "sample.csv" in text
        assert explain.format_epsilon(split.preprocessing) in text and explain.format_epsilon(split.total) in text
    assert "covers training only" in render_markdown(report)


def test_a_baseline_config_says_there_is_no_guarantee_and_asks_tf_privacy_nothing():
    report = config_report(DPConfig(epochs=2).as_baseline())
    assert math.isinf(report.epsilon) and report.tf_privacy is None and report.accountants == ()
    markdown = render_markdown(report)
    assert "Non-private baseline: no clipping, no noise, ε = ∞" in markdown
    assert "TensorFlow Privacy's own statement" not in markdown


def test_run_report_states_what_the_trainer_recorded(export_runs):
    store = export_runs.store
    record = store.get_run(export_runs.private)
    report = run_report(store, record.id, caller=Caller(owner=OWNER))
    n = record.n_train
    steps = events.dp_steps(n=n, batch_size=TINY.batch_size, epochs=TINY.epochs, sampling=TINY.sampling)
    assert report.epsilon == record.epsilon and report.accountant == record.config.accountant == "rdp"
    assert report.epoch_epsilons == tuple(m.epsilon for m in record.epochs)
    assert report.steps == steps == report.recorded_steps
    assert report.test_accuracies == tuple(m.test_accuracy for m in record.epochs)
    assert report.figure("rdp").curve == report.epoch_epsilons  # the trainer's own accountant, recomputed
    markdown = render_markdown(report)
    assert f"(ε, δ) = ({explain.format_epsilon(record.epsilon)}, 1e-05) after {steps} noisy steps" in markdown
    assert f"recorded σ for {steps} noisy steps: the number the accountant composed" in markdown
    # Its audit, with the verdict and the reminder that the audit's figures are not covered by ε.
    assert report.audit == record.audit and record.audit is not None
    assert "## Empirical audit" in markdown and "not covered by ε" in markdown
    # The sweep's non-private runs train as this one does, without noise: its baseline.
    assert report.baseline.run_ids == export_runs.sweep_baselines and not report.baseline.from_sweep
    assert report.sweep is None and report.seed_spread is None
    # The run name (typed by a person) is shown as itself, never as markup.
    html = render_html(report)
    assert "private &lt;b&gt;$run$&lt;/b&gt;" in html and "<b>$run" not in html
    assert r"private \<b\>\$run\$\</b\>" in markdown


def test_a_run_stopped_by_its_budget_is_reported_for_the_epoch_it_trained(export_runs):
    store = export_runs.store
    record = store.get_run(export_runs.budget)
    assert record.status == "budget_reached" and len(record.epochs) == 1
    report = run_report(store, record.id, caller=None)
    steps = events.epoch_end_steps(n=128, batch_size=32, epochs=3, sampling="poisson")[0]
    assert report.epochs == 1 and report.steps == steps == report.recorded_steps
    assert report.epsilon == record.epsilon <= record.config.epsilon_budget
    assert report.figure("rdp").curve == (record.epsilon,)
    assert _tf_privacy_epsilons(report.tf_privacy.text)[1] == pytest.approx(record.epsilon, abs=6e-4)
    markdown = render_markdown(report)
    assert f"after {steps} noisy steps over 1 epoch(s)" in markdown
    assert f"stopped at its ε budget of {record.config.epsilon_budget:g} after 1 of 3 epochs" in markdown
    assert _facts_table(markdown)["Epochs"] == "1 of 3 configured"


def test_run_report_of_a_sweep_run_has_its_selection_epsilon_seed_spread_and_baseline(export_runs):
    store = export_runs.store
    run_id = export_runs.sweep_private[0]
    report = run_report(store, run_id, caller=None)
    sweep = store.get_sweep(export_runs.sweep_id)
    chosen = sweeps.sweep_epsilon(sweep, store.list_runs(owner=OWNER))
    assert report.sweep.sweep_id == sweep.id and report.sweep.selection_text == chosen.text()
    assert report.sweep.selection_epsilon == chosen.selection.epsilon > report.epsilon
    assert report.seed_spread.run_ids == export_runs.sweep_private
    accuracies = [store.get_run(i).test_accuracy for i in export_runs.sweep_private]
    assert report.seed_spread.accuracy_mean == pytest.approx(sum(accuracies) / 2)
    assert report.baseline.from_sweep and report.baseline.run_ids == export_runs.sweep_baselines
    markdown = render_markdown(report)
    assert (
        chosen.text() in markdown
        and f"over 2 seeds (runs {', '.join(map(str, export_runs.sweep_private))})" in markdown
    )


def test_run_report_is_for_its_owner_and_the_host_and_needs_a_finished_epoch(export_runs):
    store = export_runs.store
    with pytest.raises(NotAllowedError) as info:
        run_report(store, export_runs.private, caller=Caller(owner=OTHER))
    assert info.value.field == "run" and "belongs to another participant" in str(info.value)
    assert (
        run_report(store, export_runs.private, caller=Caller(owner=OTHER, is_host=True)).run_id == export_runs.private
    )
    with pytest.raises(UserInputError, match=f"run {export_runs.queued} is queued and has not finished an epoch"):
        run_report(store, export_runs.queued, caller=Caller(owner=OWNER))


def test_html_is_one_self_contained_page_with_its_charts(export_runs):
    report = run_report(export_runs.store, export_runs.private, caller=None)
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"<script[^>]+src=", page) and "<link" not in page  # nothing fetched
    assert page.count("Plotly.newPlot(") == 1 and len(page) > 1_000_000  # plotly.js inlined, once
    assert "TensorFlow Privacy's own statement" in page and "<pre>DP-SGD performed over" in page
    # Both renderings carry the same sections.
    markdown = render_markdown(report)
    for section in sections(report):
        assert f"## {section.title}" in markdown and f"<h2>{section.title}</h2>" in page
    assert render_report(report, report_format="report-md") == markdown
    with pytest.raises(UserInputError, match="format: 'pdf' is not a report format"):
        render_report(report, report_format="pdf")
