"""AppTest: the Compare page charts stored runs, filters, renames, deletes and loads a config into Explore."""

from __future__ import annotations

import json
import math
import os

import pytest

from app_state import CONFIG_KEY, OWNER_KEY
from dpcore.audit.report import AUDIT_NOTE, CANARY_NOTE
from dpcore.config import DPConfig
from dpcore.results import (
    TRAIN_ACCURACY_KEY,
    TRAIN_ACCURACY_TITLE,
    TRAIN_LOSS_KEY,
    TRAIN_LOSS_TITLE,
    TRAIN_METRICS_LABEL,
    EpochMetrics,
)
from dpcore.runs.store import RunStore
from tests.app.conftest import open_page
from tests.audit_samples import hand_made_report
from tests.conftest import wait_until


def _metrics(epoch: int, accuracy: float, epsilon: float) -> EpochMetrics:
    return EpochMetrics(
        epoch=epoch,
        train_loss=1.0,
        train_accuracy=accuracy,
        test_loss=1.0,
        test_accuracy=accuracy,
        epsilon=epsilon,
        seconds=0.1,
        examples=100,
    )


@pytest.fixture()
def runs() -> dict[str, int]:
    """Three stored runs (two private, one baseline) in the app's store; removed afterwards."""
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    ids = {}
    for name, config, points in [
        ("noisy", DPConfig(noise_multiplier=2.0, batch_size=128), [(1, 0.5, 0.4), (2, 0.6, 0.7)]),
        (
            "fashion",
            DPConfig(dataset="fashion_mnist", model="cnn", noise_multiplier=0.9),
            [(1, 0.7, 0.8), (2, 0.8, 1.2)],
        ),
        ("plain", DPConfig(private=False), [(1, 0.9, math.inf)]),
    ]:
        run_id = store.create_run(config, owner="someone", name=name)
        for epoch, acc, eps in points:
            store.record_epoch(run_id, _metrics(epoch, acc, eps))
        store.set_status(run_id, "completed")
        ids[name] = run_id
    yield ids
    for run_id in ids.values():
        try:
            store.delete_run(run_id)
        except LookupError:
            pass


def _open(app, *, chart: str = "epochs", dataset: str = "digits"):
    """Compare on ``dataset`` with ``chart`` ("epochs": each run's curve; "class": the class view)."""
    at = open_page(app, "compare")
    at.selectbox(key="compare_dataset").set_value(dataset).run()
    at.radio(key="compare_chart_kind").set_value(chart).run()
    assert not at.exception
    return at


def _trace_names(at) -> list[str]:
    return [t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]


def test_chart_table_and_baseline(app, runs) -> None:
    at = _open(app)
    names = _trace_names(at)
    assert "noisy" in names and "Pareto frontier" in names
    assert "fashion" not in names  # another dataset's run is never on the digits chart
    assert "plain, non-private (ε = ∞): 0.900" in names  # the baseline is named in the legend
    table = at.dataframe[0].value
    assert {runs["noisy"], runs["plain"]} <= set(table["id"]) and runs["fashion"] not in set(table["id"])
    assert at.get("download_button")


def test_training_figures_are_titled_as_not_covered_by_epsilon_and_can_be_hidden(app, runs) -> None:
    at = _open(app)
    table = at.dataframe[0].value.set_index("id")
    # The fixture's runs end with training accuracy = their last test accuracy and loss 1.0.
    assert table.loc[runs["noisy"], TRAIN_ACCURACY_TITLE] == 0.6 and table.loc[runs["noisy"], TRAIN_LOSS_TITLE] == 1.0
    # The test accuracy, its standard error with the test rows, then the training figures.
    columns = list(table.columns)
    assert (
        columns.index(TRAIN_ACCURACY_TITLE) == columns.index("± (test rows)") + 1 == columns.index("test accuracy") + 2
    )
    download = at.get("download_button")[0]
    assert TRAIN_ACCURACY_KEY in download.proto.help and TRAIN_METRICS_LABEL in download.proto.help
    header = RunStore(os.environ["DPEXPLORER_STORE"]).to_csv().splitlines()[0].split(",")
    assert TRAIN_LOSS_KEY in header and TRAIN_ACCURACY_KEY in header
    at.toggle(key="compare_show_train_metrics").set_value(False).run()
    assert not at.exception
    columns = set(at.dataframe[0].value.columns)
    assert "test accuracy" in columns and not {TRAIN_ACCURACY_TITLE, TRAIN_LOSS_TITLE} & columns


