"""What ``--out`` may hold, and how ``--overwrite`` replaces a run without losing anything: checked
before anything is written, the new run trained beside the old one and swapped in once done."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from .errors import AelabError, opt
from .lock import LOCK_NAME, RunLock
from .outputs import first_free
from .runs import MANIFEST, Run

log = logging.getLogger("aelab")


def check_out_folder(
    out: Path, resume: bool, overwrite: bool, data_dir: str | None = None, locked: bool = False
) -> bool:
    """Refuse what could lose data; True where ``out`` holds a run that ``overwrite`` will replace.

    An existing run needs ``resume`` or ``overwrite``; ``overwrite`` replaces only a folder that
    holds an aelab run and nothing else; ``out`` may not be, lie inside or contain the data folder.
    """
    if out.exists() and not out.is_dir():
        raise AelabError(f"{opt('out', out)} is a file, not a folder")
    if out.is_symlink() and overwrite:
        raise AelabError(
            f"{opt('out', out)} is a link; {opt('overwrite')} replaces a run folder itself: name the folder it "
            f"points to ({out.resolve()})"
        )
    if not locked:
        RunLock(out).refuse_if_held()
    if data_dir is not None:
        data, target = Path(data_dir).resolve(), out.resolve()
        if target == data or data in target.parents or target in data.parents:
            raise AelabError(
                f"{opt('out', out)} is, lies inside or contains the data folder {data_dir}; "
                "choose a run folder elsewhere"
            )
    ancestor = out
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not os.access(ancestor, os.W_OK):
        raise AelabError(f"{opt('out', out)}: cannot write in {ancestor} (permission denied)")
    entries = [p for p in out.iterdir() if not (locked and p.name == LOCK_NAME)] if out.is_dir() else []
    if resume or not entries:
        return False
    if not Run(out).is_run():
        raise AelabError(f"{opt('out', out)} holds files that are not an aelab run; choose a new or empty folder")
    if not overwrite and not Run(out).last_checkpoint.is_file():  # stopped before its first checkpoint
        raise AelabError(
            f"{opt('out', out)} holds a run stopped before its first checkpoint (nothing to resume); "
            f"pass {opt('overwrite', True)} to start it again"
        )
    if not overwrite:
        raise AelabError(
            f"{opt('out', out)} already holds an aelab run; pass {opt('resume', True)} to continue it or {opt('overwrite', True)} "
            "to replace it"
        )
    extra = Run(out).foreign_files()
    if Run(out).written() is None:
        raise AelabError(
            f"{opt('out', out)} holds a run without aelab's record of the files it wrote ({MANIFEST}: "
            f"killed before it finished, or written by an older aelab), so {opt('overwrite')} cannot "
            f"tell them from yours ({', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''}); "
            f"continue it with {opt('resume')}, or delete it yourself"
        )
    if extra:
        raise AelabError(
            f"{opt('out', out)} holds files aelab did not write ({', '.join(extra[:3])}); {opt('overwrite')} "
            "replaces only what aelab wrote: move them or choose another folder"
        )
    return True


NEW, OLD = ".aelab-new-", ".aelab-old-"  # the siblings of an --overwrite: the run in training, the one retired


def remove_leftovers(out: Path) -> list[Path]:
    """Remove (and name in the log) the siblings a killed --overwrite of ``out`` left behind; the
    caller holds ``out``'s lock, so no process is still writing them."""
    found = [p for marker in (NEW, OLD) for p in out.parent.glob(f".{out.name}{marker}*") if p.is_dir()]
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s, left by an interrupted %s of %s", path, opt("overwrite"), out)
    return found


def swap_in(new: Path, old: Path) -> None:
    """Put the finished run ``new`` where ``old`` is, then delete ``old``. ``old`` is moved aside
    first and checked against its record again: if a file aelab did not write appeared in it while
    the new run trained, both are kept (``old`` as it was, ``new`` in a visible sibling) and the
    error names them."""
    retired = Path(tempfile.mkdtemp(prefix=f".{old.name}{OLD}", dir=old.parent))
    aside = retired / old.name
    os.rename(old, aside)
    extra = Run(aside).foreign_files()
    if extra:
        os.rename(aside, old)
        retired.rmdir()
        kept = first_free(old.with_name(f"{old.name}-new"), suffix="")
        os.rename(new, kept)
        raise AelabError(
            f"{old} gained files aelab did not write while the new run trained ({', '.join(extra[:3])}); "
            f"it is left as it was, and the new run is in {kept}"
        )
    os.rename(new, old)
    shutil.rmtree(retired, ignore_errors=True)
