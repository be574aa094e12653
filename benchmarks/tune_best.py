"""Tune `best` on Fashion-MNIST at code size 49 (20 trials of 3 epochs), train the best setting
for the default's 30 epochs, and compare it with the hand-chosen default.

    python benchmarks/tune_best.py                # the default run, the study, the tuned run (hours on 2 cores)
    python benchmarks/tune_best.py --table-only   # rewrites the results from what exists

Each stage is skipped when its result exists: the default run (`runs/fashion-mnist/best-49`,
shared with benchmarks/functional.py), the study (`studies/fashion-mnist-best-49`, resumed when
it holds fewer than --trials trials, e.g. after an interrupted session) and the tuned run
(`runs/fashion-mnist/best-49-tuned`, resumed from its last checkpoint when interrupted). Writes
benchmarks/results/tuning.md and copies the study's three plots to benchmarks/results/figures/.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
from pathlib import Path

from aelab import Run, train, tune
from aelab.errors import AelabError
from aelab.tuning import params_text, study_trials, train_command, tuned_settings

ROOT = Path(__file__).resolve().parent
DATA, MODEL, CODE = "fashion-mnist", "best", 49


def trial_minutes(trials) -> str:
    """Minutes the finished trials took between them, from each one's start and end in the study
    (a trial that failed when its session was cut off is not counted; a study resumed over several
    sessions has no single wall time)."""
    seconds = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in trials
        if t.state.name in ("COMPLETE", "PRUNED")
    )
    return f"{seconds / 60:.1f} min"


def training_minutes(run: Run) -> str:
    """Minutes of training steps, from the run's history.json (evaluation and set-up excluded)."""
    return f"{sum(row.get('train_seconds') or 0 for row in run.history) / 60:.1f} min"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs") / DATA)
    parser.add_argument("--study", type=Path, default=Path("studies") / f"{DATA}-{MODEL}-{CODE}")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--trial-epochs", type=int, default=3)
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "tuning.md")
    args = parser.parse_args(argv)
    default, tuned = args.runs / f"{MODEL}-{CODE}", args.runs / f"{MODEL}-{CODE}-tuned"
    try:
        if not args.table_only:
            if not (default / "metrics.json").is_file():
                train(MODEL, data=DATA, out=default, overwrite=default.exists(), progress=False, code_size=CODE)
            done = 0
            if (args.study / "study.db").is_file():
                import optuna

                from aelab.tuning.storage import STUDY_NAME, _storage

                done = len(study_trials(optuna.load_study(study_name=STUDY_NAME, storage=_storage(None, args.study))))
            if done < args.trials:
                tune(
                    MODEL,
                    out=args.study,
                    data=DATA,
                    trials=args.trials - done,
                    resume=done > 0,
                    **({} if done else {"epochs": args.trial_epochs, "code_size": CODE}),
                )
            if not (tuned / "metrics.json").is_file():
                model, settings = tuned_settings(args.study)
                settings["epochs"] = Run(default).config.train.epochs
                if Run(tuned).last_checkpoint.is_file():  # an interrupted tuned run continues
                    train(model, out=tuned, resume=True, progress=False, epochs=settings["epochs"])
                else:
                    train(model, out=tuned, overwrite=tuned.exists(), progress=False, **settings)
        args.results.write_text(report(args, default, tuned))
    except AelabError as error:
        print(f"tune_best: error: {error}", file=sys.stderr)
        return 2
    print(args.results.read_text())
    return 0


def report(args, default: Path, tuned: Path) -> str:
    import optuna

    from aelab.tuning.storage import STUDY_NAME, _storage

    lines = [
        f"# Tuning `{MODEL}` on Fashion-MNIST at code size {CODE}",
        "",
        f"Produced by `python benchmarks/tune_best.py` ({datetime.date.today()}), 2 CPU cores: an Optuna study "
        f"of {args.trials} trials of {args.trial_epochs} epochs (TPE, median pruning, objective: each trial's "
        f"best validation loss; the test split is not seen), then the best setting trained for the default's "
        f"epochs beside the hand-chosen default.",
        "",
    ]
    study = None
    if (args.study / "study.db").is_file():
        study = optuna.load_study(study_name=STUDY_NAME, storage=_storage(None, args.study))
    runs = {"hand-chosen default": default, "tuned": tuned}
    lines += [
        "| run | settings | epochs | training time | test RMSE | PSNR | SSIM | PCA RMSE (49) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, folder in runs.items():
        if not (folder / "metrics.json").is_file():
            lines.append(f"| {name} | not measured yet | | | | | | |")
            continue
        run = Run(folder)
        m, t = run.metrics, run.config.train
        settings = f"lr {t.lr:.3g}, batch {t.batch_size}, channels {'x'.join(map(str, run.config.params['channels']))}"
        lines.append(
            f"| {name} | {settings} | {len(run.history)} | {training_minutes(run)} | {m['test_rmse']:.4f} | "
            f"{m['test_psnr']:.2f} | {m['test_ssim']:.4f} | {m['pca_rmse']:.4f} |"
        )
    lines.append("")
    if (default / "metrics.json").is_file() and (tuned / "metrics.json").is_file():
        a, b = Run(default).metrics["test_rmse"], Run(tuned).metrics["test_rmse"]
        lines += [f"Tuned vs default test RMSE: {(b / a - 1) * 100:+.1f}%.", ""]
    if study is not None:
        trials = study_trials(study)
        states: dict[str, int] = {}
        for t in trials:
            states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
        lines += [
            f"## The study ({trial_minutes(trials)} of finished trials on 2 CPU cores)",
            "",
            f"{len(trials)} trials: "
            + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
            + f"; space: {', '.join(study.user_attrs.get('space', []))}.",
            "",
        ]
        failed = [str(t.number) for t in trials if t.state.name == "FAIL"]
        if failed:
            lines += [
                f"Failed trials ({', '.join(failed)}) were running when their process stopped (a session "
                f"cut off); Optuna's heartbeat marked them failed when the study resumed, and the sampler went "
                f"on from the others.",
                "",
            ]
        if any(t.state.name == "COMPLETE" for t in trials):
            best = study.best_trial
            model, settings = tuned_settings(args.study)
            lines += [
                f"Best trial {best.number}: val_loss {best.value:.5g} with {params_text(best.params)}; "
                f"trained again for longer with",
                "",
                "```bash",
                train_command(model, {**settings, "epochs": 30}) + f" --out {tuned}",
                "```",
                "",
            ]
        figures = ROOT / "results" / "figures"
        for name in ("history", "importances", "parallel"):
            plot = args.study / f"{name}.png"
            if plot.is_file():
                target = figures / f"tune-{MODEL}-{CODE}-{name}.png"
                shutil.copyfile(plot, target)
                lines += [f"![{name}]({target.relative_to(ROOT / 'results').as_posix()})", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
