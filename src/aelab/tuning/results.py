"""What a study leaves: trials.csv, the plots, summary.md, and ``STUDY_DIR/best`` pointing to the
best trial's run, evaluated once on the test split.
"""

from __future__ import annotations

import csv
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from ..errors import AelabError, opt
from .space import merge_space
from .storage import _load_study, _storage, _stored_setup, has_local_study

log = logging.getLogger("aelab")


def params_text(params: dict[str, Any], spec: str = ".4g") -> str:
    """A trial's parameters as ``name=value, ...``, floats to ``spec``."""
    return ", ".join(f"{k}={v:{spec}}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _log_trial(study, trial) -> None:
    if trial.user_attrs.get("surplus"):
        return
    value = "-" if trial.value is None else f"{trial.value:.5g}"
    params = params_text(trial.params, ".3g")
    why = f"; {trial.user_attrs['error']}" if trial.user_attrs.get("error") else ""
    if "failed_trial" in trial.system_attrs:  # a dead worker's trial, queued again
        why += f"; again for trial {trial.system_attrs['failed_trial']}, whose worker died"
    log.info("trial %d %s: %s (%s)%s", trial.number, trial.state.name.lower(), value, params, why)


def finish(study, out: Path):
    """The best trial evaluated on test once, ``out/best`` pointing to it, ``trials.csv``, the plots
    and ``summary.md``. Returns the best :class:`~aelab.Run` (None if no trial completed)."""
    from ..evaluation import evaluate
    from ..runs import Run

    write_trials(study, out / "trials.csv")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    best_run = None
    if complete:
        best = study.best_trial
        best_run = Run(out / best.user_attrs["run"])
        if not best_run.path.is_dir():
            # a worker with its own --out (another machine's disk) trained it: that worker evaluates it
            log.info(
                "the best trial, %d, ran on %s: its run folder is %s there",
                best.number,
                best.user_attrs.get("host", "another machine"),
                best.user_attrs.get("folder", best.user_attrs["run"]),
            )
            write_summary(study, out, None, draw_plots(study, out))
            return None
        if not best_run.metrics_path.is_file():
            evaluate(best_run)
        staged = out / f".best-{os.getpid()}"  # replaced in one step: workers finishing together
        staged.unlink(missing_ok=True)
        staged.symlink_to(Path(best.user_attrs["run"]), target_is_directory=True)
        os.replace(staged, out / "best")
    plots = draw_plots(study, out)
    write_summary(study, out, best_run, plots)
    return best_run


def study_trials(study) -> list:
    """The study's trials, without the surplus ones discarded by a race between workers."""
    return [t for t in study.trials if not t.user_attrs.get("surplus")]


def write_trials(study, path: Path) -> None:
    from ..runs import atomic_write

    atomic_write(path, lambda tmp: _write_trials(study, tmp))  # workers finishing together: whole files


def _write_trials(study, path: Path) -> None:
    names = sorted({name for t in study_trials(study) for name in t.params})
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["trial", "state", "value", *names, "seconds", "run", "retry_of"])
        for t in study_trials(study):
            seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else ""
            writer.writerow(
                [
                    t.number,
                    t.state.name.lower(),
                    "" if t.value is None else t.value,
                    *[t.params.get(n, "") for n in names],
                    f"{seconds:.1f}" if seconds != "" else "",
                    t.user_attrs.get("run", ""),
                    t.system_attrs.get("failed_trial", ""),
                ]
            )


