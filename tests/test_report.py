"""Results people can look at: media in the offline W&B run, gallery.html in a real headless browser, plots, and
missing or corrupt record files named and skipped."""

import base64
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from videoshop_bench.experiments.gallery import write_gallery
from videoshop_bench.experiments.headless import CHROMIUM, Browser
from videoshop_bench.experiments.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")
SHRINK = ["model=tiny", "model.num_frames=6", "method.num_inference_steps=6", "dataset.loader.num_samples=3",
          "metrics=default", "logger=wandb"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.output={out}", f"paths.cache={out}/cache", *SHRINK])
    Runner(cfg).run()
    return out


def test_offline_wandb_run_stores_every_rows_media_as_files(run_dir):
    runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    files = runs[0] / "files"
    tables = list((files / "media" / "table").glob("samples_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    cols = table["columns"]
    assert len(table["data"]) == 3
    for row in table["data"]:
        r = dict(zip(cols, row))
        for col in ("source_video_file", "output_video_file", "edited_first_frame_file", "mask_file"):
            assert r[col], (col, r["sample_id"])
            assert (files / r[col]).is_file() and (files / r[col]).stat().st_size > 0, (col, r[col])
        assert r["output_video_file"].endswith(".mp4") and r["edited_first_frame_file"].endswith(".png")
        assert r["ssim"] is not None and r["psnr_gt"] is not None  # the metrics side by side with the media


def test_every_run_writes_media_a_gallery_and_plots(run_dir):
    for d in (run_dir / "samples").iterdir():
        assert {"source.mp4", "edited.mp4", "edited_first_frame.png", "mask.png"} <= {p.name for p in d.iterdir()}
    page = (run_dir / "gallery.html").read_text()
    assert page.count('class="sample"') == 3 and "http" not in page.replace("http-equiv", "")
    assert 'src="samples/' in page  # relative paths only
    assert (run_dir / "metrics_per_method.png").stat().st_size > 1000 and (run_dir / "by_edit_type.png").is_file()


def test_gallery_names_missing_and_corrupt_records_and_goes_on(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir / "samples", copy / "samples")
    ids = sorted(p.name for p in (copy / "samples").iterdir())
    (copy / "samples" / ids[0] / "record.json").write_text("{not json")
    (copy / "samples" / ids[1] / "record.json").unlink()
    page = write_gallery([copy], copy / "gallery.html").read_text()
    assert f"{ids[0]}/record.json: corrupt record file" in page
    assert f"{ids[1]}/record.json: missing record file" in page
    assert page.count('class="sample"') == 1 and ids[2] in page


# ---------------------------------------------------------------------------------------------- headless browser
@pytest.fixture
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"SKIPPED LOUDLY: {CHROMIUM} missing, the gallery is NOT browser-tested here "
                    "(apt-get install -y chromium; .ci/run installs it)")
    b = Browser(width=1400, height=900)
    yield b
    b.close()


def test_gallery_loads_without_errors_and_every_video_plays_in_headless_chromium(run_dir, browser):
    browser.call("Page.navigate", url=(run_dir / "gallery.html").as_uri())
    deadline, states = time.time() + 60, []
    while time.time() < deadline:
        states = browser.eval("Array.from(document.querySelectorAll('video')).map(v => [v.readyState, v.error && v.error.code, v.currentSrc])")
        if states and all(s[0] >= 3 for s in states):  # HAVE_FUTURE_DATA: playable
            break
        time.sleep(0.5)
    assert len(states) == 3 * 2, states  # per sample: the source and the one method's output
    assert all(s[0] >= 3 and not s[1] for s in states), states
    time.sleep(1.5)
    assert browser.eval("Array.from(document.querySelectorAll('video')).every(v => !v.paused && v.currentTime > 0)")
    assert browser.eval("Array.from(document.querySelectorAll('img')).every(i => i.complete && i.naturalWidth > 0)")
    # sortable by a metric, filterable by edit type
    order = browser.eval("""(function () {
        document.getElementById('sortMetric').value = 'ssim'; document.getElementById('sortDir').value = 'asc';
        gallery.sortRows();
        return Array.from(document.querySelectorAll('tr.sample')).map(r => JSON.parse(r.dataset.metrics).videoshop.ssim);
    })()""")
    assert order == sorted(order) and len(order) == 3
    shown = browser.eval("""(function () {
        var s = document.getElementById('typeFilter'); s.value = s.options[1].value; gallery.filter();
        return [s.value, Array.from(document.querySelectorAll('tr.sample')).filter(r => r.style.display !== 'none')
                .map(r => r.dataset.editType)];
    })()""")
    assert shown[1] and set(shown[1]) == {shown[0]}
    assert browser.errors == []
    if os.environ.get("GALLERY_SCREENSHOT"):  # docs/gallery.png: GALLERY_SCREENSHOT=path pytest -k headless
        browser.eval("document.getElementById('typeFilter').value = ''; gallery.filter()")
        png = browser.call("Page.captureScreenshot", format="png")["data"]
        Path(os.environ["GALLERY_SCREENSHOT"]).write_bytes(base64.b64decode(png))


def test_sigma_sweep_plot_has_one_point_per_sample_and_sigma(tmp_path):
    import matplotlib.image as mpimg
    import pandas as pd

    from videoshop_bench.experiments.plots import write_sigma_sweep_plot

    rows = [dict(label=f"videoshop[threshold={s}]", overrides=json.dumps({"method.threshold": s}), sample_id=f"s{i}",
                 status="ok", ssim=50.0 + s + i) for s in (0.5, 1, 2, 5) for i in range(3)]
    path = write_sigma_sweep_plot(pd.DataFrame(rows), tmp_path)
    assert path == tmp_path / "combined_sigma_sweep.png" and mpimg.imread(path).shape[0] > 100
    assert write_sigma_sweep_plot(pd.DataFrame(rows[:3]), tmp_path / "x") is None  # one Sigma: no sweep


def test_multirun_report_writes_one_gallery_and_a_combined_wandb_run_in_the_sweep_group(run_dir, tmp_path):
    from videoshop_bench.experiments.merge import combine_runs
    from videoshop_bench.experiments.report import report_multirun

    tables = combine_runs([run_dir], tmp_path)
    group = report_multirun([run_dir], tmp_path, tables, {"_target_": "videoshop_bench.experiments.loggers.WandbLogger", "name": "wandb",
                                                          "mode": "offline", "log_videos": True},
                            "edit/my_sweep")
    assert group == "edit/my_sweep"
    assert (tmp_path / "gallery.html").read_text().count('class="sample"') == 3
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    table = json.loads(next((runs[0] / "files" / "media" / "table").glob("combined_samples_*.json")).read_text())
    files = [dict(zip(table["columns"], r))["output_video_file"] for r in table["data"]]
    assert len(files) == 3 and all((runs[0] / "files" / f).is_file() for f in files)
