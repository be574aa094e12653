"""Start-up a user feels: `aelab --help`, `--version`, `models` and `datasets` as whole processes.

    python benchmarks/startup.py            # prints the table, adds it to benchmarks/results/startup.md

Each command runs 7 times after a warm-up, alternating with the reference (a Python process that
only imports torch), and the medians are compared with the goals: --help/--version under 0.5 s,
models/datasets under 2.5 s. `aelab models` must import the networks, so torch: its time is
torch's plus aelab's own, and the ratio to the reference shows aelab's share.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

AELAB = [sys.executable, "-m", "aelab.cli"]
COMMANDS = {
    "aelab --help": (["--help"], 0.5),
    "aelab --version": (["--version"], 0.5),
    "aelab models": (["models"], 2.5),
    "aelab datasets": (["datasets"], 2.5),
}
REFERENCE = [sys.executable, "-c", "import torch"]


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "startup.md")
    args = parser.parse_args(argv)
    for command in [REFERENCE, *[AELAB + a for a, _ in COMMANDS.values()]]:
        wall(command)  # warm the file cache
    times: dict[str, list[float]] = {name: [] for name in ["import torch", *COMMANDS]}
    for _ in range(args.runs):
        times["import torch"].append(wall(REFERENCE))
        for name, (extra, _) in COMMANDS.items():
            times[name].append(wall(AELAB + extra))
    reference = statistics.median(times["import torch"])
    rows = [("python -c 'import torch' (reference)", f"{reference:.2f} s", "", "")]
    for name, (_, goal) in COMMANDS.items():
        median = statistics.median(times[name])
        rows.append(
            (
                name,
                f"{median:.2f} s (runs {min(times[name]):.2f}-{max(times[name]):.2f})",
                f"{median / reference:.2f}x",
                f"< {goal} s: {'met' if median < goal else 'not met'}",
            )
        )
    table = [
        "| command | median wall time | vs import torch | goal |",
        "|---|---|---|---|",
        *[f"| {' | '.join(row)} |" for row in rows],
    ]
    print("\n".join(table))
    section = [
        f"## {datetime.date.today()}, Python {platform.python_version()}",
        "",
        f"Command: `python benchmarks/startup.py --runs {args.runs}`",
        "",
        *table,
        "",
    ]
    header = "# Start-up time\n\nProduced by `benchmarks/startup.py`; newest run first.\n\n"
    old = args.results.read_text().removeprefix(header) if args.results.is_file() else ""
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(header + "\n".join(section) + "\n" + old)
    return 0


if __name__ == "__main__":
    sys.exit(main())
