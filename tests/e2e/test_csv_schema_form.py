"""In headless Chromium: a heart-like CSV uploaded and trained with its schema declared through the
per-column form only (no YAML typed), the placeholder warning until every range is typed, and the
file's own name on Explore and Train."""

from __future__ import annotations

import csv
import io
import random

import pytest
from playwright.sync_api import expect

from dpcore.config import DPConfig
from tests.e2e.conftest import (
    EPSILON_JS,
    NO_BROWSER,
    NO_BROWSER_REASON,
    SCREENSHOTS,
    choose,
    go_to,
    join,
    open_app,
    share_link,
)

pytestmark = pytest.mark.skipif(NO_BROWSER, reason=NO_BROWSER_REASON)
SHOTS = SCREENSHOTS / "csv-schema-form"
SIZES = {"wide": (1280, 800), "phone": (390, 844)}

# What each column can hold, as a person who knows the data would type it (nothing read from the rows).
RANGES = {
    "age": "20, 90",
    "sex": "0, 1",
    "trestbps": "80, 220",
    "chol": "100, 600",
    "thalach": "60, 220",
    "exang": "0, 1",
    "oldpeak": "0, 7",
}
CATEGORIES = {"cp": "0, 1, 2, 3", "thal": "normal, fixed, reversable"}


def heart_like_csv(rows: int = 160) -> bytes:
    """A synthetic table shaped like the UCI heart data (made here, from a fixed seed), label ``target``."""
    draw = random.Random(24)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["age", "sex", "cp", "trestbps", "chol", "thalach", "exang", "oldpeak", "thal", "target"])
    for _ in range(rows):
        age, cp, exang = draw.randint(29, 77), draw.randint(0, 3), draw.randint(0, 1)
        thalach = draw.randint(90, 200)
        oldpeak = round(draw.uniform(0, 5), 1)
        target = int(cp > 0 and exang == 0 and oldpeak < 2.5 or thalach > 170)
        writer.writerow(
            [
                age,
                draw.randint(0, 1),
                cp,
                draw.randint(94, 200),
                draw.randint(126, 564),
                thalach,
                exang,
                oldpeak,
                draw.choice(["normal", "fixed", "reversable"]),
                target,
            ]
        )
    return out.getvalue().encode()


def _shots(page, target, name: str) -> None:
    """Screenshots of what a person sees around ``target`` at both sizes, under artifacts/screenshots/csv-schema-form/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        target.evaluate("element => element.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(800)
        page.screenshot(path=str(SHOTS / f"{name}-{size}.png"))
    page.set_viewport_size({"width": 1280, "height": 800})


def test_a_heart_like_csv_trains_with_its_schema_declared_by_the_form_only(page, app_url: str, tmp_path) -> None:
    heart = tmp_path / "heart.csv"
    heart.write_bytes(heart_like_csv())
    open_app(page, share_link(app_url, DPConfig(epochs=2, batch_size=32, learning_rate=0.5)))
    join(page, "Hana")
    choose(page, "Dataset", "Your CSV file (tabular)")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(str(heart))
    page.get_by_text("Uploaded heart.csv").first.wait_for()
    page.get_by_text("File: heart.csv", exact=True).first.wait_for()
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text("uploads/")).to_have_count(0)  # never the server's path
    form = page.locator('[data-testid="stForm"]').first
    form.wait_for()
    _shots(page, form, "form-draft")

    # The classes and the text column first: the numeric columns are still placeholders, and said so.
    page.get_by_role("textbox", name="Range or values of target", exact=True).fill("0, 1")
    for column, categories in CATEGORIES.items():
        choose(page, f"Type of {column}", "categorical")
        page.get_by_role("textbox", name=f"Range or values of {column}", exact=True).fill(categories)
    page.get_by_role("button", name="Apply to the schema").click()
    warning = page.get_by_text("Still at the draft's placeholder range [0, 1]: age, sex, trestbps").first
    warning.wait_for()
    page.wait_for_function(f"() => ({EPSILON_JS})() !== null")
    _shots(page, warning, "form-placeholders")

    for column, typed in RANGES.items():
        page.get_by_role("textbox", name=f"Range or values of {column}", exact=True).fill(typed)
    page.get_by_role("button", name="Apply to the schema").click()
    expect(page.get_by_text("Still at the draft's placeholder range")).to_have_count(0)
    page.wait_for_function(f"() => ({EPSILON_JS})() !== null")
    page.get_by_role("tab", name="As YAML").click()
    yaml_box = page.get_by_role("textbox", name="Schema (YAML or JSON)")
    expect(yaml_box).to_have_value(
        "classes: [0, 1]\nnumeric:\n  age: [20, 90]\n  sex: [0, 1]\n  trestbps: [80, 220]\n  chol: [100, 600]\n"
        "  thalach: [60, 220]\n  exang: [0, 1]\n  oldpeak: [0, 7]\ncategorical:\n  cp: [0, 1, 2, 3]\n"
        "  thal: [normal, fixed, reversable]\nscale: unit\n"
    )
    _shots(page, yaml_box, "form-yaml")

    go_to(page, "Train")
    main.get_by_text("heart.csv (label column target)").first.wait_for()
    expect(main.get_by_text("placeholder range")).to_have_count(0)
    page.get_by_role("button", name="Start training").click()
    main.get_by_text("Completed · 2/2 epochs").first.wait_for(timeout=180_000)
    main.get_by_text("CSV file: heart.csv").first.wait_for()
    _shots(page, main.get_by_role("heading", name="Train"), "train-heart")
