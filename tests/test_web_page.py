"""The web console in a real headless Chromium, against the real service: gallery, playground, jobs.

Each test saves screenshots of what it saw under tests/artifacts/ (kept by CI, not in git).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.images import encoded, opened, photo
from tests.test_api import upload

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).parent / "artifacts"
WAIT_S = 60
SIGNING_KEY = "console-test-signing-key"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
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


@pytest.fixture
def page(browser: Any) -> Any:
    browser.set_window_size(1280, 900)
    return browser


def wait(driver: Any, condition: Any, timeout: float = WAIT_S) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:  # say what the page showed instead
        view = driver.execute_script("return document.body ? document.body.innerText.slice(0, 1500) : ''")
        raise AssertionError(f"timed out on {driver.current_url}; the page showed:\n{view}") from None


def css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def screenshot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 5_000


def loaded_size(driver: Any, selector: str) -> tuple[int, int] | None:
    """The natural size of the image at selector once it has loaded, else None."""
    size = driver.execute_script("const i = document.querySelector(arguments[0]);"
                                 "return i && !i.hidden && i.complete && i.naturalWidth ? "
                                 "[i.naturalWidth, i.naturalHeight] : null", selector)
    return tuple(size) if size else None


def open_console(driver: Any, url: str) -> None:
    driver.get(url)
    wait(driver, lambda d: d.execute_script("return !!document.querySelector('#view section, #view .error-text')"))


def write_photos(tmp_path: Path, count: int, seed: int, size: tuple[int, int] = (640, 480)) -> list[Path]:
    paths = []
    for i in range(count):
        path = tmp_path / f"photo-{seed + i}.jpg"
        path.write_bytes(encoded(photo(*size, seed=seed + i + int(time.time() * 1000) % 100_000), "JPEG"))
        paths.append(path)
    return paths


def upload_in_browser(driver: Any, paths: list[Path]) -> list[str]:
    """Upload through the page's file picker; wait for each progress row to say Stored; their ids."""
    before = len(all_css(driver, "#uploads .done"))
    css(driver, "#file").send_keys("\n".join(str(p) for p in paths))
    wait(driver, lambda d: len(all_css(d, "#uploads .done")) == before + len(paths))
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def accessible_names_missing(driver: Any) -> list[str]:
    """Buttons, inputs, selects and images a screen reader could not name."""
    return driver.execute_script("""
        const named = (e) => e.getAttribute('aria-label') || e.labels?.length || e.closest('label');
        const bad = [];
        document.querySelectorAll('#view button, header button').forEach(b => {
          if (!b.hidden && !(b.textContent.trim() || b.getAttribute('aria-label'))) bad.push(b.outerHTML); });
        document.querySelectorAll('#view input, #view select').forEach(i => { if (!named(i)) bad.push(i.outerHTML); });
        document.querySelectorAll('#view img').forEach(i => { if (!i.alt) bad.push(i.outerHTML); });
        return bad;""")


def no_horizontal_scroll(driver: Any) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_upload_three_files_and_see_them_in_the_gallery(page, service, tmp_path):
    open_console(page, f"{service}/")
    assert page.title == "prog-image"
    ids = upload_in_browser(page, write_photos(tmp_path, 3, seed=500))
    for image_id in ids:
        wait(page, lambda d, image_id=image_id: loaded_size(d, f'#grid [data-id="{image_id}"] img'))
    cards = [card.get_attribute("data-id") for card in all_css(page, "#grid .card")]
    assert set(ids) <= set(cards[:3]) and len(cards) == len(set(cards))  # new ones first, none twice
    assert accessible_names_missing(page) == []
    screenshot(page, "gallery")

    # Keyboard only: Tab reaches the newest image's link, Enter opens it.
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    first = cards[0]
    for _ in range(40):
        ActionChains(page).send_keys(Keys.TAB).perform()
        if page.execute_script("return document.activeElement.getAttribute('href')") == f"#/{first}":
            break
    else:
        raise AssertionError("Tab never reached the first image")
    ActionChains(page).send_keys(Keys.ENTER).perform()
    wait(page, lambda d: d.current_url.endswith(f"#/{first}") and loaded_size(d, "#original"))


