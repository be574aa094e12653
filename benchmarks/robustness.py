"""The careless user's cases, run for real: each command, what it answered (exit code and its one
line), and whether every file that existed before is byte-identical after.

    python benchmarks/robustness.py            # writes benchmarks/results/robustness.md

Every case runs `aelab` in-process in a fresh temporary folder holding a small untrained run of
each kind, a few images and some files of the user's. The tests (tests/test_outputs.py,
tests/test_limits.py, tests/test_core.py, tests/test_fuzz.py) check the same cases; this script
writes them down as one table.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aelab import create_model
from aelab.cli import main
from aelab.runs import Run, write_json

ROOT = Path(__file__).resolve().parent

# (class, what the careless user does, the arguments; {name} are paths in the case's folder)
CASES = [
    ("data kept", "`--out` names the user's file (`sample`)", "sample {vae} --out {mine.png}"),
    ("data kept", "`--out` names the user's JSON (`ensemble --out thesis.tex`)", "ensemble {ae} {ae} --out {thesis.tex}"),
    ("data kept", "`encode --out` an existing .npy", "encode {ae} --data mnist-sample --out {codes.npy}"),
    ("data kept", "`style` writes over its own style input", "style {photo.png} {painting.png} --out {painting.png}"),
    ("data kept", "... even with --overwrite", "style {photo.png} {painting.png} --out {painting.png} --overwrite"),
    ("data kept", "`style`'s JSON beside the result exists", "style {photo.png} {painting.png} --out {result.png}"),
    ("data kept", "`score --maps` names a file, with a new --out", "score {ae} {digit.png} --maps {mine.png} --out {new.csv}"),
    ("data kept", "`reconstruct` whose output is one of its inputs", "reconstruct {ae} {recon/digit_recon.png} {digit.png} --out {recon} --overwrite"),
    ("data kept", "`--overwrite` a run holding the user's `my-painting.png`", "train dense --out {ae-mine} --overwrite"),
    ("data kept", "`--overwrite` through a link to a run", "train dense --out {link} --overwrite"),
    ("no traceback", "`--param in_size=100000`", "train dense --param in_size=100000 --out {new-run}"),
    ("no traceback", "`--param code_size=1000000000`", "train best --param code_size=1000000000 --out {new-run}"),
    ("no traceback", "`sample -n 100000000`", "sample {vae} -n 100000000"),
    ("no traceback", "`style --height 100000`", "style {photo.png} {painting.png} --out {s.png} --height 100000"),
    ("no traceback", "`style --height 8`", "style {photo.png} {painting.png} --out {s.png} --height 8"),
    ("no traceback", "a content image 300 pixels wide and 1 high", "style {wide.png} {painting.png} --out {s.png}"),
    ("no traceback", "`manifold --grid 0`", "manifold {vae} --grid 0"),
    ("no traceback", "`latent --limit 0`", "latent {ae} --limit 0 --data mnist-sample"),
    ("no traceback", "`interpolate --steps 1000000`", "interpolate {vae} --steps 1000000"),
    ("no traceback", "`tune --metric val_nosuch`", "tune dense --metric val_nosuch --out {study}"),
    ("not harmful", "`train --devices 64` on this CPU", "train dense --devices 64 --out {new-run}"),
    ("not harmful", "`train --num-nodes 2` without a launcher", "train dense --num-nodes 2 --out {new-run}"),
    ("not harmful", "`--lr-patience` under `--schedule cosine`", "train dense --schedule cosine --lr-patience 3 --out {new-run}"),
]


def untrained(name: str, folder: Path) -> Path:
    torch.manual_seed(0)
    model = create_model(name).eval()
    run = Run(folder)
    write_json(run.config_path, {"model": name, "params": model.params, "train": {}})
    run.save_weights(model)
    return folder


def lay_out(root: Path) -> None:
    """The case's folder: runs, images and the user's own files."""
    untrained("conv-resize", root / "ae")
    untrained("vae", root / "vae")
    untrained("conv-resize", root / "ae-mine")
    (root / "ae-mine" / "my-painting.png").write_bytes(b"the user's painting")
    (root / "link").symlink_to(root / "ae", target_is_directory=True)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(root / "digit.png")
    for name in ("photo.png", "painting.png"):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(root / name)
    Image.fromarray(np.zeros((1, 300, 3), np.uint8)).save(root / "wide.png")
    (root / "mine.png").write_bytes(b"the user's file")
    (root / "thesis.tex").write_text("\\chapter{years of work}")
    np.save(root / "codes.npy", np.zeros(3))
    (root / "result.json").write_text("the user's notes")
    (root / "recon").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(root / "recon" / "digit_recon.png")


def fingerprint(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def run_case(template: str) -> tuple[int, str, bool]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lay_out(root)
        args = [root / part[1:-1] if part.startswith("{") else part for part in template.split()]
        before = fingerprint(root)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main([str(a) for a in args])
            except SystemExit as stop:
                code = stop.code
        after = fingerprint(root)
        kept = all(after.get(name) == digest for name, digest in before.items())
        lines = [line for line in err.getvalue().splitlines() if "error:" in line or "Traceback" in line]
        return code, (lines[0] if lines else "").replace(str(root) + "/", ""), kept


# the cases that need a server, a killed process or many generated inputs: tests, not rows here
ELSEWHERE = [
    "Tested in `tests/`, not run here (they need a server, a killed process or generated inputs):",
    "- a `tune` worker killed mid-trial: its trial is failed and trained again with the same parameters, "
    "by the next worker on a database (heartbeat) or by the command itself with `--workers K` "
    "(`tests/test_tune.py`);",
    "- two `tune` workers with their own `--out` on one PostgreSQL study: both exit 0 (`tests/test_tune.py`);",
    "- a killed `--overwrite` leaves a hidden sibling: the next command on the run removes and names it "
    "(`tests/test_core.py`);",
    "- every run-using command driven with generated arguments and files: exit 0, 1 or 2, no traceback, "
    "nothing outside its folder changed (`tests/test_fuzz.py`; `AELAB_FUZZ_EXAMPLES` for a longer run).",
]


def main_(argv: list[str] | None = None) -> int:
    rows = ["| class | case | command | exit | says | files kept |", "|---|---|---|---|---|---|"]
    for kind, what, template in CASES:
        code, says, kept = run_case(template)
        command = "aelab " + template.replace("{", "").replace("}", "")
        rows.append(f"| {kind} | {what} | `{command}` | {code} | {says.replace('|', '/')} | {'yes' if kept else 'NO'} |")
        print(rows[-1], flush=True)
    text = ["# Robustness: the careless user's cases", "",
            "Made by `python benchmarks/robustness.py`: each case run for real in a fresh folder. \"files kept\": every "
            "file that existed before the command is byte-identical after it.", "", *rows, "", *ELSEWHERE, ""]
    (ROOT / "results" / "robustness.md").write_text("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main_())
