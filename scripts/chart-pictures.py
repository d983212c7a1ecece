"""Draw one picture of each chart kind for the README, from the test suite's example data.

Usage: .venv/bin/python scripts/chart-pictures.py   (writes docs/charts/<kind>.png)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from projects import write_dataset  # noqa: E402
from test_values_charts import SPECS  # noqa: E402

from reporter.pipeline import charts, datasets, i18n, model  # noqa: E402
from reporter.theme import THEME_DIR  # noqa: E402

PICTURES = {"bars": "bars", "vertical": "bars-vertical", "series": "series", "line": "series-line",
            "compare": "compare", "shares": "shares", "timeline": "timeline"}


def main() -> None:
    out = ROOT / "docs" / "charts"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        write_dataset(Path(folder))
        known = model.gather([datasets.load(Path(folder), "brief")], ("ru", "en"), {"en": "en_GB"})
    lang = i18n.language("en", "en_GB")
    fonts = [THEME_DIR / "fonts" / name for name in charts.FONT_FILES]
    for key, name in PICTURES.items():
        spec = SPECS[key]
        with charts.style(spec, lang):
            figure, _sources, _rows = charts.figure(spec, known, lang, fonts)
            figure.patch.set_alpha(1)
            figure.savefig(out / f"{name}.png", format="png", dpi=110, metadata={"Software": None})
        print(out / f"{name}.png")


if __name__ == "__main__":
    main()