def test_audited_runs_are_charted_against_epsilon_and_get_table_columns(app, runs) -> None:
    at = _open(app)
    # Chart only this test's runs: other tests may leave audited runs in the shared store.
    at.multiselect(key="compare_selected").set_value([runs["noisy"], runs["plain"]]).run()
    assert len(at.get("plotly_chart")) == 1 and any("No audited runs" in c.value for c in at.caption)
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    store.save_audit(runs["noisy"], hand_made_report(0.7, auc=0.52, bound=0.1, run_id=runs["noisy"]).to_json())
    store.save_audit(runs["plain"], hand_made_report(math.inf, auc=0.61, bound=0.8, run_id=runs["plain"]).to_json())
    at.run()
    assert not at.exception
    audit_chart = json.loads(at.get("plotly_chart")[1].proto.spec)
    points = {
        t["name"].split(" (")[0]: t for t in audit_chart["data"] if t.get("mode") == "markers" and t.get("showlegend")
    }
    assert set(points) == {"noisy", "plain"}
    assert points["noisy"]["name"] == "noisy (someone…)"  # who ran it: an owner with no display name, by a short id
    assert points["noisy"]["x"] == [0.7] and points["noisy"]["y"] == [0.52]
    assert points["plain"]["x"] == [audit_chart["layout"]["xaxis"]["tickvals"][-1]]
    assert audit_chart["layout"]["xaxis"]["ticktext"][-1] == "∞ (non-private)"
    table = at.dataframe[0].value.set_index("id")
    auc, bound = "attack AUC (not covered by ε)", "audit ε ≥ (not covered by ε)"
    assert (table.loc[runs["noisy"], auc], table.loc[runs["noisy"], bound]) == (0.52, 0.1)
    assert table.loc[runs["plain"], bound] == 0.8 and runs["fashion"] not in table.index  # digits runs only
    assert any("What attacks reach" in m.value for m in at.markdown)
    assert any(AUDIT_NOTE in c.value for c in at.caption)  # the audit chart says what ε does not cover


def test_one_chosen_run_shows_its_audit_or_offers_one(app, runs) -> None:
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    store.save_audit(runs["noisy"], hand_made_report(0.7, auc=0.52, bound=0.1, run_id=runs["noisy"]).to_json())
    at = _open(app)
    at.multiselect(key="compare_selected").set_value([runs["noisy"]]).run()
    assert not at.exception
    region = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert [t.get("name") for t in region["data"]][1:] == ["allowed region", "guessing", "loss threshold"]
    assert "ε = 0.7" in region["layout"]["title"]["text"]
    assert next(m.value for m in at.metric if m.label == "ε lower bound (95%)") == "0.10"
    assert any("within the accounted ε = 0.70" in m.value for m in at.markdown)
    # The run's audit figures, and its canary training, are said not to be covered by ε.
    assert any(c.value == f"{AUDIT_NOTE} {CANARY_NOTE}" for c in at.caption)
    assert any(c.value.startswith("Canary audit") and c.value.endswith(CANARY_NOTE) for c in at.caption)
    # Another participant's run: only they (or the host) may ask for its audit.
    at.selectbox(key="compare_dataset").set_value("fashion_mnist").run()
    at.multiselect(key="compare_selected").set_value([runs["fashion"]]).run()
    assert not [b for b in at.button if b.key == "compare_run_audit_run"]
    assert any("Only the run's owner (or the host)" in c.value for c in at.caption)
    mine = store.create_run(DPConfig(), owner=at.session_state[OWNER_KEY], name="mine")
    store.set_status(mine, "completed")
    try:
        at.selectbox(key="compare_dataset").set_value("digits").run()
        at.multiselect(key="compare_selected").set_value([mine]).run()
        assert at.button(key="compare_run_audit_run").label == "Audit this run"
    finally:
        store.delete_run(mine)


def test_filter_by_dataset(app, runs) -> None:
    at = _open(app)
    at.selectbox(key="compare_dataset").set_value("fashion_mnist").run()
    assert list(at.dataframe[0].value["id"]) == [runs["fashion"]]
    assert "noisy" not in _trace_names(at)


def test_rename_and_delete_own_runs_after_confirming(app, runs) -> None:
    at = _open(app)
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    mine = store.create_run(DPConfig(noise_multiplier=3.0), owner=at.session_state[OWNER_KEY], name="mine")
    store.record_epoch(mine, _metrics(1, 0.5, 0.3))
    store.set_status(mine, "completed")
    at.run()
    at.multiselect(key="compare_selected").set_value([mine]).run()
    assert _trace_names(at)[0] == "mine" and "fashion" not in _trace_names(at)
    at.text_input(key="compare_new_name").set_value("renamed").run()
    at.button(key="compare_rename").click().run()
    assert "renamed" in _trace_names(at)
    assert at.button(key="compare_delete").disabled  # not before the confirmation box is ticked
    at.checkbox(key="compare_confirm_delete").check().run()
    at.button(key="compare_delete").click().run()
    assert not at.exception
    assert mine not in set(at.dataframe[0].value["id"])


