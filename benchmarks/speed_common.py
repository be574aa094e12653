"""What the speed scripts share: fresh-process measurements, the report's rows, goals, and the
results file (benchmarks/results/speed.md, newest run first, below the method notes).

Every speed question has its own script (`speed_*.py`); `speed.py` runs them all into one
section. Each throughput is measured in a fresh process of its own (the script run again with
``--worker``), as a user's script or an `aelab train` would run: in one shared process, whatever
ran before leaves glibc's malloc in a state that changes the next loop's page faults, and with
them its speed, by up to 1.5x. The processes run in alternated rounds and the medians are
compared, so a slow spell of a shared machine does not land on one side only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import re
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from aelab.data import DEBIAN_FASHION_MNIST

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "speed.md"
MODEL, BATCH = "conv-resize", 200

Report = Callable[[str, str], None]


def default_data() -> str:
    return "fashion-mnist" if DEBIAN_FASHION_MNIST.is_dir() else "mnist-sample"


def page_faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(script: str, kind: str, data_name: str, epochs: int, target: float | None = None) -> dict:
    """``script``'s worker ``kind`` in a fresh Python process; its JSON result."""
    command = [sys.executable, script, "--worker", kind, "--data", data_name, "--epochs", str(epochs)]
    if target is not None:
        command += ["--target", repr(target)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the {kind} measurement failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def goal(target: str, reached: bool) -> str:
    return f"goal {target}: {'met' if reached else 'not met'}"


def rate_text(rates: list[float]) -> str:
    spread = f" (rounds: {', '.join(f'{r:,.0f}' for r in rates)})" if len(rates) > 1 else ""
    return f"{statistics.median(rates):,.0f} images/s{spread}"


def parser(description: str, workers: list[str] | None = None, epochs: int = 3) -> argparse.ArgumentParser:
    """The options every speed script takes (and its hidden ``--worker``)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="default: fashion-mnist if installed, else mnist-sample")
    p.add_argument("--epochs", type=int, default=epochs, help="epochs per throughput measurement")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternated rounds of the fresh-process measurements; medians are reported",
    )
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--worker", choices=workers or [], help=argparse.SUPPRESS)
    p.add_argument("--target", type=float, help=argparse.SUPPRESS)  # a time-to-quality worker's RMSE
    return p


def run_question(
    rows_of: Callable[[argparse.Namespace, Report], None], args: argparse.Namespace, argv: list[str] | None, script: str
) -> int:
    """Run one question's rows, print them, and add them to the results file as a section."""
    rows: list[tuple[str, str]] = []

    def report(label: str, value: str) -> None:
        rows.append((label, value))
        print(f"{label:<58} {value}", flush=True)

    rows_of(args, report)
    write_results(args.results, rows, "", argv, script)
    return 0


def script_main(
    argv: list[str] | None,
    doc: str,
    script: str,
    rows_of: Callable[[argparse.Namespace, Report], None],
    worker: Callable[[argparse.Namespace], dict] | None = None,
    workers: Iterable[str] = (),
    epochs: int = 3,
    options: Iterable[tuple[str, dict]] = (),
) -> int:
    """A speed script's command line: its question's rows, added to speed.md; or, with the hidden
    ``--worker KIND`` (``measure`` runs the script so), one fresh-process measurement as JSON.
    ``options``: the script's own flags, as ``(flag, add_argument keywords)``."""
    p = parser(doc, list(workers), epochs)
    for flag, keywords in options:
        p.add_argument(flag, **keywords)
    args = p.parse_args(argv)
    args.data = args.data or default_data()
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    return run_question(rows_of, args, argv, script)


def cpu_line() -> str:
    """The CPU a measurement ran on, as the results files name it: its class (AMX or not, as
    aelab and oneDNN use it: ``ONEDNN_MAX_CPU_ISA`` caps both), torch's capability, threads."""
    from aelab.accel import cpu_class

    return (
        f"CPU class {cpu_class()}; torch CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"{torch.get_num_threads()} threads"
    )


def prepend_section(lines: list[str], path: Path = RESULTS) -> None:
    """Put a section (its lines, opening with a ``## `` heading) on top of a results file, above the
    first section there."""
    head, marker, rest = path.read_text().partition("\n## ")
    path.write_text(head.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n\n" + marker.lstrip("\n") + rest)


def write_results(
    path: Path, rows: list[tuple[str, str]], profile: str, argv: list[str] | None, script: str = "speed.py"
) -> None:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU: {cpu}"
    command = f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:])
    section = [
        f"## {device}, {torch.get_num_threads()} threads — {datetime.date.today()}",
        "",
        f"Command: `{command.strip()}` (torch {torch.__version__}, Python {platform.python_version()}, "
        f"torch's CPU capability: {torch.backends.cpu.get_cpu_capability()})",
        "",
        "| measurement | value |",
        "|---|---|",
        *[f"| {a} | {b} |" for a, b in rows],
        "",
    ]
    if profile:
        section += [
            "Where a training step's time goes (torch.profiler, 20 steps, self CPU time):",
            "",
            "```",
            profile.strip(),
            "```",
            "",
        ]
    header = (
        "# Speed benchmark\n\nProduced by `benchmarks/speed.py` and the `speed_*.py` scripts; newest run first.\n\n"
    )
    text = path.read_text() if path.is_file() else header
    # the newest run goes above the older ones, below the method notes that open the file
    first_run = next(
        (m.start() for m in re.finditer(r"^## ", text, re.M) if not text.startswith("## Method", m.start())), len(text)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text[:first_run] + "\n".join(section) + "\n" + text[first_run:].strip() + "\n")
