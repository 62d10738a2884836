"""The one atomic write: build a file or a folder under a temporary name, rename it into place when complete.

    with atomic_path("data/train.jsonl") as tmp:      # tmp = data/train.jsonl.tmp
        tmp.write_text(...)
    # data/train.jsonl now exists whole; a crash before this line leaves the old one (or none) untouched

A folder works the same way (`checkpoint-N.tmp/` -> `checkpoint-N/`): an existing folder of the final
name is removed only once the new one is complete. On an error inside the block the temporary is removed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (its parent folder created); on success it becomes `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if tmp.is_dir() and path.is_dir():
        shutil.rmtree(path)  # os.replace cannot put a folder over a non-empty folder
    os.replace(tmp, path)


def write_lines_atomic(path: str | os.PathLike, lines) -> int:
    """Write text lines (each without its newline) to `path` atomically; returns how many."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
            n += 1
    return n