def test_others_runs_cannot_be_renamed_or_deleted(app, runs) -> None:
    at = _open(app)
    at.multiselect(key="compare_selected").set_value([runs["noisy"]]).run()
    keys = {b.key for b in at.button}
    assert "compare_rename" not in keys and "compare_delete" not in keys
    assert any("belong to other participants" in c.value for c in at.caption)
    assert "compare_load" in keys  # loading its config is fine
    assert RunStore(os.environ["DPEXPLORER_STORE"]).get_run(runs["noisy"]).name == "noisy"


def test_mine_and_everyones_views(app, runs) -> None:
    at = _open(app)
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    mine = store.create_run(DPConfig(noise_multiplier=3.0), owner=at.session_state[OWNER_KEY], name="mine")
    at.run()
    everyone = at.dataframe[0].value
    assert {mine, runs["noisy"], runs["plain"]} <= set(everyone["id"])
    assert set(everyone[everyone["id"] == mine]["by"]) == {"you"}
    at.radio(key="compare_whose").set_value("mine").run()
    assert list(at.dataframe[0].value["id"]) == [mine]
    store.delete_run(mine)


def test_load_into_explore(app, runs) -> None:
    at = _open(app, dataset="fashion_mnist")
    at.multiselect(key="compare_selected").set_value([runs["fashion"]]).run()
    at.button(key="compare_load").click().run()
    assert not at.exception
    assert at.session_state[CONFIG_KEY] == DPConfig(dataset="fashion_mnist", model="cnn", noise_multiplier=0.9)
    assert at.selectbox(key="w_model").value == "cnn"  # now on Explore, showing the loaded config
    assert at.number_input(key="w_noise_multiplier_exact").value == 0.9


def test_an_audit_asked_for_waits_in_the_queue_and_the_view_follows_it(app) -> None:
    from app_state import runner

    store = RunStore(os.environ["DPEXPLORER_STORE"])
    other = store.create_run(DPConfig(), name="someone's")  # Compare with no runs at all ends early
    at = _open(app)
    owner = at.session_state[OWNER_KEY]
    done = store.create_run(DPConfig(epochs=1, batch_size=32, max_train_examples=64), owner=owner, name="to audit")
    store.set_status(done, "completed")
    long_id = runner().submit(DPConfig(epochs=500, batch_size=32), owner=owner)  # one training at a time each
    try:
        at.run()
        at.multiselect(key="compare_selected").set_value([done]).run()
        at.button(key="compare_run_audit_run").click().run()
        assert not at.exception
        assert runner().audit_snapshot(done).state == "queued"
        assert any(f"Audit of run {done}: waiting for a worker" in c.value for c in at.caption)
        assert not [b for b in at.button if b.key == "compare_run_audit_run"]
    finally:
        runner().cancel(long_id)
    runner().wait([long_id], timeout=120)
    wait_until(lambda: runner().audit_snapshot(done).done, what="the audit to end", timeout=300)
    at.run()
    assert not at.exception and runner().audit_snapshot(done).state == "completed"
    assert any(m.label == "ε lower bound (95%)" for m in at.metric)
    for run_id in (done, long_id, other):
        store.delete_run(run_id)


@pytest.fixture()
def room() -> dict[str, int]:
    """A class on MNIST (a dataset no other test stores runs of): four named participants' finished runs, one
    of them non-private, one still training; removed afterwards."""
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    for owner, name in [("o-ada", "Ada"), ("o-bo", "Bo"), ("o-cy", "Cy"), ("o-di", "Di")]:
        store.add_participant(token_hash=f"hash-{owner}", owner=owner, display_name=name)
    mnist = DPConfig(dataset="mnist", model="cnn")
    ids = {}
    for key, owner, config, epsilon, accuracy, status in [
        ("ada", "o-ada", mnist, 0.9, 0.91, "completed"),
        ("ada_wide", "o-ada", mnist, 3.0, 0.97, "completed"),
        ("bo", "o-bo", mnist, 0.6, 0.91, "completed"),
        ("cy", "o-cy", mnist, 1.0, 0.85, "budget_reached"),
        ("di_plain", "o-di", mnist.replace(private=False), math.inf, 0.99, "completed"),
        ("di_training", "o-di", mnist, 0.4, 0.50, "running"),
    ]:
        run_id = store.create_run(config, owner=owner, name=key)
        store.record_epoch(run_id, _metrics(1, accuracy, epsilon))
        store.set_status(run_id, status)
        ids[key] = run_id
    yield ids
    for run_id in ids.values():
        store.delete_run(run_id)
    for owner in ("o-ada", "o-bo", "o-cy", "o-di"):
        store.remove_participant(owner, by=None)


