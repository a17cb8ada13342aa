"""AppTest: the Export page shows JSON/YAML/script, restores uploads with clear errors, and makes a share link."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from app_state import CONFIG_KEY
from dpcore.config import DPConfig
from dpcore.export import share
from tests.app.conftest import open_page

CONFIG = DPConfig(noise_multiplier=1.7, batch_size=100, epochs=3)


def _open(app, config: DPConfig = CONFIG):
    return open_page(app, "export", config)


def test_formats_and_downloads(app) -> None:
    at = _open(app)
    codes = {c.language: c.value for c in at.code}
    assert DPConfig.from_json(codes["json"]) == CONFIG
    assert DPConfig.from_yaml(codes["yaml"]) == CONFIG
    assert "1.7" in codes["python"] and "tensorflow_privacy" in codes["python"]
    assert [b.label for b in at.get("download_button")] == ["Download JSON", "Download YAML", "Download Python script"]


def test_share_link_encodes_the_config(app) -> None:
    at = _open(app)
    link = next(c.value for c in at.code if c.value.startswith("http"))
    params = {k: v[-1] for k, v in parse_qs(urlsplit(link).query).items()}
    assert share.decode(params) == CONFIG


def test_share_link_restores_the_config(app) -> None:
    app.query_params.update(share.encode(CONFIG))
    at = app.run()
    assert not at.exception
    assert at.session_state[CONFIG_KEY] == CONFIG
    assert at.number_input(key="w_noise_multiplier_exact").value == 1.7
    assert any("restored" in s.value for s in at.success)


def test_bad_share_link_is_a_message(app) -> None:
    app.query_params.update({"dpx": "1", "batch_size": "lots"})
    at = app.run()
    assert not at.exception
    assert any("batch_size" in e.value for e in at.error)
    assert at.session_state[CONFIG_KEY] == DPConfig()


def test_upload_restores_a_config(app) -> None:
    at = _open(app)
    wanted = DPConfig(noise_multiplier=0.8, epochs=7)
    at.get("file_uploader")[0].upload("mine.yaml", wanted.to_yaml().encode(), "application/x-yaml").run()
    assert any("valid config" in s.value for s in at.success)
    at.button(key="export_use_upload").click().run()
    assert at.session_state[CONFIG_KEY] == wanted


def test_bad_upload_names_the_field(app) -> None:
    at = _open(app)
    at.get("file_uploader")[0].upload("bad.json", b'{"batch_size": -3}', "application/json").run()
    assert not at.exception
    assert any("batch_size" in e.value and "bad.json" in e.value for e in at.error)
    at.get("file_uploader")[0].clear().upload("broken.json", b"{not json", "application/json").run()
    assert any("not valid JSON" in e.value for e in at.error)


def test_export_a_stored_run(app) -> None:
    import os

    from dpcore.runs.store import RunStore

    stored = DPConfig(noise_multiplier=3.1, epochs=2, optimizer="adam", learning_rate=0.01)
    store = RunStore(os.environ["DPEXPLORER_STORE"])
    run_id = store.create_run(stored, name="kept")
    try:
        at = _open(app)
        at.selectbox(key="export_source").set_value(str(run_id)).run()
        codes = {c.language: c.value for c in at.code}
        assert DPConfig.from_json(codes["json"]) == stored
        assert [b.label for b in at.get("download_button")][0] == "Download JSON"
        at.button(key="export_use_run").click().run()
        assert at.session_state[CONFIG_KEY] == stored
    finally:
        store.delete_run(run_id)


def test_a_scatternet_config_exports_files_and_says_why_there_is_no_script(app) -> None:
    config = DPConfig(dataset="fashion_mnist", model="scatternet_linear", batch_size=256)
    at = _open(app, config)
    codes = {c.language: c.value for c in at.code}
    assert DPConfig.from_yaml(codes["yaml"]) == config and "python" not in codes
    assert any("ScatterNet features" in i.value and "model" in i.value for i in at.info)
    script_button = [b for b in at.get("download_button") if b.label == "Download Python script"]
    assert len(script_button) == 1 and script_button[0].proto.disabled


def test_a_recipe_setting_the_script_cannot_reproduce_is_named_and_the_files_keep_it(app) -> None:
    config = DPConfig(adaptive_clipping=True, epsilon_budget=4.0, validation_fraction=0.2)
    at = _open(app, config)
    codes = {c.language: c.value for c in at.code}
    assert DPConfig.from_json(codes["json"]) == config and "python" not in codes
    assert any("adaptive_clipping" in i.value for i in at.info)
    script_button = [b for b in at.get("download_button") if b.label == "Download Python script"]
    assert len(script_button) == 1 and script_button[0].proto.disabled
