"""The README's picture of `aelab serve`: the page on the `make demo` runs, a test digit uploaded.

    python docs/serve_screenshot.py               # -> docs/serve.png (needs Playwright and Chromium)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

from aelab.data import resolve_data
from aelab.webapp import serve

PORT = 7871


def main() -> int:
    from playwright.sync_api import expect, sync_playwright

    runs = [Path("runs/demo"), Path("runs/demo-denoise")]
    app = serve([str(r) for r in runs], port=PORT, block=False)
    digit = Path(tempfile.mkdtemp()) / "digit.png"
    Image.fromarray((resolve_data("mnist-sample").test[3, 0].numpy() * 255).astype("uint8")).save(digit)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1250, "height": 900})
            page.goto(f"http://127.0.0.1:{PORT}")
            page.get_by_role("tab", name="demo-denoise").click()
            page.locator("#upload-1 input[type=file]").set_input_files(str(digit))
            expect(page.locator("#score-1")).to_contain_text("Anomaly score", timeout=120_000)
            page.screenshot(path=str(Path(__file__).with_name("serve.png")), full_page=True)
            browser.close()
    finally:
        app.close()
    print(f"wrote {Path(__file__).with_name('serve.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
