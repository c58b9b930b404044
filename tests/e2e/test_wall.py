"""The wall at `/` in a real browser (Debian's chromium, driven by chromedriver) against a
running `sitroom up`: live buses, alarms, an acknowledgement through the page (which asks for
a token because the API needs one), the language switch, and a screenshot kept as an
artifact."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.test_up import Up, wait_json

ARTIFACTS = Path(
    os.environ.get("SITROOM_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts"
)
TOKEN_NAME = "petugas.e2e"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        # Never a silent skip: the wall is untested without a browser. .ci/run installs it.
        pytest.fail(
            "the wall's browser test needs Debian's chromium and chromedriver: "
            "apt-get install -y chromium chromium-driver (.ci/run does this)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1920,1080", "--lang=id"):  # fmt: skip
        options.add_argument(arg)
    b = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield b
    finally:
        b.quit()


@pytest.fixture
def up_env(tmp_path: Path) -> tuple[dict[str, str], str]:
    """`up` with a tokens file: acting on an alarm needs a token, reading does not."""
    token = secrets.token_urlsafe(24)
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        f'[[token]]\nname = "{TOKEN_NAME}"\n'
        f'sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\nroles = ["alarms"]\n'
    )
    env = {
        **os.environ,
        "SITROOM_DATA_DIR": str(tmp_path / "data"),
        "SITROOM_API_PORT": "0",
        "SITROOM_LOG_FORMAT": "json",
        "SITROOM_MQTT_PREFIX": f"e2e-{tmp_path.name}",
        "SITROOM_API_TOKENS_FILE": str(tokens),
    }
    return env, token


def wait(b: WebDriver, script: str, what: str, timeout_s: float = 60) -> object:
    try:
        return WebDriverWait(b, timeout_s, poll_frequency=0.5).until(
            lambda d: d.execute_script(script)
        )
    except Exception:
        shot = ARTIFACTS / "wall-failure.png"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        b.save_screenshot(str(shot))
        logs = "\n".join(str(e) for e in b.get_log("browser"))
        raise AssertionError(f"the wall never showed {what} (screenshot {shot}):\n{logs}") from None


def fill_dialog(b: WebDriver, field: str, value: str) -> None:
    wait(b, "return document.querySelector('#auth').open", "the operator dialog", 10)
    box = b.find_element(By.ID, field)
    box.clear()
    box.send_keys(value)
    b.find_element(By.ID, "auth-ok").click()


def test_the_wall_shows_the_room_live_and_acknowledges_an_alarm(
    up_env: tuple[dict[str, str], str], browser: WebDriver
) -> None:
    env, token = up_env
    started = time.monotonic()
    up = Up(env)
    try:
        browser.get(f"{up.base}/")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Ruang Situasi Kota Semarang"
        wait(browser, "return Number(document.body.dataset.liveBuses) >= 5", "live buses")
        wait(browser, "return document.body.dataset.live === 'on'", "the live mark")
        # A procurement red flag stays open (a congestion alarm may clear meanwhile).
        alarm_id = wait(
            browser,
            "const b = document.querySelector("
            "'#alarms li[data-domain=procurement] button.ack, #alarms li[data-domain=reports] button.ack');"
            "return b && b.closest('li').dataset.alarmId;",
            "an alarm to acknowledge",
        )
        assert isinstance(alarm_id, str)
        row = f"#alarms li[data-alarm-id='{alarm_id}']"
        browser.execute_script(f'document.querySelector("{row} button.ack").click()')
        fill_dialog(browser, "auth-name", "Budi")  # first action: who is acting
        # The API has tokens: it answers 401 and the page asks for one.
        wait(
            browser,
            "return document.querySelector('#auth').open && "
            "document.querySelector('#auth-why').textContent.includes('token')",
            "the token prompt",
            15,
        )
        fill_dialog(browser, "auth-token", token)
        # The worker applies it; the live stream brings the transition back to the page.
        wait(
            browser,
            f"const a = window.sitroomWall.alarm('{alarm_id}'); "
            f"return a !== null && a.acknowledged_by === '{TOKEN_NAME}';",
            "the alarm acknowledged",
        )
        body = wait_json(f"{up.base}/v1/alarms/{alarm_id}", lambda b: b["acknowledged_by"], 15)
        assert body["acknowledged_by"] == TOKEN_NAME  # the token's name, not the typed one
        assert browser.execute_script("return sessionStorage.getItem('sitroom.token')") == token
        assert browser.execute_script("return document.querySelectorAll('.leaflet-interactive').length") >= 16  # fmt: skip

        browser.find_element(By.ID, "lang").click()
        wait(browser, "return document.querySelector('h1').textContent === 'Semarang City Situation Room'", "English")  # fmt: skip
        browser.find_element(By.ID, "lang").click()
        wait(browser, "return document.querySelector('h1').textContent === 'Ruang Situasi Kota Semarang'", "Bahasa Indonesia")  # fmt: skip
        time.sleep(2)  # tiles reloaded in the language switched back to
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "wall.png"))
    finally:
        code, _, _ = up.ctrl_c(30)
    assert code == 0
    assert time.monotonic() - started < 120