def test_gallery_scrolls_through_pages(page, service, client):
    listed = client.get("/images", params={"limit": 1000}).json()["items"]
    for i in range(max(0, 30 - len(listed))):  # more than one page (24) to scroll through
        upload(client, encoded(photo(32, 24, seed=600 + i), "PNG"))
    first_page = [item["image_id"] for item in client.get("/images", params={"limit": 24}).json()["items"]]
    open_console(page, f"{service}/")
    wait(page, lambda d: len(all_css(d, "#grid .card")) >= 24)
    page.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    wait(page, lambda d: len(all_css(d, "#grid .card")) > 24)
    cards = [card.get_attribute("data-id") for card in all_css(page, "#grid .card")]
    assert cards[:24] == first_page and len(cards) == len(set(cards))


def test_playground_two_step_pipeline(page, service, client):
    from selenium.webdriver.support.ui import Select

    image_id = upload(client, encoded(photo(640, 480, seed=int(time.time()) % 100_000), "JPEG"))["image_id"]
    open_console(page, f"{service}/#/{image_id}")
    wait(page, lambda d: loaded_size(d, "#original"))
    assert css(page, "#image-title").text == "JPEG · 640\N{MULTIPLICATION SIGN}480"
    Select(css(page, "#add-step-name")).select_by_value("resize")
    css(page, "#add-step").click()
    css(page, "#step-0-w").send_keys("200")
    Select(css(page, "#add-step-name")).select_by_value("rotate")
    css(page, "#add-step").click()
    Select(css(page, "#step-1-deg")).select_by_value("90")
    url = css(page, "#url").get_attribute("value")
    assert url == f"{service}/{image_id}/process?ops=resize:w=200,rotate:deg=90"  # defaults left to the server
    css(page, "#render").click()
    assert wait(page, lambda d: loaded_size(d, "#result")) == (150, 200)
    stats = css(page, "#result-stats").text
    assert "150\N{MULTIPLICATION SIGN}200" in stats and "MISS" in stats, stats
    assert "ingress" in stats or "transform" in stats, stats  # X-Rendered-By
    served = httpx.get(url)  # the URL to copy serves the same image
    assert served.status_code == 200 and opened(served.content).size == (150, 200)

    css(page, "#render").click()  # the same again: now from the cache
    wait(page, lambda d: "HIT" in css(d, "#result-stats").text)
    key = f"{image_id}/process?ops=resize:fit=contain:w=200,rotate:deg=90"
    wait(page, lambda d: any(key.split("/", 1)[1] == a.text for a in all_css(d, "#variants a")), 15)
    row = next(a for a in all_css(page, "#variants tr") if key.split("/", 1)[1] in a.text)
    assert "JPEG" in row.text and "150\N{MULTIPLICATION SIGN}200" in row.text

    page.execute_script("const r = document.getElementById('compare-range'); r.value = 20;"
                        "r.dispatchEvent(new Event('input'))")
    assert "20%" in css(page, "#compare-after").get_attribute("style")
    assert loaded_size(page, "#compare-after-img") == (150, 200)
    assert accessible_names_missing(page) == []
    screenshot(page, "image-page")
    page.execute_script("document.getElementById('compare').scrollIntoView()")
    screenshot(page, "before-after")

    # The API's own error, shown where the result would be.
    Select(css(page, "#add-step-name")).select_by_value("crop")
    css(page, "#add-step").click()
    for field, value in (("x", "5000"), ("y", "0"), ("w", "10"), ("h", "10")):
        css(page, f"#step-2-{field}").send_keys(value)
    css(page, "#render").click()
    error = wait(page, lambda d: all_css(d, "#result-frame .error-text"))[0]
    assert "bad_pipeline" in error.text and "not inside" in error.text, error.text
    assert not css(page, "#result").is_displayed()  # no stale result beside the error
    screenshot(page, "playground-error")


