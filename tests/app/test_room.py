"""AppTest: a room on one server: names that survive a reload, own-run permissions, the host panel,
compute estimates and queue positions, confined CSV files, and settings that are never silently changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_state import CONFIG_KEY, OWNER_KEY, PROBLEM_KEY
from dpcore.config import DPConfig
from dpcore.export import share
from dpcore.room import uploads
from dpcore.room.participants import TOKEN_PARAM
from dpcore.room.server_settings import MAX_UPLOAD_MB
from dpcore.runs.comparison import dataset_key
from dpcore.runs.jobs import get_runner
from dpcore.runs.store import RunStore
from pages import explore_schema
from tests.app.conftest import APP, join, open_page
from tests.conftest import wait_until

TINY = DPConfig(epochs=2, batch_size=32, max_train_examples=200, learning_rate=0.5)
LONG = DPConfig(epochs=500, batch_size=32)
SECRET = "instructor-secret-1"


def _rows(n: int, *, bad: str = "") -> bytes:
    body = "".join(f"{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(n))
    return ("x1,x2,y\n" + (f"1,{bad},0\n" if bad else "") + body).encode()


def _with_csv_share(app, monkeypatch) -> AppTest:
    """The app with a CSV config that pays for its preprocessing privately, so an uploaded file can train
    (a CSV needs a schema or a private-preprocessing share; the sample file is read from the data folder)."""
    from tests.conftest import REPO_ROOT

    monkeypatch.setenv("DPEXPLORER_DATA_DIR", str(REPO_ROOT / "assets"))
    app.session_state[CONFIG_KEY] = DPConfig(
        dataset="csv",
        model="logreg",
        csv_label="decision",
        csv_path=str(REPO_ROOT / "assets" / "sample.csv"),
        csv_preprocessing_epsilon=1.0,
    )
    return app


def _reload(at) -> AppTest:
    """A new browser session on the same URL (what a reload is): only the query string carries over."""
    again = AppTest.from_file(APP, default_timeout=60)
    again.query_params[TOKEN_PARAM] = at.query_params[TOKEN_PARAM][0]
    return again.run()


def _store() -> RunStore:
    return RunStore(os.environ["DPEXPLORER_STORE"])


# -- identity ---------------------------------------------------------------------------------


def test_join_puts_a_token_in_the_url_and_a_reload_finds_runs_and_settings(app) -> None:
    at = open_page(app, "train", TINY, name="Ada")
    token = at.query_params[TOKEN_PARAM][0]
    assert len(token) == 32
    at.button(key="train_start").click().run()
    run_id = at.session_state["train_selected"]
    assert get_runner().wait([run_id], timeout=300)
    owner = at.session_state[OWNER_KEY]

    again = _reload(at)
    assert again.session_state[OWNER_KEY] == owner
    assert again.session_state[CONFIG_KEY] == TINY  # Explore keeps the settings
    assert any("You are **Ada**" in c.value for c in again.sidebar.caption)
    again.switch_page("pages/train.py").run()
    assert not again.exception
    (runs,) = [d.value for d in again.dataframe if "id" in d.value.columns]  # beside an audit's table
    assert run_id in list(runs["id"])  # "your runs" again
    assert any("Your runs** (Ada)" in m.value for m in again.markdown)


def test_an_unknown_token_is_a_message_and_asks_for_the_name_again(app) -> None:
    app.query_params[TOKEN_PARAM] = "A" * 32
    at = app.run()
    assert not at.exception
    assert any("not known to this server" in e.value for e in at.error)
    assert at.text_input(key="join_name_sidebar") is not None
    assert OWNER_KEY not in at.session_state


def test_a_bad_display_name_names_the_field(app) -> None:
    at = app.run()
    at.text_input(key="join_name_sidebar").input("<script>")
    at.button(key="join_sidebar").click().run()
    assert any(e.value.startswith("display_name:") for e in at.sidebar.error)
    assert OWNER_KEY not in at.session_state


def test_train_asks_for_a_name_before_starting(app) -> None:
    at = open_page(app, "train", TINY, name=None)
    assert at.button(key="train_start").disabled
    assert any("Type your name" in i.value for i in at.info)
    at.text_input(key="join_name_train").input("Bo")
    at.button(key="join_train").click().run()
    assert not at.button(key="train_start").disabled


def test_a_bad_ray_address_is_refused_on_every_page_before_anything_is_served(app, monkeypatch) -> None:
    monkeypatch.setenv("DPEXPLORER_RAY_ADDRESS", "http://127.0.0.1:8265")
    at = app.run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith("This server's settings are refused") and "DPEXPLORER_RAY_ADDRESS" in error.value
    assert "ray://host:port, host:port or auto" in error.value and not at.metric and not at.button


# -- permissions and the host -------------------------------------------------------------------


def test_without_a_host_secret_there_is_no_host_panel(app, monkeypatch) -> None:
    monkeypatch.delenv("DPEXPLORER_HOST_SECRET", raising=False)
    at = join(app.run())
    assert not [e for e in at.sidebar.expander if e.label == "Host"]


def test_host_unlocks_with_the_secret_and_manages_every_run(app, monkeypatch) -> None:
    monkeypatch.setenv("DPEXPLORER_HOST_SECRET", SECRET)
    other = _store().create_run(DPConfig(), owner="p0123456789abcdef", name="someone else's")
    _store().set_status(other, "completed")
    at = join(app.run())
    at.text_input(key="host_secret").input("wrong-secret")
    at.button(key="host_unlock").click().run()
    assert any("not the host secret" in e.value for e in at.error)
    at.text_input(key="host_secret").input(SECRET)
    at.button(key="host_unlock").click().run()
    assert any("(host)" in c.value for c in at.sidebar.caption)
    assert set(at.query_params) == {TOKEN_PARAM}  # the secret is never in the URL
    at.switch_page("pages/compare.py").run()
    at.multiselect(key="compare_selected").set_value([other]).run()
    at.text_input(key="compare_new_name").set_value("renamed by the host").run()
    at.button(key="compare_rename").click().run()
    assert _store().get_run(other).name == "renamed by the host"
    at.checkbox(key="compare_confirm_delete").check().run()
    at.button(key="compare_delete").click().run()
    assert other not in {r.id for r in _store().list_runs()}


def _unlock(at) -> AppTest:
    at.text_input(key="host_secret").input(SECRET)
    at.button(key="host_unlock").click().run()
    assert any("(host)" in c.value for c in at.sidebar.caption), [e.value for e in at.error]
    return at


def test_host_sets_limits_and_clears_the_board(app, monkeypatch) -> None:
    monkeypatch.setenv("DPEXPLORER_HOST_SECRET", SECRET)
    before = get_runner().limits
    _store().set_status(_store().create_run(DPConfig(), owner="p0123456789abcdef", name="to clear"), "completed")
    at = _unlock(join(app.run()))
    try:
        at.number_input(key="host_max_queued").set_value(5)
        at.number_input(key="host_max_sweep_runs").set_value(30)
        at.button(key="host_limits").click().run()
        assert get_runner().limits.max_queued == 5 and get_runner().limits.max_sweep_runs == 30
        at.button(key="host_clear").click().run()  # asks first, saying what would go
        assert _store().list_runs() and "host_confirm" in [b.key for b in at.button]
        assert any("This deletes all" in w.value and "every uploaded file" in w.value for w in at.sidebar.warning)
        at.button(key="host_confirm").click().run()
        assert not at.exception
        assert _store().list_runs() == [], [e.value for e in at.error]
        assert any(s.value.startswith("Board cleared at ") and "Deleted " in s.value for s in at.sidebar.success)
        assert "host_confirm" not in [b.key for b in at.button]
    finally:
        get_runner().set_limits(before, by=None)


def test_the_host_confirms_cancelling_every_run_and_reads_what_it_did(app, monkeypatch) -> None:
    monkeypatch.setenv("DPEXPLORER_HOST_SECRET", SECRET)
    ada = join(AppTest.from_file(APP, default_timeout=60).run(), "Jo")
    training = get_runner().submit(LONG, owner=ada.session_state[OWNER_KEY], name="long")
    waiting = get_runner().submit(LONG, owner=ada.session_state[OWNER_KEY])
    wait_until(lambda: get_runner().get(training).state == "running", what="Jo's first run to start")
    host = _unlock(join(app.run(), "Host"))
    # The room now: who is here with their runs, what trains and waits, the server's load.
    people = host.sidebar.dataframe[0].value.set_index("name")
    assert (people.loc["Jo", "train"], people.loc["Jo", "wait"]) == (1, 1)
    active = host.sidebar.dataframe[1].value
    assert list(active["run"][:2]) == [str(training), str(waiting)] and set(active["by"][:2]) == {"Jo"}
    assert any("workers" in c.value and "free for the store" in c.value for c in host.sidebar.caption)

    host.button(key="host_cancel_all").click().run()
    preview = [w.value for w in host.sidebar.warning]
    assert any("This cancels 1 waiting and stops 1 training (runs and audits) of 1 participant," in w for w in preview)
    host.button(key="host_back").click().run()  # changing one's mind cancels nothing
    assert "host_confirm" not in [b.key for b in host.button]
    assert get_runner().get(training).state == "running" and get_runner().get(waiting).state == "queued"
    host.button(key="host_cancel_all").click().run()
    host.button(key="host_confirm").click().run()
    assert any(s.value == "Cancelled 1 queued and 1 training runs of 1 participant." for s in host.sidebar.success)
    assert get_runner().get(training).state == get_runner().get(waiting).state == "cancelled"


def test_the_host_stays_the_host_across_a_reload_until_leaving_the_role(app, monkeypatch) -> None:
    monkeypatch.setenv("DPEXPLORER_HOST_SECRET", SECRET)
    host = _unlock(join(app.run(), "Host"))
    again = _reload(host)
    assert any("(host)" in c.value for c in again.sidebar.caption) and "host_cancel_all" in [
        b.key for b in again.button
    ]
    stranger = AppTest.from_file(APP, default_timeout=60).run()  # no token: not the host
    assert not any("(host)" in c.value for c in stranger.sidebar.caption)
    again.button(key="host_lock").click().run()
    assert not any("(host)" in c.value for c in again.sidebar.caption)
    assert not any("(host)" in c.value for c in host.run().sidebar.caption)  # every tab of theirs
    assert "host_unlock" in [b.key for b in _reload(host).button]


def test_a_participant_is_told_once_that_the_host_cleared_the_board(app, monkeypatch) -> None:
    monkeypatch.setenv("DPEXPLORER_HOST_SECRET", SECRET)
    pat = join(_with_csv_share(app, monkeypatch).run(), "Pat")
    pat.selectbox(key="w_dataset").set_value("csv").run()
    pat.get("file_uploader")[0].upload("people.csv", _rows(200), "text/csv").run()
    upload = Path(pat.session_state[CONFIG_KEY].csv_path)
    host = _unlock(join(AppTest.from_file(APP, default_timeout=60).run(), "Host"))
    host.button(key="host_clear").click().run()
    host.button(key="host_confirm").click().run()
    assert not upload.exists() and not any("cleared the board" in w.value for w in host.warning)

    pat.run()  # the participant's next page
    told = [w.value for w in pat.warning if "The host cleared the board at " in w.value]
    assert len(told) == 1 and "your runs and uploaded files were removed" in told[0]
    problems = [e.value for e in pat.error]
    assert any(
        e.startswith(f"csv_path: your uploaded file {upload.name} is no longer on this server (the host cleared")
        for e in problems
    ), problems
    assert not any(str(upload.parent) in text for text in problems + told)  # no server path
    pat.run()
    assert not any("The host cleared the board" in w.value for w in pat.warning)  # once per session
    pat.switch_page("pages/train.py").run()
    assert any("is no longer on this server" in e.value for e in pat.error)
    assert not any(str(upload.parent) in e.value for e in pat.error)


def test_names_per_address_are_limited_on_the_server(app, monkeypatch) -> None:
    monkeypatch.setenv("DPEXPLORER_JOINS_PER_ADDRESS", "1")  # every test here joins from one address
    first, second = app.run(), AppTest.from_file(APP, default_timeout=60).run()
    for at, name in ((first, "Gus"), (second, "Gus again")):
        at.text_input(key="join_name_sidebar").input(name)
        at.button(key="join_sidebar").click().run()
    refusal = [e.value for e in second.sidebar.error]
    assert refusal and refusal[0].startswith("display_name:") and "names joined from this address" in refusal[0]
    assert "1 names per address every 10 min" in refusal[0] and OWNER_KEY not in second.session_state


def test_a_room_code_is_needed_to_join(app, monkeypatch) -> None:
    monkeypatch.setenv("DPEXPLORER_ROOM_CODE", "ROOM-7")
    at = app.run()
    at.text_input(key="join_name_sidebar").input("Hal")
    at.text_input(key="join_code_sidebar").input("room 7")
    at.button(key="join_sidebar").click().run()
    assert any(e.value.startswith("room_code: that is not this room's code") for e in at.sidebar.error)
    assert OWNER_KEY not in at.session_state
    at.text_input(key="join_code_sidebar").input("ROOM-7")
    at.button(key="join_sidebar").click().run()
    assert any("You are **Hal**" in c.value for c in at.sidebar.caption)


def test_the_host_sees_who_joined_and_removes_a_name_with_its_runs(app, monkeypatch) -> None:
    monkeypatch.setenv("DPEXPLORER_HOST_SECRET", SECRET)
    ada = join(AppTest.from_file(APP, default_timeout=60).run(), "Ida")
    ada_owner, ada_token = ada.session_state[OWNER_KEY], ada.query_params[TOKEN_PARAM][0]
    run_id = get_runner().submit(LONG, owner=ada_owner)
    wait_until(lambda: get_runner().get(run_id).state == "running", what="Ida's run to start")
    host = _unlock(join(app.run(), "Host"))
    people = host.sidebar.dataframe[0].value
    assert "Ida" in list(people["name"])
    host.selectbox(key="host_remove_who").set_value(ada_owner).run()
    host.button(key="host_remove").click().run()  # asks first
    assert any(
        "This removes Ida: their 0 waiting and 1 training runs are cancelled" in w.value for w in host.sidebar.warning
    )
    assert get_runner().get(run_id).state == "running"
    host.button(key="host_confirm").click().run()
    assert any(
        s.value == "Removed Ida: Cancelled 0 queued and 1 training run of 1 participant. Their ended runs stay."
        for s in host.success
    ), [s.value for s in host.success]
    assert get_runner().get(run_id).state == "cancelled"
    assert "Ida" not in list(host.sidebar.dataframe[0].value["name"])

    ada.run()  # her open tab stops acting as her at once
    assert any("The host removed the name Ida" in e.value for e in ada.error)
    assert OWNER_KEY not in ada.session_state and TOKEN_PARAM not in ada.query_params
    again = AppTest.from_file(APP, default_timeout=60)
    again.query_params[TOKEN_PARAM] = ada_token
    again.run()
    assert any("not known to this server" in e.value for e in again.error)


def test_the_host_sets_a_room_code_for_later_joins(app, monkeypatch) -> None:
    monkeypatch.setenv("DPEXPLORER_HOST_SECRET", SECRET)
    monkeypatch.delenv("DPEXPLORER_ROOM_CODE", raising=False)
    host = join(app.run(), "Host")
    host.text_input(key="host_secret").input(SECRET)
    host.button(key="host_unlock").click().run()
    assert any(c.value == "Joining needs no room code now." for c in host.sidebar.caption)
    host.text_input(key="host_room_code").input(" spaced ")
    host.button(key="host_set_room_code").click().run()
    assert any(e.value.startswith("room_code: the room code is empty or has spaces around it") for e in host.error)
    host.text_input(key="host_room_code").input("WORKSHOP")
    host.button(key="host_set_room_code").click().run()
    try:
        assert any(s.value == "Joining needs a room code now." for s in host.success)
        visitor = AppTest.from_file(APP, default_timeout=60).run()
        visitor.text_input(key="join_name_sidebar").input("Ivy")
        visitor.button(key="join_sidebar").click().run()
        assert any(e.value.startswith("room_code: that is not this room's code") for e in visitor.sidebar.error)
        visitor.text_input(key="join_code_sidebar").input("WORKSHOP")
        visitor.button(key="join_sidebar").click().run()
        assert OWNER_KEY in visitor.session_state
    finally:
        host.text_input(key="host_room_code").input("")
        host.button(key="host_set_room_code").click().run()
    assert any(s.value == "Joining needs no room code now." for s in host.success)


# -- capacity ---------------------------------------------------------------------------------


def test_train_shows_the_compute_estimate_and_refuses_over_the_cap(app) -> None:
    before = get_runner().limits
    at = open_page(app, "train", DPConfig(epochs=50, max_train_examples=200))
    assert any("200 examples × 50 epochs = 10,000 example passes" in c.value for c in at.caption)
    get_runner().set_limits(before.replace(max_example_passes=5_000), by=None)
    try:
        at.run()
        assert any("at most 5,000 example passes per run" in c.value for c in at.caption)
        at.button(key="train_start").click().run()
        refusal = [e.value for e in at.error if e.value.startswith("compute:")]
        assert refusal and "10,000 example passes" in refusal[0] and "5,000" in refusal[0]
        assert get_runner().list_jobs(owner=at.session_state[OWNER_KEY]) == []
    finally:
        get_runner().set_limits(before, by=None)


def test_a_waiting_run_shows_its_place_in_the_queue(app) -> None:
    at = open_page(app, "train", LONG)
    at.button(key="train_start").click().run()
    first = at.session_state["train_selected"]
    at.button(key="train_start").click().run()  # one training per participant: this one waits
    second = at.session_state["train_selected"]
    try:
        assert get_runner().get(second).state == "queued"
        assert any(c.value.startswith("Waiting: number") for c in at.caption)
    finally:
        get_runner().cancel(second)
        get_runner().cancel(first)
        get_runner().wait([first, second], timeout=300)


# -- confined data ----------------------------------------------------------------------------


def test_no_server_path_box_without_a_data_folder_and_links_cannot_name_server_files(app, monkeypatch) -> None:
    monkeypatch.delenv("DPEXPLORER_DATA_DIR", raising=False)
    link = share.encode(DPConfig(dataset="csv", csv_path="/etc/os-release", csv_label="ID"))
    app.query_params.update(link)
    at = app.run()
    assert not at.exception and not at.error
    # The link's settings are kept; its file is asked for by name, never read from the server's disk.
    assert at.session_state[CONFIG_KEY].csv_path == "os-release"
    assert any("upload os-release" in i.value for i in at.info)
    assert not [t for t in at.text_input if t.key == "w_csv_path"]
    assert any(f"up to {MAX_UPLOAD_MB} MB" in c.value for c in at.caption)


def test_a_path_outside_the_data_folder_is_refused(app, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DPEXPLORER_DATA_DIR", str(tmp_path))
    at = app.run()
    at.selectbox(key="w_dataset").set_value("csv").run()
    at.text_input(key="w_csv_path").input(str(tmp_path / ".." / "elsewhere.csv")).run()
    assert any("outside the data folder" in e.value for e in at.error)
    assert at.session_state[PROBLEM_KEY]


def test_uploads_belong_to_their_uploader(app, monkeypatch) -> None:
    at = join(_with_csv_share(app, monkeypatch).run(), "Cy")
    at.selectbox(key="w_dataset").set_value("csv").run()
    at.get("file_uploader")[0].upload("people.csv", _rows(200), "text/csv").run()
    assert not at.exception and not at.error
    path = at.session_state[CONFIG_KEY].csv_path
    assert uploads.upload_owner(path) == at.session_state[OWNER_KEY]
    at.switch_page("pages/train.py").run()
    assert any("**CSV file:** people.csv" in m.value for m in at.markdown)  # its own name
    at.button(key="train_start").click().run()
    run_id = at.session_state["train_selected"]
    get_runner().cancel(run_id)
    get_runner().wait([run_id], timeout=300)
    at.switch_page("pages/compare.py").run()
    assert "people.csv" in set(at.dataframe[0].value["CSV file"])

    other = open_page(AppTest.from_file(APP, default_timeout=60), "compare", name="Di")
    csv_key = dataset_key(at.session_state[CONFIG_KEY])
    dataset_box = other.selectbox(key="compare_dataset")
    assert any(o.startswith("(another participant's upload) → ") for o in dataset_box.options)  # the file unnamed
    dataset_box.set_value(csv_key).run()
    table = other.dataframe[0].value
    assert set(table[table["id"] == run_id]["CSV file"]) == {"(another participant's upload)"}
    other.multiselect(key="compare_selected").set_value([run_id]).run()
    other.button(key="compare_load").click().run()
    assert any("uploaded by another participant" in e.value for e in other.error)


def test_a_visitor_who_never_joined_cannot_upload_whatever_the_browser_sends(app) -> None:
    at = app.run()
    at.selectbox(key="w_dataset").set_value("csv").run()
    uploader = at.get("file_uploader")[0]
    assert uploader.disabled  # what the browser shows; the server checks again below
    before = uploads.used_bytes(owner=None)
    uploader.upload("anon.csv", _rows(200), "text/csv").run()  # as a client that ignores "disabled" sends it
    assert not at.exception
    assert any("The upload of anon.csv failed" in e.value and "display_name:" in e.value for e in at.error)
    assert uploads.used_bytes(owner=None) == before and not at.session_state[CONFIG_KEY].csv_path


def test_an_upload_over_the_participants_quota_is_refused_naming_it(app, monkeypatch) -> None:
    monkeypatch.setenv("DPEXPLORER_UPLOAD_QUOTA_MB", "1")
    at = join(app.run(), "Quota")
    at.selectbox(key="w_dataset").set_value("csv").run()
    big = _rows(200_000)  # 1.2 MB
    at.get("file_uploader")[0].upload("big.csv", big, "text/csv").run()
    assert any("upload:" in e.value and "exceed your upload quota" in e.value for e in at.error)
    assert uploads.used_bytes(owner=at.session_state[OWNER_KEY]) == 0


# -- nothing silently changed or reused -----------------------------------------------------------


def test_a_failed_upload_blocks_training_instead_of_reusing_the_last_file(app, monkeypatch) -> None:
    at = join(_with_csv_share(app, monkeypatch).run(), "Ed")
    at.selectbox(key="w_dataset").set_value("csv").run()
    at.get("file_uploader")[0].upload("good.csv", _rows(200), "text/csv").run()
    assert at.session_state[CONFIG_KEY].csv_path
    at.get("file_uploader")[0].clear().upload("bad.csv", b"\x00\x01 not a table", "text/csv").run()
    assert any("The upload of bad.csv failed" in e.value for e in at.error)
    at.switch_page("pages/train.py").run()
    assert at.button(key="train_start").disabled
    assert any("need fixing" in e.value and "bad.csv" in e.value for e in at.error)


@pytest.mark.parametrize("bad", ["inf", "1e300"])
def test_a_column_with_an_overflowing_value_is_reported(app, bad: str) -> None:
    at = join(app.run(), "Flo")
    at.selectbox(key="w_dataset").set_value("csv").run()
    at.get("file_uploader")[0].upload("big.csv", _rows(200, bad=bad), "text/csv").run()
    # A declared schema would clip the value to its range: the file is refused before that.
    at.text_area(key=explore_schema.TEXT_KEY).input("classes: [0, 1]\nnumeric:\n  x1: [0, 10]\n  x2: [0, 10]\n").run()
    assert any("column 'x2'" in e.value and "not a finite float32 number" in e.value for e in at.error)
    assert at.session_state[PROBLEM_KEY]


def test_a_restored_config_out_of_range_is_reported_value_by_value(app) -> None:
    restored = DPConfig(delta=0.9, optimizer="momentum", momentum=0.9995)
    app.query_params.update(share.encode(restored))
    at = app.run()
    assert not at.exception
    message = next(e.value for e in at.error if "cannot show" in e.value)
    assert "δ (delta) = 0.9 (allowed 1e-15 to 0.5)" in message
    assert "Momentum = 0.9995 (allowed 0 to 0.999)" in message
    assert at.session_state[CONFIG_KEY] == restored  # nothing clamped behind the person's back
    assert not any("restored" in s.value for s in at.success)  # not "restored" while it cannot be shown
    assert any("outside what the controls allow" in e.value for e in at.error)
    at.button(key="explore_nearest").click().run()
    assert at.session_state[CONFIG_KEY].momentum == 0.999
    assert any("Momentum 0.9995 → 0.999" in s.value for s in at.success)


def test_delta_at_or_above_one_over_n_shows_one_message_and_no_epsilon(app) -> None:
    app.session_state[CONFIG_KEY] = DPConfig(delta=0.01)  # digits: n = 1,437
    at = app.run()
    assert [m for m in at.metric if m.label == "Projected ε"] == []
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("delta:") and "1/n" in errors[0]


def test_a_share_link_with_a_tracking_parameter_restores_and_says_what_it_ignored(app) -> None:
    wanted = DPConfig(noise_multiplier=1.7)
    app.query_params.update({**share.encode(wanted), "fbclid": "IwAR0abc"})
    at = app.run()
    assert not at.exception
    assert at.session_state[CONFIG_KEY] == wanted
    assert any("restored" in s.value and "Ignored: 'fbclid'" in s.value for s in at.success)


def test_a_typed_value_out_of_range_is_refused_and_no_old_epsilon_stays(app) -> None:
    at = app.run()
    at.number_input(key="w_delta").set_value(0.9).run()
    assert not at.exception
    assert any(e.value.startswith("Refused") and "δ (delta) = 0.9 (allowed 1e-15 to 0.5)" in e.value for e in at.error)
    assert [m for m in at.metric if m.label == "Projected ε"] == []
    assert at.session_state[CONFIG_KEY].delta == DPConfig().delta
    assert at.session_state[PROBLEM_KEY]
    at.number_input(key="w_delta").set_value(1e-6).run()
    assert [m for m in at.metric if m.label == "Projected ε"] and PROBLEM_KEY not in at.session_state


def test_export_does_not_offer_runs_on_another_participants_upload(app) -> None:
    folder = uploads.uploads_dir() / "p0123456789abcdef"
    folder.mkdir(parents=True, exist_ok=True)
    theirs = folder / "secret-plans-0123456789abcdef.csv"
    theirs.write_bytes(_rows(200))
    run_id = _store().create_run(
        DPConfig(dataset="csv", csv_path=str(theirs), csv_label="y"), owner="p0123456789abcdef", name="theirs"
    )
    try:
        at = open_page(app, "export")
        assert not [o for o in at.selectbox(key="export_source").options if "theirs" in o or o == str(run_id)]
        assert "secret-plans" not in "".join(c.value for c in at.code)
    finally:
        _store().delete_run(run_id)
        theirs.unlink()