def test_datasets_are_offered_one_at_a_time_with_their_run_counts(app, runs, room) -> None:
    at = open_page(app, "compare")
    box = at.selectbox(key="compare_dataset")
    assert box.value == "digits"  # the current config's dataset
    assert "mnist (6 runs)" in box.options and "fashion_mnist (1 run)" in box.options
    at.radio(key="compare_chart_kind").set_value("epochs").run()
    assert "fashion" not in _trace_names(at) and "ada" not in _trace_names(at)
    at.selectbox(key="compare_dataset").set_value("mnist").run()
    names = _trace_names(at)
    assert "noisy" not in names and "plain, non-private (ε = ∞): 0.900" not in " ".join(map(str, names))


def test_class_view_draws_final_points_by_participant_and_ranks_the_challenge(app, room) -> None:
    at = open_page(app, "compare")
    at.selectbox(key="compare_dataset").set_value("mnist").run()
    assert at.radio(key="compare_chart_kind").value == "class"  # the room's view first
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    points = {t["name"]: t for t in chart["data"] if t.get("mode") == "markers"}
    assert set(points) == {"Ada", "Bo", "Cy", "Di"}  # one legend entry per participant, by display name
    assert sorted(points["Ada"]["y"]) == [0.91, 0.97] and points["Di"]["x"] == [
        chart["layout"]["xaxis"]["tickvals"][-1]
    ]
    assert chart["layout"]["xaxis"]["ticktext"][-1] == "∞ (non-private)"
    assert any(a["text"] == "challenge: ε ≤ 1" for a in chart["layout"]["annotations"])
    caption = next(c.value for c in at.caption if "finished private run" in c.value)
    assert "4 finished private run(s) and 1 non-private baseline(s) by 4 participant(s)" in caption
    assert "1 run(s) still queued or training" in caption and "10,000 test rows" in caption
    board = at.dataframe[0].value  # the leaderboard, above the run table
    assert list(board["participant"]) == ["Bo", "Ada", "Cy"]  # 0.91 at ε 0.6 before 0.91 at ε 0.9
    assert list(board["rank"]) == [1, 2, 3] and list(board["run"]) == ["bo", "ada", "cy"]
    assert list(board["ε"]) == ["0.600", "0.900", "1.000"] and set(board["test rows"]) == {10000}
    at.number_input(key="compare_cap").set_value(5.0).run()
    board = at.dataframe[0].value  # the leaderboard, above the run table
    assert list(board["participant"])[0] == "Ada" and list(board["run"])[0] == "ada_wide"
    at.number_input(key="compare_cap").set_value(0.0).run()
    assert not at.exception
    assert any(e.value.startswith("ε cap: 0.0 is out of range") for e in at.error)  # reported, not clamped
    assert len(at.dataframe) == 1 and "rank" not in at.dataframe[0].value  # only the run table is left


def test_the_run_picker_names_who_ran_each_run(app, room) -> None:
    at = open_page(app, "compare")
    at.selectbox(key="compare_dataset").set_value("mnist").run()
    options = at.multiselect(key="compare_selected").options
    assert f"{room['bo']}: bo by Bo (cnn)" in options and f"{room['di_plain']}: di_plain by Di (non-private)" in options


def test_the_audit_view_reads_an_auc_below_a_half_and_a_bound_of_zero_and_names_the_test_rows(app, runs) -> None:
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    store.save_audit(runs["noisy"], hand_made_report(0.7, auc=0.47, bound=0.0, run_id=runs["noisy"]).to_json())
    at = _open(app)
    at.multiselect(key="compare_selected").set_value([runs["noisy"]]).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Reading these numbers" in text
    assert "noise, not a leak in reverse" in text and "loss threshold (0.470)" in text
    assert "proved nothing above ε = 0 at 95% confidence" in text
    # The audited run's accuracy (0.6 on digits' 360 test rows) with its standard error.
    assert any(c.value == "The audited run's test accuracy: 0.600 (n=360 test rows, ±0.026)." for c in at.caption)
    assert "±0.026 (n=360 test rows)" in set(at.dataframe[0].value["± (test rows)"])
