"""Atomic writes: every artifact appears whole or not at all, even after a crash.

Each helper writes into a temporary sibling and renames it over the target (``os.replace`` is
atomic within one file system); a failure removes the temporary and leaves the old target alone.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(folder: str | Path, *, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder``; on success it replaces ``folder``.

    ``keep_existing`` is for content-addressed caches that several processes may fill at once (the
    ranks of a torchrun job, parallel ablation runs): the first folder to land is kept and later
    ones are dropped, so no reader ever sees the folder swapped under it and no writer fails
    because another one won the rename.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        yield tmp
        if keep_existing:
            try:
                os.rename(tmp, folder)  # refuses a non-empty target: the first writer wins
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not folder.is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
            return
        # two renames, then the slow delete: the target is missing only between the renames (Linux
        # has no portable atomic swap of folders)
        old = None
        if folder.exists():
            old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old."))
            os.replace(folder, old / folder.name)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | Path, text: str, *, fsync: bool = False) -> None:
    """Replace ``path`` with ``text`` atomically; ``fsync`` also forces it to disk first."""
    with atomic_file(path) as tmp:
        with tmp.open("w") as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())


def save_npz(path: str | Path, **arrays) -> None:
    """``np.savez`` into ``path`` atomically (np.savez on a name would also append '.npz' to a temporary)."""
    import numpy as np

    with atomic_file(path) as tmp, tmp.open("wb") as f:
        np.savez(f, **arrays)


def save_figure(fig, path: str | Path, **kwargs) -> None:
    """``fig.savefig`` into ``path`` atomically; the format comes from the target's suffix."""
    path = Path(path)
    with atomic_file(path) as tmp, tmp.open("wb") as f:
        fig.savefig(f, format=path.suffix.lstrip(".") or "png", **kwargs)
