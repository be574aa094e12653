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
    (
        "data kept",
        "`--out` names the user's JSON (`ensemble --out thesis.tex`)",
        "ensemble {ae} {ae} --out {thesis.tex}",
    ),
    ("data kept", "`encode --out` an existing .npy", "encode {ae} --data mnist-sample --out {codes.npy}"),
    ("data kept", "`style` writes over its own style input", "style {photo.png} {painting.png} --out {painting.png}"),
    ("data kept", "... even with --overwrite", "style {photo.png} {painting.png} --out {painting.png} --overwrite"),
    ("data kept", "`style`'s JSON beside the result exists", "style {photo.png} {painting.png} --out {result.png}"),
    (
        "data kept",
        "`score --maps` names a file, with a new --out",
        "score {ae} {digit.png} --maps {mine.png} --out {new.csv}",
    ),
    (
        "data kept",
        "`reconstruct` whose output is one of its inputs",
        "reconstruct {ae} {recon/digit_recon.png} {digit.png} --out {recon} --overwrite",
    ),
    (
        "data kept",
        "`--overwrite` a run holding the user's `my-painting.png`",
        "train dense --out {ae-mine} --overwrite",
    ),
    ("data kept", "`--overwrite` through a link to a run", "train dense --out {link} --overwrite"),
    (
        "data kept",
        "`--overwrite` a run without aelab's record of its files",
        "train dense --out {ae-norecord} --overwrite",
    ),
    ("data kept", "`--overwrite` a run whose note sits among its logs", "train dense --out {ae-note} --overwrite"),
    (
        "data kept",
        "`encode --out` inside the data folder it reads",
        "encode {ae} --data-dir {np2} --out {np2/x_test.npy} --overwrite",
    ),
    (
        "data kept",
        "`latent --out` an image of the folder it reads",
        "latent {ae} --data-dir {imgs} --out {imgs/00.png} --overwrite",
    ),
    (
        "data kept",
        "`ensemble --out` an input run's config",
        "ensemble {ae} {vae-ae} --out {vae-ae/config.json} --overwrite",
    ),
    (
        "data kept",
        "`encode --out` a hard link to the run's weights",
        "encode {ae} --data mnist-sample --out {weights.npy} --overwrite",
    ),
    ("data kept", "`score --out` a CSV that begins with aelab's header", "score {ae} {digit.png} --out {scores.csv}"),
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
    ("no traceback", "`train --seed -1`", "train dense --seed -1 --out {new-run}"),
    ("no traceback", "`sample --seed 99999999999999`", "sample {vae} --seed 99999999999999"),
    ("no traceback", "`generate --length 100000000`", "generate {text} --prompt the --length 100000000"),
    ("no traceback", '`report` of a run whose metrics.json says "NaN"', "report {ae-nan} --out {report.html}"),
    ("not harmful", "`tune --workers 64` on this CPU", "tune dense --workers 64 --out {study}"),
    ("not harmful", "`train --devices 64` on this CPU", "train dense --devices 64 --out {new-run}"),
    ("not harmful", "`train --num-nodes 2` without a launcher", "train dense --num-nodes 2 --out {new-run}"),
    (
        "not harmful",
        "`--lr-patience` under `--schedule cosine`",
        "train dense --schedule cosine --lr-patience 3 --out {new-run}",
    ),
]


def untrained(name: str, folder: Path) -> Path:
    """A run folder holding a freshly initialised model, with aelab's record of its files."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    run = Run(folder)
    with run.recording():
        write_json(run.config_path, {"model": name, "params": model.params, "train": {}})
        run.save_weights(model)
    return folder


def lay_out(root: Path) -> None:
    """The case's folder: runs, images and the user's own files."""
    untrained("conv-resize", root / "ae")
    untrained("vae", root / "vae")
    untrained("conv-resize", root / "ae-mine")
    (root / "ae-mine" / "my-painting.png").write_bytes(b"the user's painting")
    untrained("conv-resize", root / "ae-norecord")
    (root / "ae-norecord" / ".aelab-files.json").unlink()
    untrained("conv-resize", root / "ae-note")
    (root / "ae-note" / "logs" / "tensorboard").mkdir(parents=True)
    (root / "ae-note" / "logs" / "tensorboard" / "notes.txt").write_text("what I tried")
    untrained("conv-resize", root / "vae-ae")
    untrained("char-lstm", root / "text")
    untrained("conv-resize", root / "ae-nan")
    (root / "ae-nan" / "metrics.json").write_text('{"test_rmse": "NaN"}')
    (root / "np2").mkdir()
    np.save(root / "np2" / "x_test.npy", np.zeros((8, 28, 28), np.float32))
    np.save(root / "np2" / "x_train.npy", np.zeros((8, 28, 28), np.float32))
    (root / "imgs").mkdir()
    (root / "weights.npy").hardlink_to(root / "ae" / "model.safetensors")
    (root / "scores.csv").write_text("file,score,outlier\nmy-scan.png,0.1,0\n")
    (root / "link").symlink_to(root / "ae", target_is_directory=True)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(root / "digit.png")
    for i in range(12):
        Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(root / "imgs" / f"{i:02d}.png")
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
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


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
    "- every run-using command driven with generated arguments and files (links and hard links to inputs, paths "
    "inside the run and the data folder among them): exit 0 or 2, no traceback, no input changed even with "
    "--overwrite, nothing outside its folder changed (`tests/test_fuzz.py`; `AELAB_FUZZ_EXAMPLES` for a longer run);",
    "- a file written into a run folder while it trains stays off the run's record, and `--overwrite` then refuses; "
    "a file put into the old run while `--overwrite` trains the new one keeps both runs (`tests/test_core.py`);",
    "- Ctrl-C (a real SIGINT) in `train`: exit 130, one line with the `--resume` command, the finished epochs "
    "kept (`tests/test_checkpoints.py`); in `tune`: the trial under way recorded as failed, trials.csv written "
    "(`tests/test_tune.py`);",
    "- `--resume` of a run whose CSV log is a hard link (`cp -al` backup) or a symbolic link: the other copy "
    "unchanged (`tests/test_core.py`);",
    "- two commands writing one new file at once: one result, and the other refuses (`tests/test_nothing_lost.py`);",
    "- `RANK=1`, `SLURM_NTASKS=2` and other launcher variables that cannot work: one line, nothing written "
    "(`tests/test_distributed.py`); a pipe or `/dev/urandom` as an image, an eval of a run still training, a "
    "detector file with a NaN threshold or 2-D scores, the process's cgroup and `ulimit -v` limits "
    "(`tests/test_nothing_lost.py`).",
]


def main_(argv: list[str] | None = None) -> int:
    rows = ["| class | case | command | exit | says | files kept |", "|---|---|---|---|---|---|"]
    for kind, what, template in CASES:
        code, says, kept = run_case(template)
        command = "aelab " + template.replace("{", "").replace("}", "")
        rows.append(
            f"| {kind} | {what} | `{command}` | {code} | {says.replace('|', '/')} | {'yes' if kept else 'NO'} |"
        )
        print(rows[-1], flush=True)
    text = [
        "# Robustness: the careless user's cases",
        "",
        'Made by `python benchmarks/robustness.py`: each case run for real in a fresh folder. "files kept": every '
        "file that existed before the command is byte-identical after it.",
        "",
        *rows,
        "",
        *ELSEWHERE,
        "",
    ]
    (ROOT / "results" / "robustness.md").write_text("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main_())
