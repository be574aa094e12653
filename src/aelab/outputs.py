"""The one output policy: how every command and API function writes a file.

- :func:`check_targets` looks at every file a command will write before the first is written:
  an existing target is refused unless ``overwrite`` (or it is aelab's own figure in a run
  folder, which the command exists to redraw); a target that is one of the command's inputs (the
  same path, a link to it or a hard link to its inode) or lies inside an input folder (a data
  folder) is always refused; a link, a folder where a file belongs, or a file of the wrong kind is refused.
  Each refusal is one line, and a refused command writes nothing.
- :func:`atomic_write` writes through a temporary sibling and renames it into place, with the
  permissions a plain write would have had, so a crash leaves the old file or the new one.

Torch-free: the figures, the run folder and every tool write through it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import AelabError, as_path, opt


def umask() -> int:
    """The process's umask (read without changing it for good)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_listeners: list[Callable[[Path], None]] = []  # what each run recording in progress does with a new file


def created(path: Path | str) -> Path:
    """Say that aelab has just written ``path``: each run folder recording its files
    (:meth:`aelab.runs.Run.recording`) adds it to its record at once. Every writer calls it
    (:func:`atomic_write` does), so a run's record lists what aelab wrote, never what else
    appeared in the folder meanwhile. A folder: the libraries aelab drives (its loggers) have
    written in it, and their files (by their own names) go on the record."""
    path = Path(path)
    for listener in _listeners:
        listener(path)
    return path


@contextmanager
def listening(listener: Callable[[Path], None]) -> Iterator[None]:
    """``listener(path)`` for each file :func:`created` names while the block runs."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


# targets checked as new (no overwrite), each time: committed only if still absent (a count: two
# threads of one program that checked the same new file are two writers too)
_fresh: Counter[str] = Counter()


TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # atomic_write's temporary files: .NAME.XXXXXXXX.tmp


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Write ``path`` through ``write(temporary_path)`` in the same folder, then rename it into
    place with the user's umask (a temporary file starts at 0600); returns ``path``, noted as
    :func:`created`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~umask())
        _commit(Path(tmp), path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return created(path)


def _commit(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path``; a target checked as new (:func:`check_targets` without
    overwrite) is created only if it is still absent, so of two commands writing one file at once
    the second refuses instead of replacing the first one's result."""
    key = os.path.abspath(path)
    if not _fresh[key]:
        _fresh.pop(key, None)
        os.replace(tmp, path)
        return
    _fresh[key] -= 1
    try:
        os.link(tmp, path)  # fails if the file exists by now; atomic
        appeared = False
    except FileExistsError:
        appeared = True
    except OSError:  # a file system without hard links: the check just before the rename
        appeared = os.path.lexists(path)
        if not appeared:
            os.replace(tmp, path)
    if appeared:
        raise AelabError(
            f"{path} appeared while this command ran (another command wrote it); kept that one, "
            "this result was not written"
        )


def first_free(path: Path, suffix: str | None = None) -> Path:
    """``path`` if nothing is there, else the first free ``STEM-2SUFFIX``, ``STEM-3SUFFIX``, ...
    beside it (``suffix``: the path's own by default; "" for a folder)."""
    suffix = path.suffix if suffix is None else suffix
    stem = path.name[: len(path.name) - len(suffix)]
    candidate, number = path, 1
    while candidate.exists() or candidate.is_symlink():
        number += 1
        candidate = path.with_name(f"{stem}-{number}{suffix}")
    return candidate


def _same(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: the same path once links are followed, or hard links
    to the same inode."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(target: Path, folder: Path) -> bool:
    try:
        return folder.is_dir() and target.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def check_targets(
    targets: Iterable[Path | str],
    *,
    overwrite: bool = False,
    inputs: Iterable[Path | str] = (),
    suffixes: tuple[str, ...] | None = None,
    what: str | None = None,
    replaceable: Callable[[Path], bool] | None = None,
) -> list[Path]:
    """Check every file a command will write, before it writes any (see the module's notes).
    ``suffixes``: the kinds of file the targets must be (e.g. ``(".png",)``); ``replaceable``:
    targets that may be replaced without ``overwrite`` (aelab's own files in a run folder)."""
    what = what or opt("out")
    checked = []
    inputs = [Path(p) for p in inputs]
    for target in [as_path(target, what) for target in targets]:
        if suffixes and target.suffix.lower() not in suffixes:
            raise AelabError(f"{what} must name a {' or '.join(suffixes)} file, got {target}")
        if target.is_symlink():
            raise AelabError(f"{what} {target} is a link; name the file itself")
        if target.is_dir():
            raise AelabError(f"{what} {target} is a folder; name the file to write")
        if target.parent.exists() and not target.parent.is_dir():
            raise AelabError(f"{what}: {target.parent} is a file, not a folder")
        if any(_same(target, source) for source in inputs):
            raise AelabError(f"{what} {target} is one of the command's inputs; write the result elsewhere")
        folder = next((source for source in inputs if _inside(target, source)), None)
        if folder is not None:
            raise AelabError(
                f"{what} {target} lies inside {folder}, which the command reads; write the result elsewhere"
            )
        if target.exists() and not overwrite and not (replaceable and replaceable(target)):
            raise AelabError(f"{target} exists; choose another name or pass {opt('overwrite', True)} to replace it")
        checked.append(target)
    for target in checked:  # new files stay new: another command's file appearing meanwhile is not replaced
        if overwrite or target.exists():
            _fresh.pop(os.path.abspath(target), None)
        else:
            _fresh[os.path.abspath(target)] += 1
    if len({p.resolve() for p in checked}) < len(checked):
        raise AelabError(f"{what}: the command would write one file twice; choose distinct names")
    return checked


MARK = "aelab"  # the Software entry of every PNG figure aelab draws


def drawn_by_aelab(path: Path) -> bool:
    """Whether ``path`` is a PNG figure aelab drew (its Software entry), which a command that
    draws it again may replace."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get("Software") == MARK
    except (OSError, UnidentifiedImageError, ValueError):
        return False
