"""The one output policy: how every command and API function writes a file.

- :func:`check_targets` looks at every file a command will write before the first is written:
  an existing target is refused unless ``overwrite`` (or it is aelab's own figure in a run
  folder, which the command exists to redraw); a target that is one of the command's inputs is
  always refused; a link, a folder where a file belongs, or a file of the wrong kind is refused.
  Each refusal is one line, and a refused command writes nothing.
- :func:`atomic_write` writes through a temporary sibling and renames it into place, with the
  permissions a plain write would have had, so a crash leaves the old file or the new one.

Torch-free: the figures, the run folder and every tool write through it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from .errors import AelabError, opt


def umask() -> int:
    """The process's umask (read without changing it for good)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Write ``path`` through ``write(temporary_path)`` in the same folder, then rename it into
    place with the user's umask (a temporary file starts at 0600); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_targets(targets: Iterable[Path | str], *, overwrite: bool = False, inputs: Iterable[Path | str] = (),
                  suffixes: tuple[str, ...] | None = None, what: str | None = None,
                  replaceable: Callable[[Path], bool] | None = None) -> list[Path]:
    """Check every file a command will write, before it writes any (see the module's notes).
    ``suffixes``: the kinds of file the targets must be (e.g. ``(".png",)``); ``replaceable``:
    targets that may be replaced without ``overwrite`` (aelab's own files in a run folder)."""
    what = what or opt("out")
    checked = []
    inputs = [Path(p) for p in inputs]
    for target in map(Path, targets):
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
        if target.exists() and not overwrite and not (replaceable and replaceable(target)):
            raise AelabError(f"{target} exists; choose another name or pass {opt('overwrite', True)} to replace it")
        checked.append(target)
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
