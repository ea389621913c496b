"""Debian's chromium, headless, driven over the DevTools protocol (websocket-client): one page to load, script,
resize and screenshot. Used by the results gallery's browser test and the human study's rater/admin pages (their
test and documentation screenshots, ``videoshop_bench.experiments.study.browser``)."""

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
