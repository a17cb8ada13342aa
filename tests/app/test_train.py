"""AppTest: the Train page launches tiny runs in the background, shows progress, cancels, and reports failures."""

from __future__ import annotations

import json
import math
import os
import random
import re
from pathlib import Path

import pytest

from app_state import CONFIG_KEY, OWNER_KEY
from dpcore.audit.report import AUDIT_AUC_TITLE, AUDIT_BOUND_TITLE, AUDIT_NOTE
from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.privacy import accounting
from dpcore.results import TRAIN_ACCURACY_TITLE, TRAIN_LOSS_TITLE, TRAIN_METRICS_NOTE, EpochMetrics
from dpcore.runs.jobs import get_runner
from dpcore.runs.run_table import accuracy_spread_text
from dpcore.runs.store import RunStore
from tests.app.conftest import join, open_page
from tests.conftest import wait_until

TINY = DPConfig(epochs=2, batch_size=32, max_train_examples=200, learning_rate=0.5, noise_multiplier=1.1)
LONG = DPConfig(epochs=500, batch_size=32)


def _open_train(app, config: DPConfig):
    return open_page(app, "train", config)


def _start(at, key: str = "train_start") -> int:
    at.button(key=key).click().run()
    assert not at.exception
    return at.session_state["train_selected"]


def _progress_text(at) -> str:
    return at.get("progress")[0].proto.text


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_renders_with_buttons_and_no_runs(app) -> None:
    at = _open_train(app, TINY)
    labels = [b.label for b in at.button]
    assert "Start training" in labels and "Train non-private baseline" in labels
    assert any("No runs of yours yet" in i.value for i in at.info)
    assert "σ 1.1" in at.markdown[0].value
    projected = accounting.epsilon_for_config(TINY, n=200)
    assert any(c.value.startswith(f"Projected ε = {projected:.3f} on n = 200") for c in at.caption)
    assert any("Reproducible mode" in c.value and "secure mode" in c.value for c in at.caption)


def test_projected_epsilon_includes_a_private_csv_preprocessing_share(app, monkeypatch) -> None:
    from tests.conftest import REPO_ROOT

    monkeypatch.setenv("DPEXPLORER_DATA_DIR", str(REPO_ROOT / "assets"))  # a served app reads files only there
    config = DPConfig(
        dataset="csv",
        csv_path=str(REPO_ROOT / "assets" / "sample.csv"),
        csv_label="decision",
        model="logreg",
        batch_size=16,
        epochs=3,
        delta=1e-3,
        csv_preprocessing_epsilon=1.0,
    )
    at = _open_train(app, config)
    n = datasets.train_size(config)
    projected = accounting.epsilon_for_config(config, n=n, interactive=True)
    training_alone = accounting.epsilon_for_config(
        config.replace(csv_preprocessing_epsilon=None), n=n, interactive=True
    )
    assert projected > training_alone
    assert any(c.value.startswith(f"Projected ε = {projected:.3f} on n = {n}") for c in at.caption)


def test_tiny_run_completes_with_charts_and_epsilon(app) -> None:
    at = _open_train(app, TINY)
    job_id = _start(at)
    assert get_runner().wait([job_id], timeout=300)
    at.run()
    assert not at.exception
    assert _progress_text(at).startswith("Completed")
    expected = accounting.epsilon_for_config(TINY, n=200)
    assert _metric(at, "ε spent") == f"{expected:.3f}"
    assert _metric(at, "Epoch") == "2/2"
    # The test accuracy with digits' 360 test rows and its standard error (from the unrounded accuracy).
    job = get_runner().get(job_id)
    spread = accuracy_spread_text(job.metrics[-1].test_accuracy, 360)
    assert spread.endswith("(n=360 test rows)") and any(c.value == spread for c in at.caption)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    accuracy, projected, spent, training = chart["data"]
    assert training["name"] == TRAIN_ACCURACY_TITLE and len(training["x"]) == 2
    assert [len(accuracy["x"]), len(spent["x"])] == [2, 2]
    # The projected ε is drawn under the spent one, and the trainer spent exactly what was projected.
    assert projected["name"] == "projected ε" and projected["y"] == pytest.approx(spent["y"], rel=1e-9)
    assert projected["y"][-1] == pytest.approx(expected)
    # Without adaptive clipping or a validation split, neither of their charts.
    traces = [t.get("name") for c in at.get("plotly_chart") for t in json.loads(c.proto.spec)["data"]]
    assert "clip norm" not in traces and "validation" not in traces


def _train_unaudited(app, config: DPConfig):
    """Open Train on ``config`` (digits, without the audit), start a run, wait for it; the page and the run's id."""
    at = _open_train(app, config)
    at.checkbox(key="train_audit_digits").uncheck().run()
    job_id = _start(at)
    assert get_runner().wait([job_id], timeout=300)
    at.run()
    assert not at.exception
    return at, job_id


