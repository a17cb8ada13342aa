"""AppTest: the Learn page renders its live examples; moving the noise moves ε, moving ε redraws the attack region."""

from __future__ import annotations

import math

from dpcore.views import teaching
from tests.app.conftest import open_page


def _open(app):
    return open_page(app, "learn")


def test_renders_every_section(app) -> None:
    at = _open(app)
    assert [h.value for h in at.header][:4] == [
        "1. What ε and δ promise",
        "2. Why DP-SGD clips and adds noise",
        "3. Why sampling matters: Poisson vs shuffle",
        "4. What accuracy costs as ε falls",
    ]
    assert len(at.get("plotly_chart")) >= 4


def test_the_caption_counts_the_steps_the_page_has(app) -> None:
    at = _open(app)
    headers = [h.value for h in at.header]
    assert [h.split(". ", 1)[0] for h in headers] == [str(i) for i in range(1, len(headers) + 1)]
    assert f"in {len(headers)} short steps" in at.caption[0].value


def test_less_noise_means_larger_epsilon(app) -> None:
    at = _open(app)
    before = float(at.metric[0].value)
    assert before == round(teaching.gaussian_epsilon(1e-5, sigma=2.0), 3)
    at.slider(key="learn_sigma").set_value(0.5).run()
    after = float(at.metric[0].value)
    assert after > before and after == round(teaching.gaussian_epsilon(1e-5, sigma=0.5), 3)


def _region_chart(at) -> dict:
    import json

    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return next(spec for spec in specs if "DP allows an attacker" in spec["layout"]["title"]["text"])


def test_audit_section_draws_the_region_the_slider_allows(app) -> None:
    from dpcore.audit import bounds

    at = _open(app)
    assert "6. What an attacker can actually do" in [h.value for h in at.header]
    metric = next(m for m in at.metric if m.label == "Members caught at 1% false alarms, at most")
    assert metric.value == f"{float(bounds.max_tpr(0.01, epsilon=1.0, delta=1e-5)):.1%}"
    region = next(t for t in _region_chart(at)["data"] if t.get("name") == "allowed region")
    at_10pct = region["y"][region["x"].index(0.1)]
    assert abs(at_10pct - min(math.e * 0.1 + 1e-5, 1 - math.exp(-1.0) * (1 - 1e-5 - 0.1))) < 1e-9

    at.slider(key="learn_audit_epsilon").set_value(3.0).run()
    assert not at.exception
    wider = next(t for t in _region_chart(at)["data"] if t.get("name") == "allowed region")
    assert wider["y"][wider["x"].index(0.1)] > at_10pct
    metric = next(m for m in at.metric if m.label == "Members caught at 1% false alarms, at most")
    assert metric.value == f"{float(bounds.max_tpr(0.01, epsilon=3.0, delta=1e-5)):.1%}"
    # The best attack on a Gaussian mechanism with this (ε, δ) stays inside the region.
    attack = next(t for t in _region_chart(at)["data"] if t.get("name") == "best attack on a Gaussian mechanism")
    bound = bounds.max_tpr(attack["x"], epsilon=3.0, delta=1e-5)
    assert all(t <= b + 1e-9 for t, b in zip(attack["y"], bound))
