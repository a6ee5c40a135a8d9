"""The inspection page opened in headless Chromium shows every section (a screenshot test).

Chromium renders ``index.html`` from a file URL. ``--dump-dom`` gives the DOM it built: every
section id and heading and every picture. A copy of the page with a small layout probe
(:data:`LAYOUT_PROBE`) tells where each section was laid out and that each picture decoded from
its ``data:`` URI. A full-page ``--screenshot`` then must show, inside every section's box,
more than one colour, and many colours where the section has a picture.

In CI (``CI=true``) `scripts/setup.sh` installs Debian's ``chromium`` and a missing browser
fails this test; elsewhere it is skipped with the reason (install it with
``CNN_BROWSER_TESTS=1 scripts/setup.sh`` as root, or ``apt-get install chromium``).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cnn_cli.inspect import inspect_model
from core.inspection.page import SECTIONS
from tests.support.limits import COLD_START_LIMIT_S

pytestmark = pytest.mark.slow

WINDOW = (1400, 1000)
#: The full-page screenshot's height limit (CSS pixels; the digits page is about 5,000).
MAX_SCREENSHOT_HEIGHT = 16000


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is missing in CI: scripts/setup.sh installs it when CI=true")
    pytest.skip(
        "chromium is not installed (CI installs it: CI=true scripts/setup.sh; locally "
        "CNN_BROWSER_TESTS=1 scripts/setup.sh as root, or apt-get install chromium)"
    )


def _run(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=COLD_START_LIMIT_S, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core.artifacts import make_meta, save_artifact
    from core.datasets import DIGIT_CLASSES, Normalisation
    from core.evaluation import evaluate
    from core.model import Sequential
    from core.zoo import digits_cnn

    tmp = tmp_path_factory.mktemp("page")
    model = Sequential.from_spec(digits_cnn(), (1, 8, 8), seed=0)
    norm = Normalisation(mean=[8.0], std=[4.0])
    meta = make_meta(
        model,
        name="digits",
        class_names=list(DIGIT_CLASSES),
        normalisation=norm,
        pixel_range=(0.0, 16.0),
        dataset={"name": "digits"},
        version=1,
    )
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 17, (20, 1, 8, 8), dtype=np.uint8), np.arange(20) % 10
    history = [{"epoch": e, "loss": 1 / e, "accuracy": 0.5 + e / 10} for e in (1, 2, 3)]
    report = evaluate(model, x, y, list(DIGIT_CLASSES), normalisation=norm)
    save_artifact(tmp / "model", model, meta, history=history, evaluation=report)
    image = tmp / "digit.png"
    Image.fromarray((x[0, 0].astype(np.uint16) * 15).astype(np.uint8)).save(image)
    result = inspect_model(tmp / "model", image, tmp / "out", data_dir=tmp / "data")
    assert result.page is not None
    return result.page


#: Appended to a copy of the page (the page itself has no script): once everything has loaded,
#: writes where each section is laid out and each picture's decoded size into the DOM.
LAYOUT_PROBE = """<script>
window.addEventListener("load", () => {
  const out = {height: document.documentElement.scrollHeight, sections: {}, images: []};
  for (const s of document.querySelectorAll("section")) {
    const r = s.getBoundingClientRect();
    out.sections[s.id] = [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];
  }
  for (const img of document.images) out.images.push([img.naturalWidth, img.naturalHeight]);
  const pre = document.createElement("pre");
  pre.id = "layout";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.fixture(scope="module")
def layout(page: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Where Chromium lays out each section (left, top, width, height in CSS pixels), the
    document height and every picture's decoded (width, height)."""
    browser = _chromium()
    tmp = tmp_path_factory.mktemp("probe")
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", LAYOUT_PROBE + "</body>"))
    dom = _run(
        browser,
        tmp / "profile",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--virtual-time-budget=10000",  # let the load event fire before the DOM is dumped
        "--dump-dom",
        probe.as_uri(),
    ).stdout
    found = re.search(r'<pre id="layout">(.*?)</pre>', dom)
    assert found, "the layout probe did not run: " + dom[-500:]
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return result


def test_the_page_itself_has_no_script(page: Path) -> None:
    assert "<script" not in page.read_text()


def test_chromium_builds_every_section_with_its_pictures(page: Path, tmp_path: Path) -> None:
    browser = _chromium()
    dom = _run(browser, tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    for section, heading in SECTIONS:
        assert re.search(rf'<section id="{section}">\s*<h2>{re.escape(heading)}</h2>', dom), section
    assert dom.count("<img ") == page.read_text().count("<img ") > 0


def test_every_section_is_laid_out_and_every_picture_decoded(
    page: Path, layout: dict[str, Any]
) -> None:
    assert list(layout["sections"]) == [section for section, _ in SECTIONS]
    for section, (_, _, width, height) in layout["sections"].items():
        assert width > 0 and height > 0, section
    sizes = layout["images"]
    assert len(sizes) == page.read_text().count("<img ") > 0
    for width, height in sizes:
        assert width > 0 and height > 0  # decoded from its data: URI


def test_a_screenshot_shows_every_section(
    page: Path, layout: dict[str, Any], tmp_path: Path
) -> None:
    browser = _chromium()
    height = min(int(layout["height"]) + 10, MAX_SCREENSHOT_HEIGHT)
    shot = tmp_path / "page.png"
    _run(
        browser,
        tmp_path / "profile",
        f"--screenshot={shot}",
        f"--window-size={WINDOW[0]},{height}",
        page.as_uri(),
    )
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape[:2] == (height, WINDOW[0])
    pictured = set(_sections_with_pictures(page))
    for section, (left, top, width, box_height) in layout["sections"].items():
        crop = pixels[int(top) : int(top + box_height), int(left) : int(left + width)]
        assert crop.size, f"#{section} lies outside the screenshot"
        colours = len(np.unique(crop.reshape(-1, 3), axis=0))
        assert colours > 1, f"#{section}: one flat colour in the screenshot"
        if section in pictured:  # a colour picture, not only a heading
            assert colours > 32, f"#{section}: {colours} colours, no picture shown"


def _sections_with_pictures(page: Path) -> list[str]:
    text = page.read_text()
    return [
        section
        for section, _ in SECTIONS
        if "<img " in text.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
    ]
