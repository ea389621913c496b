"""Debian's chromium, headless, driven over the DevTools protocol (websocket-client): the study's browser test and
its documentation screenshots (``python -m experiments.study.browser --study DIR --out docs/``)."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One headless chromium page; ``errors`` collects console errors and uncaught exceptions."""

    def __init__(self, executable: str = CHROMIUM, width: int = 1280, height: int = 900):
        import websocket

        self.port, self.profile = _free_port(), tempfile.mkdtemp(prefix="chromium-")
        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--autoplay-policy=no-user-gesture-required", "--remote-allow-origins=*", "--hide-scrollbars",
             f"--window-size={width},{height}", f"--user-data-dir={self.profile}",
             f"--remote-debugging-port={self.port}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline, target = time.time() + 60, None
        while target is None and time.time() < deadline:
            try:
                pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=2))
                target = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
            except Exception:  # noqa: BLE001  (not up yet)
                time.sleep(0.3)
        if target is None:
            self.close()
            raise RuntimeError("chromium did not open its DevTools port within 60 s")
        self.ws = websocket.create_connection(target, timeout=60, suppress_origin=True)
        self.n, self.errors = 0, []
        for m in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.call(m)

    def call(self, method: str, **params: Any) -> dict:
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def _event(self, msg: dict) -> None:
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p['args']]}")
        elif m == "Runtime.exceptionThrown":
            self.errors.append(f"exception: {p['exceptionDetails'].get('exception', {}).get('description')}")
        elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
            self.errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")

    def eval(self, expr: str) -> Any:
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete'")

    def wait(self, expr: str, timeout: float = 30) -> Any:
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(0.1)
        raise TimeoutError(f"browser: {expr} still false after {timeout} s")

    def key(self, key: str, code: str, keycode: int) -> None:
        for t in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=t, key=key, code=code, windowsVirtualKeyCode=keycode)

    def resize(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def screenshot(self, path: str | Path) -> Path:
        png = self.call("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(png))
        return Path(path)

    def close(self) -> None:
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            shutil.rmtree(self.profile, ignore_errors=True)


def videos_playing(b: Browser, timeout: float = 30) -> bool:
    """Wait until the trial's three videos are playable and advancing."""
    b.wait("['vSource','vLeft','vRight'].every(id => document.getElementById(id).readyState >= 3)", timeout)
    time.sleep(1.0)
    return bool(b.eval("['vSource','vLeft','vRight'].every(id => {var v = document.getElementById(id); "
                       "return !v.paused && v.currentTime > 0 && !v.error})"))


def take_screenshots(base_url: str, token: str, admin_token: str, out: Path) -> list[Path]:
    """``study_rater.png`` (a trial, videos playing; not when that rater is done) and ``study_admin.png``."""
    b = Browser(width=1280, height=980)
    try:
        b.goto(f"{base_url}/rate?token={token}")
        b.wait("['intro', 'trial', 'done'].some(id => !document.getElementById(id).hidden)")
        if b.eval("!document.getElementById('intro').hidden"):
            b.eval("document.getElementById('start').click()")
        shots = []
        if b.wait("!document.getElementById('trial').hidden || !document.getElementById('done').hidden") and \
                b.eval("!document.getElementById('trial').hidden"):
            videos_playing(b)
            shots.append(b.screenshot(out / "study_rater.png"))
        b.resize(1500, 900)
        b.goto(f"{base_url}/admin?token={admin_token}")
        b.wait("document.querySelectorAll('#raters tbody tr').length > 0")
        shots.append(b.screenshot(out / "study_admin.png"))
        return shots
    finally:
        b.close()


def play_in_browser(b: Browser, base_url: str, token: str, manifest: dict, seed: int = 0,
                    screenshot_after: int | None = None, out: Path | None = None) -> int:
    """A simulated rater's choices (simulate.simulated_preference) clicked in the real page, one trial after the
    other; a screenshot of the rater page after ``screenshot_after`` votes. Returns the number of votes given."""
    import numpy as np

    from .simulate import Profile, choice_for, simulated_preference, utility_scales

    rng, trials, scales = np.random.default_rng(seed), {t["id"]: t for t in manifest["trials"]}, utility_scales(manifest)
    b.goto(f"{base_url}/rate?token={token}")
    b.wait("!document.getElementById('intro').hidden || !document.getElementById('trial').hidden")
    if b.eval("!document.getElementById('intro').hidden"):
        b.eval("document.getElementById('start').click()")
    n = 0
    while b.wait("!document.getElementById('trial').hidden || !document.getElementById('done').hidden") and \
            b.eval("document.getElementById('done').hidden"):
        view = b.eval("study.current()")
        view = {"left": view["left"], "right": view["right"], "id": view["id"]}
        if screenshot_after is not None and n == screenshot_after and out is not None:
            videos_playing(b)
            b.screenshot(out / "study_rater.png")
        choice = choice_for(view, simulated_preference(trials[view["id"]], Profile(), scales, rng), trials[view["id"]])
        before = b.eval("document.getElementById('progressText').textContent")
        b.eval(f"document.getElementById({ {'left': 'bLeft', 'right': 'bRight', 'tie': 'bTie'}[choice]!r}).click()")
        b.wait(f"document.getElementById('progressText').textContent !== {before!r}")
        n += 1
    return n


def main(argv=None) -> None:
    """``python -m experiments.study.browser --url URL --study DIR --out docs/ [--play]``: documentation screenshots
    of a served study (the first lab token's trial page and the admin page); ``--play``: that rater then answers
    every trial in the browser with simulated choices (the screenshot is taken after ``--after`` votes)."""
    import argparse

    from .design import load_manifest, read_admin_token, read_tokens

    p = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--study", required=True)
    p.add_argument("--out", default="docs")
    p.add_argument("--rater", type=int, default=0, help="index of the lab token in tokens.csv")
    p.add_argument("--play", action="store_true")
    p.add_argument("--after", type=int, default=5)
    a = p.parse_args(argv)
    out, token = Path(a.out), read_tokens(a.study)[a.rater]["token"]
    out.mkdir(parents=True, exist_ok=True)
    if a.play:
        b = Browser(width=1280, height=980)
        try:
            n = play_in_browser(b, a.url, token, load_manifest(a.study), screenshot_after=a.after, out=out)
            print(f"browser rater {read_tokens(a.study)[a.rater]['rater_id']}: {n} votes; errors: {b.errors or 'none'}")
            b.resize(1500, 900)
            b.goto(f"{a.url}/admin?token={read_admin_token(a.study)}")
            b.wait("document.querySelectorAll('#raters tbody tr').length > 0")
            b.screenshot(out / "study_admin.png")
        finally:
            b.close()
    else:
        take_screenshots(a.url, token, read_admin_token(a.study), out)
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
