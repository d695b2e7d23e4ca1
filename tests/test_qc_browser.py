"""The reports open in headless Chromium (Debian ``chromium`` + ``chromium-driver``,
driven by selenium through chromedriver): no console error, no network request, not
blank, every image loaded; the group page sorts without error.

Skipped with a reason when chromium, chromedriver or selenium is missing.
"""

# ruff: noqa: F811 - fixtures imported from test_qc_support are parameters here
from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_qc_support import add_image, make_ctx, real_heads  # noqa: F401 - fixture

from bidsdeid.qc import stage
from bidsdeid.qc.group import write_group_report

pytestmark = [pytest.mark.needs_shared, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("chromium and chromedriver are not installed (Debian packages chromium, "
                    "chromium-driver; scripts/install.sh --dev installs them as root)")
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed (pip install .[test])")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-default-apps", "--disable-sync",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                "--window-size=1280,1600"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def reports(real_heads: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, Path]:
    """The three kinds of page, from a real run of the stage and the group report."""
    root = tmp_path_factory.mktemp("qc_browser")
    ctx = make_ctx(root, "01", "A1")
    add_image(ctx, "T1w", real_heads["niivue_T1w"])
    add_image(ctx, "T2w", real_heads["niivue_T2w"])
    stage.run(ctx)
    cfg = ctx.config
    (cfg.reports_dir / "review.tsv").write_text(
        "participant\timage\tverdict\tcomment\treviewer\n01\t*\tpass\tchecked <b>ok</b>\tAB\n")
    return {"private": cfg.reports_dir / "sub-01.html",
            "shareable": ctx.staging / "derivatives" / "bidsdeid" / "sub-A1.html",
            "group": write_group_report(cfg)}


def open_page(driver: Any, path: Path) -> dict[str, Any]:
    """Load ``path``; return its console messages, network requests and image states."""
    driver.get("about:blank")
    driver.get_log("browser")
    driver.get_log("performance")  # forget what came before
    driver.get(path.as_uri())
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);")
    requests = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            requests.append(msg["params"]["request"]["url"])
    return {"console": driver.get_log("browser"), "requests": requests, "images": images,
            "screenshot": driver.get_screenshot_as_png()}


def assert_page_is_sound(page: dict[str, Any], path: Path, min_images: int) -> None:
    errors = [m for m in page["console"] if m.get("level") in ("SEVERE", "ERROR")]
    assert not errors, errors
    outside = [u for u in page["requests"] if not (u == path.as_uri() or u.startswith("data:"))]
    assert not outside, outside
    assert len(page["images"]) >= min_images
    assert all(done and width > 0 for done, width in page["images"]), page["images"]
    import cv2

    shot = cv2.imdecode(np.frombuffer(page["screenshot"], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert shot is not None and shot.std() > 20  # text, tables and renders, not blank
    assert len(np.unique(shot)) > 50


@pytest.mark.parametrize(("kind", "min_images"), [("private", 20), ("shareable", 10),
                                                  ("group", 0)])
def test_report_opens_clean_in_chromium(browser: Any, reports: dict[str, Path], kind: str,
                                        min_images: int) -> None:
    path = reports[kind]
    page = open_page(browser, path)
    assert_page_is_sound(page, path, min_images)
    html = path.read_text()
    # nothing that could fetch: no URL in src/href other than data: and local anchors
    for url in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert url.startswith(("data:image/png;base64,", "#", "sub-")), url[:60]
    assert "Content-Security-Policy" in html


def test_group_page_sorts_and_escapes(browser: Any, reports: dict[str, Path]) -> None:
    page = open_page(browser, reports["group"])
    assert_page_is_sound(page, reports["group"], 0)
    from selenium.webdriver.common.by import By

    def column(col: int) -> list[str]:
        rows = browser.find_elements(By.CSS_SELECTOR, "#qc tbody tr")
        return [r.find_elements(By.TAG_NAME, "td")[col].text for r in rows]

    headers = browser.find_elements(By.CSS_SELECTOR, "#qc thead th")
    titles = [h.text for h in headers]
    image_col = titles.index("image")
    first = column(image_col)
    assert first[0].endswith("_T2w.nii.gz")  # inconclusive before pass
    headers[image_col].click()
    assert column(image_col) == sorted(first)
    headers[image_col].click()
    assert column(image_col) == sorted(first, reverse=True)
    assert not [m for m in browser.get_log("browser") if m.get("level") == "SEVERE"]
    # the reviewer's comment is text, not markup (autoescape)
    assert "checked <b>ok</b>" in column(titles.index("review comment"))
    assert browser.find_elements(By.CSS_SELECTOR, "#qc a")[0].get_attribute(
        "href").endswith("/sub-01.html")
