"""The HTML editions in a real browser (chromium): they read on a 390 px phone and on a desktop."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser import browser
from conftest import REPORT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium():
    with browser() as opened:
        yield opened


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("lang", ["ru", "en"])
def test_the_html_edition_reads_on_a_phone_and_a_desktop(rendered: Path, chromium, lang: str, width: int) -> None:
    phone = width < 600  # a phone lays pages out at 980 px unless they say otherwise (the viewport tag)
    page = chromium.new_page(viewport={"width": width, "height": 844}, is_mobile=phone, has_touch=phone)
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((rendered / f"{REPORT}.{lang}.html").as_uri())
    layout = page.evaluate("""() => ({
        scroll: document.documentElement.scrollWidth,
        images: [...document.images].map(i => [i.naturalWidth, i.getBoundingClientRect().right]),
        font: parseFloat(getComputedStyle(document.querySelector('main p')).fontSize),
        widest: Math.max(...[...document.querySelectorAll('main p, h1, h2')].map(e => e.getBoundingClientRect().right)),
    })""")
    page.close()
    assert errors == []
    assert layout["scroll"] <= width, f"the page is {layout['scroll']} px wide in a {width} px window"
    assert layout["widest"] <= width
    assert all(natural > 0 and right <= width for natural, right in layout["images"]), layout["images"]
    assert layout["font"] >= 14, "text a phone can read without zooming"