def _chart_titled(at, title: str) -> dict:
    return next(
        spec
        for spec in (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
        if spec["layout"].get("title", {}).get("text", "").startswith(title)
    )


def test_adaptive_clipping_run_with_validation_draws_its_clip_norm_and_validation_metrics(app) -> None:
    config = TINY.replace(
        adaptive_clipping=True, target_unclipped_quantile=0.5, clip_learning_rate=0.2, validation_fraction=0.2
    )
    at, job_id = _train_unaudited(app, config)
    run = get_runner().store.get_run(job_id)
    steps = [value for m in run.epochs for value in m.clip_norms]
    assert len(steps) > 2 and len(set(steps)) > 1  # the clip norm moved
    clip = _chart_titled(at, "clip norm C at each step")
    assert clip["data"][0]["y"] == pytest.approx(steps) and clip["data"][0]["x"] == list(range(len(steps)))
    validation = next(
        spec
        for spec in (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
        if [t["name"] for t in spec["data"]] == ["test", "validation", "test", "validation"]
    )
    assert validation["data"][1]["y"] == pytest.approx([m.validation_accuracy for m in run.epochs])
    assert validation["data"][3]["y"] == pytest.approx([m.validation_loss for m in run.epochs])
    assert validation["data"][0]["y"] == pytest.approx([m.test_accuracy for m in run.epochs])
    assert all(0.0 <= m.validation_accuracy <= 1.0 for m in run.epochs)
    assert any(c.value.startswith("Validation: 20% of the training rows") for c in at.caption)
    # ε is that of the 160 rows trained on, and of the stated σ (the split keeps it).
    assert _metric(at, "ε spent") == f"{accounting.epsilon_for_config(config, n=160):.3f}"


def test_a_run_stopped_by_its_budget_says_so(app) -> None:
    curve = accounting.epsilon_curve_for_config(TINY, n=200)
    config = TINY.replace(epsilon_budget=round((curve[0] + curve[1]) / 2, 4))
    at, job_id = _train_unaudited(app, config)
    assert any(f"Run {job_id} stopped at its ε budget" in i.value and "after 1 of 2 epochs" in i.value for i in at.info)
    assert _metric(at, "ε spent") == f"{curve[0]:.3f}"


def test_training_figures_are_labelled_as_not_covered_by_epsilon_and_can_be_hidden(app) -> None:
    at = _open_train(app, TINY)
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    run_id = store.create_run(TINY, owner=at.session_state[OWNER_KEY], name="stored")
    for epoch, accuracy, train_accuracy in ((1, 0.4, 0.5), (2, 0.7, 0.8)):
        store.record_epoch(
            run_id,
            EpochMetrics(
                epoch=epoch,
                train_loss=2.5 - epoch,
                train_accuracy=train_accuracy,
                test_loss=1.0,
                test_accuracy=accuracy,
                epsilon=0.5 * epoch,
                seconds=0.1,
                examples=200,
            ),
        )
    store.set_status(run_id, "completed")
    at.run()
    at.selectbox(key="train_selected").set_value(run_id).run()
    assert not at.exception
    assert _metric(at, "Training accuracy (not covered by ε)") == "0.800"
    assert _metric(at, "Training loss (not covered by ε)") == "0.5000"
    assert _metric(at, "Test accuracy") == "0.700"
    assert any(c.value == TRAIN_METRICS_NOTE for c in at.caption)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    training = next(t for t in chart["data"] if t["name"] == TRAIN_ACCURACY_TITLE)
    assert training["y"] == [0.5, 0.8] and training["line"]["dash"] == "dot"
    assert chart["layout"]["showlegend"]  # the legend names it as not covered by ε
    table = at.dataframe[0].value.set_index("id")
    assert table.loc[run_id, TRAIN_ACCURACY_TITLE] == 0.8 and table.loc[run_id, TRAIN_LOSS_TITLE] == 0.5

    at.toggle(key="train_show_train_metrics").set_value(False).run()
    assert not at.exception
    assert not [m for m in at.metric if "raining" in m.label]
    assert not any(c.value == TRAIN_METRICS_NOTE for c in at.caption)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in chart["data"]] == ["test accuracy", "projected ε", "ε spent"]
    assert not {TRAIN_ACCURACY_TITLE, TRAIN_LOSS_TITLE} & set(at.dataframe[0].value.columns)
    store.delete_run(run_id)


def _audit_chart(at) -> dict:
    return next(
        spec
        for spec in (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
        if any(t.get("name") == "allowed region" for t in spec["data"])
    )


def test_audit_is_on_by_default_for_digits_only(app) -> None:
    at = _open_train(app, TINY)
    assert at.checkbox(key="train_audit_digits").value is True
    at.session_state[CONFIG_KEY] = DPConfig(dataset="fashion_mnist", model="cnn")
    at.run()
    assert at.checkbox(key="train_audit_fashion_mnist").value is False


def test_a_run_is_audited_when_it_ends_and_shows_its_roc_and_numbers(app) -> None:
    at = _open_train(app, TINY)
    job_id = _start(at)
    assert get_runner().get(job_id).audit_requested
    assert get_runner().wait([job_id], timeout=300)
    at.run()
    assert not at.exception
    report = get_runner().get(job_id).audit
    assert report is not None and report.epsilon == accounting.epsilon_for_config(TINY, n=200)
    names = [t.get("name") for t in _audit_chart(at)["data"]]
    assert names[1:] == ["allowed region", "guessing", "loss threshold", "learned (logistic regression)"]
    assert _metric(at, "ε lower bound (95%)") == f"{report.epsilon_lower_bound:.2f}"
    assert _metric(at, "accounted ε") == f"{report.epsilon:.3f}"
    attacks = at.dataframe[0].value
    assert list(attacks["attack"]) == ["loss threshold", "learned (logistic regression)"]
    assert list(attacks["AUC"]) == [a.auc for a in report.attacks]
    assert {"advantage", "TPR at 1% FPR", "TPR at 0.1% FPR", "ε lower bound"} <= set(attacks.columns)
    assert any("can never exceed its ε" in c.value for c in at.caption)
    assert any("as a correctly accounted run must" in m.value for m in at.markdown)
    runs = at.dataframe[1].value  # the runs table gets the audit's columns
    row = runs[runs["id"] == job_id].iloc[0]
    assert (row[AUDIT_AUC_TITLE], row[AUDIT_BOUND_TITLE]) == (report.auc, report.epsilon_lower_bound)
    assert any(AUDIT_NOTE in c.value for c in at.caption)


def test_a_run_trained_without_audit_can_be_audited_from_its_view(app) -> None:
    at = _open_train(app, TINY)
    at.checkbox(key="train_audit_digits").uncheck().run()
    job_id = _start(at, "train_baseline")
    assert get_runner().wait([job_id], timeout=300)
    at.run()
    assert get_runner().get(job_id).audit is None and not get_runner().get(job_id).audit_requested
    at.button(key=f"train_run_audit_{job_id}_run").click().run()
    assert not at.exception
    assert get_runner().audit_snapshot(job_id).owner == at.session_state[OWNER_KEY]
    # It waits in the queue and runs where training runs; the page follows it and redraws when it ends.
    wait_until(lambda: get_runner().audit_snapshot(job_id).done, what="the audit to end", timeout=300)
    at.run()
    report = get_runner().get(job_id).audit
    assert report is not None and math.isinf(report.epsilon)
    assert "ε = ∞" in _audit_chart(at)["layout"]["title"]["text"]
    assert _metric(at, "accounted ε") == "∞"
    assert any(m.value.startswith("Non-private run") for m in at.markdown)


def test_baseline_is_labelled_non_private(app) -> None:
    at = _open_train(app, TINY)
    job_id = _start(at, "train_baseline")
    assert get_runner().wait([job_id], timeout=300)
    at.run()
    assert _metric(at, "ε spent") == "∞"
    assert "non-private" in at.selectbox(key="train_selected").format_func(job_id)
    assert get_runner().get(job_id).config == TINY.as_baseline()


def test_cancel_stops_a_run(app) -> None:
    at = _open_train(app, LONG)
    job_id = _start(at)
    at.button(key=f"cancel_{job_id}").click().run()
    assert get_runner().wait([job_id], timeout=300)
    at.run()
    assert get_runner().get(job_id).state == "cancelled"
    assert any("was cancelled" in w.value for w in at.warning)


def test_the_run_name_box_is_cleared_once_a_run_starts(app) -> None:
    at = _open_train(app, LONG)
    at.text_input(key="train_name").input("first try")
    job_id = _start(at)
    assert get_runner().get(job_id).name == "first try"
    assert at.text_input(key="train_name").value == ""  # the next run does not take this one's name
    at.button(key=f"cancel_{job_id}").click().run()
    assert get_runner().wait([job_id], timeout=300)


def test_a_running_run_says_its_step_within_the_epoch(app) -> None:
    at = _open_train(app, LONG)
    job_id = _start(at)
    wait_until(lambda: get_runner().get(job_id).epoch_steps > 0, what="the first progress report", timeout=300)
    at.run()
    job = get_runner().get(job_id)
    text = _progress_text(at)
    at.button(key=f"cancel_{job_id}").click().run()
    assert get_runner().wait([job_id], timeout=300)
    steps = math.ceil(1437 / LONG.batch_size)  # Poisson epochs take ceil(n / B) steps, give or take one
    assert re.match(rf"Epoch \d+/500, step \d+ of ({steps - 1}|{steps}|{steps + 1}) · \d+% of the run · ", text), text
    assert job.epoch_steps in (steps - 1, steps, steps + 1)


def test_before_joining_train_shows_one_name_box(app) -> None:
    at = open_page(app, "train", TINY, name=None)
    assert [t.label for t in at.text_input if "name" in t.label.lower()] == ["Your name"]
    assert not any(t.key == "join_name_sidebar" for t in at.sidebar.text_input)
    at.text_input(key="join_name_train").input("Cy")
    at.button(key="join_train").click().run()
    assert not at.exception
    assert [t.label for t in at.text_input if "name" in t.label.lower()] == ["Run name (optional)"]


def test_failed_run_shows_its_error(app, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DPEXPLORER_DATA_DIR", str(tmp_path))
    rng = random.Random(0)
    csv = tmp_path / "people.csv"
    csv.write_text("x1,x2,y\n" + "".join(f"{rng.random():.3f},{rng.random():.3f},{i % 2}\n" for i in range(60)))
    at = _open_train(app, LONG)
    blocker = _start(at)  # keeps the single worker busy so the next run waits in the queue
    at.session_state[CONFIG_KEY] = DPConfig(
        dataset="csv",
        csv_path=str(csv),
        csv_label="y",
        batch_size=8,
        epochs=1,
        csv_schema={"classes": [0, 1], "numeric": {"x1": [0, 1], "x2": [0, 1]}},
    )
    at.run()
    doomed = _start(at)
    csv.unlink()  # the file disappears before the queued run loads it
    get_runner().cancel(blocker)
    assert get_runner().wait([blocker, doomed], timeout=300)
    at.run()
    at.selectbox(key="train_selected").set_value(doomed).run()
    assert get_runner().get(doomed).state == "failed"
    assert any(f"Run {doomed} failed" in e.value and "does not exist" in e.value for e in at.error)


def test_user_mistake_is_a_message_naming_the_field(app) -> None:
    at = _open_train(app, DPConfig(batch_size=5000))
    at.button(key="train_start").click().run()
    assert not at.exception
    assert any(e.value.startswith("batch_size:") for e in at.error)


def test_model_that_does_not_fit_the_dataset_is_refused(app) -> None:
    # Straight to Train, as after uploading a file (Explore would offer only models that fit).
    at = join(app.run())
    at.session_state[CONFIG_KEY] = DPConfig(dataset="digits", model="cnn")
    at.switch_page("pages/train.py").run()
    at.button(key="train_start").click().run()
    assert not at.exception
    assert any(e.value.startswith("model:") for e in at.error)
    assert get_runner().list_jobs(owner=at.session_state[OWNER_KEY]) == []


def test_a_finished_runs_report_and_model_are_made_from_its_view(app) -> None:
    import io
    import zipfile

    from app_state import EXPORTS_KEY
    from dpcore.privacy import explain

    at, job_id = _train_unaudited(app, TINY)
    at.button(key=f"train_run_{job_id}_make_report").click().run()
    at.button(key=f"train_run_{job_id}_make_model").click().run()
    assert not at.exception
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download report (Markdown)", "Download report (HTML)", "Download model (.keras in a zip)"]
    made = at.session_state[EXPORTS_KEY]
    epsilon = explain.format_epsilon(get_runner().get(job_id).latest.epsilon)
    assert f"# Privacy report: run {job_id}" in made["report"].preview
    assert f"(ε, δ) = ({epsilon}, 1e-05)" in made["report"].preview
    with zipfile.ZipFile(io.BytesIO(made["model"].files[0].data)) as archive:
        assert f"dp-run-{job_id}/model.keras" in archive.namelist()


def test_a_run_whose_epsilon_is_beyond_the_accountants_bound_is_refused_before_it_queues(app) -> None:
    """PLD from σ 1000 down to 0.05 failed in its training process after 14 s; it is refused at Start."""
    config = DPConfig(
        model="logreg",
        noise_multiplier=1000.0,
        noise_schedule="step",
        noise_decay_rate=0.05,
        noise_floor=0.05,
        accountant="pld",
    )
    at = open_page(app, "train", config)
    before = len(RunStore(os.environ["DPEXPLORER_STORE"]).list_runs())
    at.button(key="train_start").click().run()
    assert not at.exception
    assert any(e.value.startswith("noise_schedule: the PLD accountant would need about") for e in at.error)
    assert len(RunStore(os.environ["DPEXPLORER_STORE"]).list_runs()) == before