def draw_plots(study, out: Path) -> dict[str, str]:
    """Optuna's matplotlib plots: optimisation history, parameter importances, parallel coordinates.
    Returns, per file, "" when drawn or why it was not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

    notes = {}
    for name, draw in (
        ("history.png", views.plot_optimization_history),
        ("importances.png", views.plot_param_importances),
        ("parallel.png", views.plot_parallel_coordinate),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib views experimental
                axes = draw(study)
            figure = (axes[0] if hasattr(axes, "__len__") else axes).get_figure()
            figure.savefig(out / name, dpi=90, bbox_inches="tight")
            plt.close(figure)
            notes[name] = ""
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            notes[name] = str(error).splitlines()[0] if str(error) else type(error).__name__
            (out / name).unlink(missing_ok=True)
    return notes


def write_summary(study, out: Path, best_run, plots: dict[str, str]) -> None:
    from ..families import family_of

    attrs = study.user_attrs
    states = {}
    for t in study_trials(study):
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    lines = [
        f"# Tuning {attrs.get('model')} on {attrs.get('data')}",
        "",
        f"{len(study_trials(study))} trials ({', '.join(f'{n} {s}' for s, n in sorted(states.items()))}); objective: "
        f"the best {attrs.get('metric')} of each trial's epochs ({study.direction.name.lower()}d); fixed "
        f"settings: {attrs.get('settings') or 'the model defaults'}; space: {', '.join(attrs.get('space', []))}.",
        "",
    ]
    if best_run is not None:
        best = study.best_trial
        params = params_text(best.params)
        metrics = best_run.metrics
        tested = ", ".join(
            f"{k} {metrics[k]:.4f}" for k in family_of(attrs.get("model")).headline if isinstance(metrics.get(k), float)
        )
        lines += [
            f"Best: trial {best.number} ({best.user_attrs['run']}, linked as `best`): "
            f"{attrs.get('metric')} {best.value:.5g} with {params}. On the test split, once: {tested}.",
            "",
        ]
        try:
            model, settings = tuned_settings(out) if has_local_study(out) else (None, None)
        except AelabError:
            model = None
        if model is not None:
            settings.pop("epochs", None)
            lines += [
                "Train the best setting for longer (`aelab.tuning.tuned_settings` in Python):",
                "",
                "```bash",
                train_command(model, {**settings, "epochs": 30}) + " --out runs/tuned",
                "```",
                "",
            ]
    ranked = sorted(
        (t for t in study_trials(study) if t.value is not None),
        key=lambda t: t.value,
        reverse=study.direction.name == "MAXIMIZE",
    )[:10]
    if ranked:
        names = sorted({n for t in ranked for n in t.params})
        lines += ["| trial | value | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
        for t in ranked:
            cells = [
                f"{t.params[n]:.4g}" if isinstance(t.params.get(n), float) else str(t.params.get(n, "")) for n in names
            ]
            lines.append(f"| {t.number} | {t.value:.5g} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("All trials: `trials.csv`.")
    for name, why in plots.items():
        lines.append(f"- {name}: {'![' + name + '](' + name + ')' if not why else 'not drawn (' + why + ')'}")
    from ..runs import atomic_write

    atomic_write(out / "summary.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))


def tuned_settings(out: str | Path, storage: str | None = None) -> tuple[str, dict[str, Any]]:
    """The study's model and its best trial's settings: the data, the settings fixed for every
    trial and the sampled ones, to train that setting again for longer::

        model, settings = aelab.tuning.tuned_settings("studies/best")
        aelab.train(model, **{**settings, "epochs": 30}, out="runs/best-tuned")
    """
    out = Path(out)
    if storage is None and not has_local_study(out):
        raise AelabError(f"{out} holds no study (no study.db or study.journal; give the {opt('storage')} it used)")
    study = _load_study(_storage(storage, out))
    model, data, space, _, settings = _stored_setup(study, None, {})
    if not any(t.state.name == "COMPLETE" for t in study.trials):
        raise AelabError(f"the study in {out} has no completed trial yet")
    dims = merge_space(model, space, fixed=settings)
    best = study.best_trial.params
    sampled = {d.name: d.decode(best[d.name]) for d in dims if d.name in best}
    return model, {**({"data": data} if data is not None else {}), **settings, **sampled}


def train_command(model: str, settings: dict[str, Any]) -> str:
    """The ``aelab train`` command line that trains ``model`` with ``settings`` (the API's keywords)."""
    from ..families import family_of

    words, names = ["aelab", "train", model], family_of(model).settings.names()
    for key, value in settings.items():
        if key == "data":
            words += ["--data-dir" if Path(str(value)).exists() else "--data", str(value)]
        elif key in names and isinstance(value, bool):
            words.append(f"--{'' if value else 'no-'}{key.replace('_', '-')}")
        elif key in names:
            if isinstance(value, dict):
                text = ",".join(f"{k}={v!r}" for k, v in value.items())
            elif isinstance(value, (tuple, list)):
                text = ",".join(map(str, value)) or "none"
            else:
                text = "none" if value is None else repr(value) if isinstance(value, float) else str(value)
            words += [f"--{key.replace('_', '-')}", text]
        else:
            text = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
            words += ["--param", f"{key}={text}"]
    return " ".join(words)
