"""The web page in a real headless Chromium: upload a file, see every variant load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.images import encoded, photo

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture
def browser():
    if not (Path(CHROMIUM).exists() and (Path(DRIVER).exists() or shutil.which("chromedriver"))):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_upload_and_see_variants(browser, service, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    picture = tmp_path / "photo.png"
    picture.write_bytes(encoded(photo(640, 480, seed=71), "PNG"))
    browser.get(f"{service}/")
    assert browser.title == "prog-image"
    browser.find_element(By.ID, "file").send_keys(str(picture))
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "image-id"))
    loaded = ("return [...document.querySelectorAll('img.variant')]"
              ".map(img => img.complete ? img.naturalWidth : 0)")
    widths = WebDriverWait(browser, 90).until(
        lambda d: (w := d.execute_script(loaded)) and all(width > 0 for width in w) and w)
    assert len(widths) == 6 and widths[:4] == [640, 640, 640, 640] and widths[4] == 400
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "web-page.png"))
    assert (ARTIFACTS / "web-page.png").stat().st_size > 10_000