def test_submit_a_job_from_the_gallery_and_watch_it_finish(page, service, tmp_path):
    open_console(page, f"{service}/")
    ids = upload_in_browser(page, write_photos(tmp_path, 2, seed=700, size=(320, 240)))
    assert not css(page, "#selection").is_displayed()  # the job bar shows once something is selected
    for image_id in ids:
        css(page, f'#grid [data-id="{image_id}"] .pick input').click()
    assert css(page, "#selection-count").text == "2 selected"
    for box in all_css(page, ".ops input"):  # exactly png and mirror
        if box.is_selected() != (box.get_attribute("value") in ("png", "mirror")):
            box.click()
    screenshot(page, "gallery-selection")
    css(page, "#submit-job").click()
    wait(page, lambda d: d.current_url.split("#/jobs/")[-1].startswith("web-"))
    wait(page, lambda d: all_css(d, "#job-state.done, #job-state.failed"))
    assert css(page, "#job-state").text == "done"
    assert css(page, "#job-count").text == "4 done, 0 failed, of 4"
    links = [a.get_attribute("href") for a in all_css(page, "#job-items a[target=_blank]")]
    assert len(links) == 4
    assert opened(httpx.get(links[0]).content).size == (320, 240)
    screenshot(page, "job")
    job_id = page.current_url.split("#/jobs/")[-1]
    css(page, 'nav a[data-nav="jobs"]').click()
    wait(page, lambda d: any(a.text == job_id for a in all_css(d, "#jobs a")))
    screenshot(page, "jobs")


def test_delete_an_image_and_see_it_disappear(page, service, tmp_path):
    open_console(page, f"{service}/")
    (image_id,) = upload_in_browser(page, write_photos(tmp_path, 1, seed=800))
    card = f'#grid [data-id="{image_id}"]'
    css(page, f"{card} .info button").click()
    wait(page, lambda d: css(d, "#confirm").get_attribute("open") is not None)
    screenshot(page, "delete-confirm")
    css(page, "#confirm-cancel").click()  # cancelled: nothing happens
    time.sleep(0.3)
    assert all_css(page, card) and httpx.get(f"{service}/{image_id}").status_code == 200
    css(page, f"{card} .info button").click()
    wait(page, lambda d: css(d, "#confirm").get_attribute("open") is not None)
    css(page, "#confirm-ok").click()
    wait(page, lambda d: not all_css(d, card))
    assert httpx.get(f"{service}/{image_id}").status_code == 404


def test_narrow_screen(page, service, client):
    image_id = upload(client, encoded(photo(800, 600, seed=900), "PNG"))["image_id"]
    page.set_window_size(375, 812)
    open_console(page, f"{service}/")
    wait(page, lambda d: all_css(d, "#grid .card img"))
    assert no_horizontal_scroll(page)
    screenshot(page, "gallery-375px")
    open_console(page, f"{service}/#/{image_id}")
    wait(page, lambda d: loaded_size(d, "#original"))
    css(page, "#add-step").click()  # the first step in the list (grayscale): no parameters
    css(page, "#render").click()
    assert wait(page, lambda d: loaded_size(d, "#result")) == (800, 600)
    assert no_horizontal_scroll(page)
    screenshot(page, "image-page-375px")


def test_console_with_signed_urls_and_api_keys(page, app_copy, client):
    base = app_copy("signed", api_keys="k1", signing_keys=SIGNING_KEY)
    # Every HTTP proxy routes the new prefix (until then one may send it to the main app): 5 answers in a row.
    wait(page, lambda _: all(httpx.get(f"{base}/about").json().get("signed_urls") for _ in range(5)))
    image_id = upload(client, encoded(photo(400, 300, seed=950), "PNG"))["image_id"]
    # Another host name for the same server: the browser's kept-alive connections from the tests before
    # were accepted before this app existed, and Serve's HTTP proxy routes them by its routes of then.
    base = base.replace("127.0.0.1", "localhost")
    page.get(f"{base}/")
    page.execute_script("sessionStorage.clear()")  # no key yet
    open_console(page, f"{base}/#/{image_id}")
    # Without a key the server signs nothing: the page says why and asks for the key.
    wait(page, lambda d: css(d, "#key-dialog").get_attribute("open") is not None)
    # The refusal is shown where it happened: an alert (a failed request) or the page's own error block.
    said = "return document.querySelector('#alerts').textContent + document.querySelector('#view').textContent"
    assert "unauthorized" in page.execute_script(said)
    css(page, "#key-input").send_keys("k1")
    css(page, "#key-save").click()
    wait(page, lambda d: loaded_size(d, "#original"))
    assert "sig=" in css(page, "#original").get_attribute("src")
    css(page, "#add-step").click()
    css(page, "#render").click()
    assert wait(page, lambda d: loaded_size(d, "#result")) == (400, 300)
    assert "sig=" in css(page, "#url").get_attribute("value")
    assert SIGNING_KEY not in page.page_source  # the page never holds the signing key
    screenshot(page, "signed-image-page")
    page.execute_script("sessionStorage.clear()")
