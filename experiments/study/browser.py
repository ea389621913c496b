"""The study's pages in headless chromium (``videoshop_bench.experiments.headless.Browser``): the browser test's helpers and the
documentation screenshots (``python -m videoshop_bench.experiments.study.browser --study DIR --out docs/``)."""

from __future__ import annotations

import time
from pathlib import Path

from videoshop_bench.experiments.headless import CHROMIUM, Browser  # noqa: F401  (CHROMIUM re-exported for the test)

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
    """``python -m videoshop_bench.experiments.study.browser --url URL --study DIR --out docs/ [--play]``: documentation screenshots
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
