"""AppTest: Explore's recipe settings (noise schedule, adaptive clipping, ε budget, validation split) change
the config and the projected ε, draw the schedule, show the noise split and the budget's epochs, and survive
a share link."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from app_state import CONFIG_KEY
from dpcore.config import DPConfig
from dpcore.data import datasets
from dpcore.privacy import accounting, events
from dpcore.privacy.noise import noise_split
from pages.explore_recipe import EXPANDER_TITLE
from tests.app.conftest import open_page

N_DIGITS = 1437


def _eps(at) -> str:
    return next(m.value for m in at.metric if m.label == "Projected ε")


def _config(at) -> DPConfig:
    return at.session_state[CONFIG_KEY]


def _projected(config: DPConfig) -> str:
    return f"{accounting.epsilon_for_config(config, n=datasets.train_size(config), interactive=True):.3f}"


def _chart(at, title: str) -> dict | None:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next((s for s in specs if s["layout"].get("title", {}).get("text", "").startswith(title)), None)


def test_the_expander_holds_the_recipe_settings_and_shows_nothing_while_they_are_off(app) -> None:
    at = app.run()
    assert not at.exception
    assert EXPANDER_TITLE in [e.label for e in at.expander]
    assert at.radio(key="w_noise_schedule").value == "constant"
    for key in ("w_adaptive_clipping", "w_budget_on"):
        assert at.checkbox(key=key).value is False
    assert at.number_input(key="w_validation_fraction").value == 0.0
    assert _chart(at, "noise multiplier σ_t") is None
    assert not [m for m in at.metric if m.label == "Gradient σ"]


def test_a_schedule_decays_sigma_changes_epsilon_and_is_drawn(app) -> None:
    at = app.run()
    constant = _eps(at)
    at.radio(key="w_noise_schedule").set_value("time").run()
    assert not at.exception
    cfg = _config(at)
    assert cfg.noise_schedule == "time"
    assert _eps(at) == _projected(cfg) and _eps(at) != constant  # less noise later: more ε
    chart = _chart(at, "noise multiplier σ_t")
    (line,) = chart["data"]
    values = accounting.noise_schedule_values(cfg, n=N_DIGITS)
    assert line["y"][0] == cfg.noise_multiplier and line["y"][-1] == values[-1] < cfg.noise_multiplier
    assert line["x"][-1] == len(values) - 1
    assert any("σ_0 is" in c.value or "σ_0, the first" in c.value for c in at.caption)

    before = _eps(at)
    at.number_input(key="w_noise_decay_rate").set_value(0.01).run()
    assert _config(at).noise_decay_rate == 0.01 and _eps(at) == _projected(_config(at)) != before
    before = _eps(at)
    at.number_input(key="w_noise_floor").set_value(1.0).run()
    assert _config(at).noise_floor == 1.0 and _eps(at) == _projected(_config(at)) != before
    assert _chart(at, "noise multiplier σ_t")["data"][0]["y"][-1] == 1.0
    before = _eps(at)
    at.radio(key="w_noise_schedule").set_value("step").run()
    assert _config(at).noise_schedule == "step" and _eps(at) == _projected(_config(at)) != before


def test_a_floor_above_sigma_is_reported_not_clamped(app) -> None:
    at = app.run()
    at.radio(key="w_noise_schedule").set_value("step").run()
    at.number_input(key="w_noise_floor").set_value(5.0).run()
    assert not at.exception
    assert any(e.value.startswith("noise_floor:") for e in at.error)
    assert _config(at).noise_floor == DPConfig().noise_floor  # the config stays as it was


def test_adaptive_clipping_shows_the_noise_split_and_keeps_epsilon(app) -> None:
    at = app.run()
    constant_clip = _eps(at)
    at.checkbox(key="w_adaptive_clipping").check().run()
    assert not at.exception
    assert _config(at).adaptive_clipping is True
    assert _eps(at) == constant_clip  # the split keeps the stated σ's ε
    split = noise_split(noise_multiplier=DPConfig().noise_multiplier, count_noise_multiplier=10.0)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Stated σ"] == f"{split.noise_multiplier:.3f}"
    assert shown["Gradient σ"] == f"{split.gradient_noise_multiplier:.3f}"
    assert shown["Count σ_b"] == "10.000"
    assert split.gradient_noise_multiplier > split.noise_multiplier
    assert any("one Gaussian release of the stated σ" in c.value for c in at.caption)

    at.number_input(key="w_target_unclipped_quantile").set_value(0.9).run()
    at.number_input(key="w_clip_learning_rate").set_value(0.001).run()
    at.radio(key="w_clip_update").set_value("linear").run()
    at.number_input(key="w_count_noise_multiplier").set_value(5.0).run()
    assert not at.exception
    cfg = _config(at)
    assert (cfg.target_unclipped_quantile, cfg.clip_learning_rate, cfg.clip_update, cfg.count_noise_multiplier) == (
        0.9,
        0.001,
        "linear",
        5.0,
    )
    split = noise_split(noise_multiplier=cfg.noise_multiplier, count_noise_multiplier=5.0)
    assert next(m.value for m in at.metric if m.label == "Gradient σ") == f"{split.gradient_noise_multiplier:.3f}"
    at.number_input(key="w_count_noise_multiplier").set_value(0.5).run()
    assert any(e.value.startswith("count_noise_multiplier:") for e in at.error)
    assert _config(at).count_noise_multiplier == 5.0


def test_a_budget_shows_the_epochs_that_fit_and_their_epsilon(app) -> None:
    at = app.run()
    full = DPConfig()
    curve = accounting.epsilon_curve_for_config(full, n=N_DIGITS)
    budget = round((curve[9] + curve[10]) / 2, 3)  # between the 10th and the 11th epoch's ε
    at.checkbox(key="w_budget_on").check().run()
    at.number_input(key="w_epsilon_budget").set_value(budget).run()
    assert not at.exception
    cfg = _config(at)
    assert cfg.epsilon_budget == budget and accounting.epochs_within_budget(cfg, n=N_DIGITS) == 10
    assert any(f"allows 10 of the {full.epochs} epochs" in i.value for i in at.info)
    assert _eps(at) == _projected(cfg) and float(_eps(at)) <= budget
    assert (
        next(m.value for m in at.metric if m.label == "Noisy steps")
        == f"{events.dp_steps(n=N_DIGITS, batch_size=full.batch_size, epochs=10, sampling='poisson'):,}"
    )
    at.number_input(key="w_epsilon_budget").set_value(100.0).run()
    assert any(f"All {full.epochs} epochs fit" in i.value for i in at.info)
    at.number_input(key="w_epsilon_budget").set_value(0.01).run()
    assert any("allows no epoch" in w.value for w in at.warning)
    at.checkbox(key="w_budget_on").uncheck().run()
    assert _config(at).epsilon_budget is None


def test_a_validation_split_shrinks_n_and_changes_epsilon(app) -> None:
    at = app.run()
    before = _eps(at)
    at.number_input(key="w_validation_fraction").set_value(0.2).run()
    assert not at.exception
    cfg = _config(at)
    assert cfg.validation_fraction == 0.2
    n = datasets.train_size(cfg)
    assert n == N_DIGITS - datasets.validation_size(N_DIGITS, 0.2)
    assert _eps(at) == _projected(cfg) != before
    assert any(f"{N_DIGITS - n:,} of the {N_DIGITS:,} training rows are held out" in c.value for c in at.caption)


def test_calibration_with_a_schedule_calibrates_sigma_0(app) -> None:
    app.session_state[CONFIG_KEY] = DPConfig(noise_schedule="time", noise_decay_rate=0.002, noise_floor=0.5)
    at = app.run()
    at.number_input(key="calibrate_target").set_value(3.0).run()
    at.button(key="calibrate_run").click().run()
    assert not at.exception
    apply = at.button(key="calibrate_apply")
    assert apply.label.startswith("Apply σ_0 = ")
    assert any("σ_0" in s.value for s in at.success)
    apply.click().run()
    assert not at.exception
    cfg = _config(at)
    assert cfg.noise_schedule == "time" and 2.9 < float(_eps(at)) <= 3.0
    assert _eps(at) == _projected(cfg)


def test_the_noise_sweep_leaves_out_sigma_below_the_floor(app) -> None:
    app.session_state[CONFIG_KEY] = DPConfig(noise_schedule="step", noise_decay_rate=0.001, noise_floor=0.8)
    at = app.run()
    at.session_state["explore_tab"] = "ε vs noise multiplier"
    at.run()
    assert not at.exception
    sweep = json.loads(at.get("plotly_chart")[-1].proto.spec)["data"][0]
    below = [y for x, y in zip(sweep["x"], sweep["y"]) if x < 0.8]
    assert below and all(y is None for y in below)
    assert all(y is not None for x, y in zip(sweep["x"], sweep["y"]) if x >= 0.8)
    assert any("have no point" in c.value for c in at.caption)


RECIPE = DPConfig(
    noise_multiplier=2.0,
    noise_schedule="step",
    noise_decay_rate=0.0005,
    noise_floor=0.9,
    adaptive_clipping=True,
    target_unclipped_quantile=0.8,
    clip_learning_rate=0.05,
    clip_update="linear",
    count_noise_multiplier=6.0,
    epsilon_budget=4.5,
    validation_fraction=0.25,
    epochs=8,
)


def test_every_recipe_key_survives_explore_and_a_share_link(app) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import APP

    at = open_page(app, "explore", RECIPE)
    assert _config(at) == RECIPE  # Explore's widgets hand back every recipe key they were seeded with
    assert at.radio(key="w_noise_schedule").value == "step"
    assert at.number_input(key="w_count_noise_multiplier").value == 6.0
    assert at.number_input(key="w_epsilon_budget").value == 4.5
    at.switch_page("pages/export.py").run()
    link = next(c.value for c in at.code if c.value.startswith("http"))
    params = {k: v[-1] for k, v in parse_qs(urlsplit(link).query).items()}

    restored = AppTest.from_file(APP, default_timeout=60)
    restored.query_params.update(params)
    restored.run()
    assert not restored.exception
    assert any("restored" in s.value for s in restored.success)
    assert _config(restored) == RECIPE
    assert restored.number_input(key="w_validation_fraction").value == 0.25
    assert restored.checkbox(key="w_adaptive_clipping").value is True
    restored.switch_page("pages/export.py").run()
    codes = {c.language: c.value for c in restored.code}
    assert DPConfig.from_json(codes["json"]) == RECIPE and DPConfig.from_yaml(codes["yaml"]) == RECIPE


def test_a_calibrated_sigma_the_count_noise_refuses_is_reported_not_applied(app) -> None:
    start = DPConfig(noise_multiplier=1.0, adaptive_clipping=True, count_noise_multiplier=0.6)
    app.session_state[CONFIG_KEY] = start
    at = app.run()
    at.number_input(key="calibrate_target").set_value(0.5).run()
    at.button(key="calibrate_run").click().run()
    at.button(key="calibrate_apply").click().run()  # σ ≈ 5 needs σ_b above 2.5
    assert not at.exception
    assert any(e.value.startswith("The noise multiplier stays as it was: count_noise_multiplier:") for e in at.error)
    assert _config(at) == start


def test_weight_averaging_is_kept_set_and_cleared_and_leaves_epsilon_alone(app) -> None:
    from dpcore.views import presets

    cnn = next(p.config for p in presets.PRESETS if p.config.weight_averaging_decay is not None)
    at = open_page(app, "explore", cnn)
    at.run()  # a rerun rebuilds the config from the controls: the preset's averaging must survive it
    assert not at.exception and _config(at).weight_averaging_decay == cnn.weight_averaging_decay
    assert at.checkbox(key="w_averaging_on").value is True
    eps = _eps(at)
    at.number_input(key="w_weight_averaging_decay").set_value(0.9).run()
    assert _config(at).weight_averaging_decay == 0.9 and _eps(at) == eps  # post-processing: same ε
    at.checkbox(key="w_averaging_on").uncheck().run()
    assert _config(at).weight_averaging_decay is None and _eps(at) == eps
