"""`aelab serve`: a web page, built with Gradio, to explore trained runs in a browser.

Per run, the tabs its model supports: draw or upload an image and see its reconstruction, a
denoised copy at a chosen noise level and its anomaly score; the test codes as a scatter
(2-D codes as they are, larger ones through PCA) where a click decodes that point; a path
between two images; samples of a generative model; text from a character model. An overview
tab shows the runs' metrics side by side. A run that fails to load shows its error on the page.

Modules: :mod:`.explorer` (one run's answers), :mod:`.page` (the Gradio page and serving it).
"""

from .explorer import GALLERY, GRID_SHOWN, SHOWN, Explorer, from_sketch, from_upload, shown
from .page import CSS, METRICS, build_app, check_port, load_runs, metrics_table, serve

__all__ = [
    "CSS",
    "Explorer",
    "GALLERY",
    "GRID_SHOWN",
    "METRICS",
    "SHOWN",
    "build_app",
    "check_port",
    "from_sketch",
    "from_upload",
    "load_runs",
    "metrics_table",
    "serve",
    "shown",
]
