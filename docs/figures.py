"""Every picture in README.md and docs/, made again from the commands that make them, so they cannot drift.

    python docs/figures.py            # all of them (runs `aelab demo` first when runs/demo* are missing)
    python docs/figures.py serve      # one: demo-denoising, serve or style

- docs/demo-denoising.png: `make demo`'s seed-1 denoiser (runs/demo-denoise) evaluated again, its
  denoising.png (original / noisy / denoised);
- docs/serve.png: `aelab serve runs/demo runs/demo-denoise` in Chromium (Playwright), a test image
  of the run's gallery picked on the denoiser's tab;
- docs/style-random-filters.png: benchmarks/style_example.py's style transfer (random VGG19 filters
  unless torchvision's weights are cached).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DEMO = [ROOT / "runs" / "demo", ROOT / "runs" / "demo-denoise"]
FIGURES = {"demo-denoising": "demo-denoising.png", "serve": "serve.png", "style": "style-random-filters.png"}
PORT = 7871


def demo_runs() -> None:
    """`make demo`'s runs, trained when missing (about 8 minutes on 2 cores)."""
    if not all((run / "metrics.json").is_file() for run in DEMO):
        subprocess.run([sys.executable, "-m", "aelab", "demo", "--out", str(DEMO[0]), "--overwrite"], check=True)


def demo_denoising() -> Path:
    import aelab

    demo_runs()
    aelab.evaluate(DEMO[1], progress="none")  # the figure as the current code draws it
    return Path(shutil.copy(DEMO[1] / "denoising.png", DOCS / FIGURES["demo-denoising"]))


def serve() -> Path:
    from playwright.sync_api import expect, sync_playwright

    from aelab.webapp import serve as start

    demo_runs()
    app = start([str(run) for run in DEMO], port=PORT, block=False)
    out = DOCS / FIGURES["serve"]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1250, "height": 900})
            page.goto(f"http://127.0.0.1:{PORT}")
            page.get_by_role("tab", name="demo-denoise").click()
            page.locator("#gallery-1 img").nth(3).click()
            expect(page.locator("#score-1")).to_contain_text("Anomaly score", timeout=120_000)
            expect(page.locator("#distribution-1 img")).to_be_visible()
            page.screenshot(path=str(out), full_page=True)
            browser.close()
    finally:
        app.close()
    return out


def style() -> Path:
    out = DOCS / FIGURES["style"]
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "style_example.py"), "--out", str(out)], check=True)
    return out


MAKERS = {"demo-denoising": demo_denoising, "serve": serve, "style": style}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", help=f"figures to make: {', '.join(MAKERS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.which if name not in MAKERS]
    if unknown:
        parser.error(f"no figure named {', '.join(unknown)}; choose from {', '.join(MAKERS)}")
    for name in args.which or MAKERS:
        print(f"wrote {MAKERS[name]().relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
