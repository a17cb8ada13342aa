"""AppTest: the Learn page renders its live examples, and moving the noise moves ε."""
from __future__ import annotations

from dpcore import teaching
from tests.app.conftest import open_page



def _open(app):
    return open_page(app, "learn")


def test_renders_every_section(app) -> None:
    at = _open(app)
    assert [h.value for h in at.header][:4] == [
        "1. What ε and δ promise", "2. Why DP-SGD clips and adds noise",
        "3. Why sampling matters: Poisson vs shuffle", "4. What accuracy costs as ε falls"]
    assert len(at.get("plotly_chart")) >= 4


def test_less_noise_means_larger_epsilon(app) -> None:
    at = _open(app)
    before = float(at.metric[0].value)
    assert before == round(teaching.gaussian_epsilon(1e-5, sigma=2.0), 3)
    at.slider(key="learn_sigma").set_value(0.5).run()
    after = float(at.metric[0].value)
    assert after > before and after == round(teaching.gaussian_epsilon(1e-5, sigma=0.5), 3)
