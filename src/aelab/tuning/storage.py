"""Where a study lives: an SQLite file or journal in the study folder, or any URL Optuna takes
(PostgreSQL for workers on several machines); heartbeats, retries, trials left by dead workers.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
import warnings
from pathlib import Path
from typing import Any

from ..errors import AelabError, opt

log = logging.getLogger("aelab")


STUDY_NAME = "aelab"


# a running trial's worker writes a heartbeat every HEARTBEAT seconds; a trial without one for
# GRACE seconds is marked failed (its worker died) when a worker next starts a trial, and queued
# again with the same parameters, up to RETRIES times
HEARTBEAT, GRACE, RETRIES = 20, 60, 1


STUDY_FILES = {
    "study.db",
    "study.journal",
    "study.journal.lock",
    "trials",
    "best",
    "trials.csv",
    "summary.md",
    "history.png",
    "importances.png",
    "parallel.png",
}


def has_local_study(out: Path) -> bool:
    """Whether ``out`` holds its study's own storage (an SQLite file, or a journal file)."""
    return (out / "study.db").is_file() or (out / "study.journal").is_file()


def _storage(url: str | None, out: Path, journal: bool = False):
    """Optuna's storage for ``url``: a database (default: SQLite in ``out``) with a heartbeat, so
    that a worker that dies mid-trial has its trial marked failed and queued again (Optuna's
    RetryHeartbeatStaleTrialCallback) and the study goes on; or, for
    ``--workers`` on one machine (``journal``, or a study that has one), Optuna's journal file,
    which Optuna advises over SQLite for processes writing at once."""
    import optuna
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # the heartbeat's
    if url is None and (journal or (out / "study.journal").is_file()):
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        out.mkdir(parents=True, exist_ok=True)
        path = str(out / "study.journal")
        return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))

    # the path quoted: a folder named with ? or # would otherwise end the URL's path early
    url = url or "sqlite:///" + urllib.parse.quote(str((out / "study.db").resolve()))
    engine = {"pool_pre_ping": True} if not url.startswith("sqlite") else {"connect_args": {"timeout": 60}}
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT,
                grace_period=GRACE,
                heartbeat_stale_trial_callback=_retry(),
                engine_kwargs=engine,
            )
        # the race shows as IntegrityError, or as "already exists": OperationalError on SQLite,
        # ProgrammingError (DuplicateTable) on PostgreSQL
        except (IntegrityError, OperationalError, ProgrammingError) as error:
            if not isinstance(error, IntegrityError) and "already exists" not in str(error):
                raise AelabError(
                    f"cannot open the study storage {_redact(url)}: {str(error).strip().splitlines()[0]}"[:400]
                ) from None
            time.sleep(1 + attempt)  # workers started at once on a new database race to create its tables
        except (ArgumentError, ValueError, ImportError, ModuleNotFoundError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise AelabError(f"cannot open the study storage {_redact(url)}: {first}"[:400]) from None
    raise AelabError(f"cannot open the study storage {_redact(url)}: its tables could not be created")


def _retry():
    """Optuna's callback that queues a dead worker's trial again, with its parameters."""
    import optuna

    return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=RETRIES)


def counted(trials: list) -> list:
    """The trials that count toward a study's total: neither surplus (a race between workers) nor a
    dead worker's trial that was queued again (its retry counts instead)."""
    retried = {number for t in trials for number in t.system_attrs.get("retry_history", ())}
    return [t for t in trials if not t.user_attrs.get("surplus") and t.number not in retried]


def requeue_orphans(study) -> list[int]:
    """Fail the trials still running once every worker on this machine has exited (the journal
    file has no heartbeat: each such trial's worker died) and queue each again with its
    parameters, as the heartbeat does for a database. Returns the numbers of the trials failed."""
    import optuna

    orphans = study.get_trials(deepcopy=True, states=(optuna.trial.TrialState.RUNNING,))
    retry = _retry()
    for trial in orphans:
        if study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL):
            retry(study, trial)
    return [t.number for t in orphans]


def _redact(url: str) -> str:
    """The URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':')[0]}:***@{tail}"


def check_study_folder(out: Path, resume: bool, shared: bool = False) -> None:
    """``out`` is new, or a study folder this command may add to (``resume``, or ``shared``: the
    study lives in a storage other workers share); nothing else."""
    if out.exists() and not out.is_dir():
        raise AelabError(f"{opt('out', out)} is a file, not a study folder")
    if not out.exists() or not any(out.iterdir()):
        if resume:
            raise AelabError(f"{opt('resume')}: {out} holds no study to add trials to")
        return
    # (another worker's files being written: atomic_write's ".NAME.*.tmp" of a study file, the ".best-" link)
    ours = (".best-", *(f".{name}." for name in STUDY_FILES))
    foreign = sorted(p.name for p in out.iterdir() if p.name not in STUDY_FILES and not p.name.startswith(ours))
    if foreign:
        raise AelabError(
            f"{opt('out', out)} holds files that are not an aelab study ({foreign[0]}); choose another folder"
        )
    if (out / "best").exists() and not (out / "best").is_symlink():  # aelab's is a link to the best trial's run
        raise AelabError(f"{out / 'best'} is not the link to the best trial aelab writes there; move it elsewhere")
    if not (resume or shared):
        raise AelabError(f"{opt('out', out)} holds a study already; {opt('resume')} adds trials to it")


def _load_study(storage):
    import optuna

    try:
        return optuna.load_study(study_name=STUDY_NAME, storage=storage)
    except KeyError:
        raise AelabError(f"the storage holds no aelab study named {STUDY_NAME!r} to resume") from None


def _find_study(storage):
    """The aelab study in ``storage``, or None."""
    import optuna

    names = [summary.study_name for summary in optuna.study.get_all_study_summaries(storage)]
    return optuna.load_study(study_name=STUDY_NAME, storage=storage) if STUDY_NAME in names else None


def load_study(out: str | Path, storage: str | None = None):
    """The Optuna study of ``aelab tune --out OUT``, from any machine that reaches its storage
    (``out``'s SQLite or journal file, or ``storage``): its trials, their states, values,
    parameters, and each trial's ``host`` and run ``folder`` in ``user_attrs``."""
    out = Path(out)
    if storage is None and not has_local_study(out):
        raise AelabError(f"{out} holds no study (no study.db or study.journal; give the {opt('storage')} it used)")
    return _load_study(_storage(storage, out))


def _stored_setup(study, model: str | None, settings: dict[str, Any], doing: str | None = None):
    """A stored study's model, data, space, metric and settings, as it was set up; a request
    for another model or other settings is refused."""
    doing = doing or opt("resume")
    attrs = study.user_attrs
    if model and attrs.get("model") and model != attrs.get("model"):
        raise AelabError(f"{doing}: the study tunes {attrs.get('model')}, not {model}")
    changed = sorted(k for k, v in settings.items() if attrs.get("settings", {}).get(k) != v)
    if changed:
        raise AelabError(f"{doing}: the study was set up with other settings and cannot change {changed[0]}")
    return (
        attrs["model"],
        attrs.get("data_value"),
        attrs.get("space"),
        attrs.get("metric", "val_loss"),
        dict(attrs.get("settings", {})),
    )
