"""``aeqlab watch``: the live page in headless Chromium, its loopback binding, its updates and Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

import pytest
from reporthelpers import ROOT, copy_run

from aeqlab.report.watch import make_server


def append_samples(run_dir: Path, count: int) -> int:
    """Append ``count`` samples to a run's journal as a running trainer would (copies of its last one)."""
    con = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        last = list(con.execute("SELECT * FROM samples ORDER BY seq DESC LIMIT 1").fetchone())
        for _ in range(count):
            last[0] += 1
            con.execute(f"INSERT INTO samples VALUES ({','.join('?' * len(last))})", last)
        con.commit()
        return last[0]
    finally:
        con.close()


@pytest.fixture
def live_run(xor_run, tmp_path):
    """A copy of the XOR run, marked running again (a journal that a fixture keeps appending to)."""
    d = copy_run(xor_run[0], tmp_path / "run")
    con = sqlite3.connect(d / "journal.sqlite")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("UPDATE sessions SET exit_status = 'running', ended = NULL")
    con.commit()
    con.close()
    return d


@pytest.fixture
def server(live_run):
    srv = make_server(live_run, port=0, interval=0.5)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield srv, live_run
    srv.shutdown()
    srv.server_close()


def get(srv, path: str) -> bytes:
    host, port = srv.server_address[:2]
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=30) as r:
        return r.read()


def test_binds_loopback_and_serves_state_and_svg(server):
    srv, run = server
    assert srv.server_address[0] == "127.0.0.1"
    state = json.loads(get(srv, "/state.json"))
    n = state["samples"]
    assert state["status"] == "running" and n == state["planned"]
    svg = get(srv, "/fig/learning_curves.svg")
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg
    append_samples(run, 3)
    # the server re-reads a changing journal at most every interval/2: poll until it has (bounded, untimed)
    for _ in range(600):
        state2 = json.loads(get(srv, "/state.json"))
        if state2["samples"] != n:
            break
        threading.Event().wait(0.05)
    assert state2["samples"] == n + 3 and state2["version"] != state["version"]
    page = get(srv, "/").decode()
    assert "http://" not in page.replace("http://www.w3.org", "") and "<script src" not in page  # no CDN


def test_cli_prints_the_url_and_stops_on_ctrl_c_with_130(xor_run):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    code = "from aeqlab.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "watch", str(xor_run[0]), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("watching ") and "http://127.0.0.1:" in line
        url = line.split("at ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "state.json", timeout=30) as r:
            assert json.loads(r.read())["status"] == "completed"  # a finished run works too
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["interrupted: the watch page is stopped"]


def test_bad_interval_is_one_line(xor_run, capsys):
    from aeqlab.cli import main

    with pytest.raises(SystemExit) as done:
        main(["watch", str(xor_run[0]), "--interval", "0"])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--interval must be positive" in err[0]


CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


def _browser(profile: str):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1200,2400",
    ):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


@pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="no chromium/chromedriver (apt-get install chromium chromium-driver)"
)
def test_page_in_chromium_shows_curves_and_updates(server):
    from selenium.webdriver.support.ui import WebDriverWait

    srv, run = server
    host, port = srv.server_address[:2]
    with tempfile.TemporaryDirectory() as profile:
        driver = _browser(profile)
        try:
            driver.get(f"http://{host}:{port}/")
            wait = WebDriverWait(driver, 60)
            wait.until(lambda d: d.find_element("id", "samples").text.isdigit())
            before = int(driver.find_element("id", "samples").text)
            assert driver.find_element("id", "status").text == "running"
            # every figure is an SVG the browser decoded (a broken image has no natural size)
            wait.until(
                lambda d: d.execute_script(
                    "return [...document.images].every(i => i.complete && i.naturalWidth > 0) && document.images.length"
                )
            )
            names = driver.execute_script("return [...document.images].map(i => i.id)")
            assert "fig-learning_curves" in names and "fig-homeostasis" in names
            src = driver.find_element("id", "fig-learning_curves").get_attribute("src")
            last = append_samples(run, 4)
            wait.until(lambda d: d.find_element("id", "samples").text == str(last))
            assert last == before + 4
            wait.until(lambda d: d.find_element("id", "fig-learning_curves").get_attribute("src") != src)
            shots = os.environ.get("AEQLAB_SCREENS")
            if shots:
                driver.save_screenshot(str(Path(shots) / "watch_test.png"))
        finally:
            driver.quit()
