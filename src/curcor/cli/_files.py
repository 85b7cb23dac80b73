"""Writing the files the ``curcor`` commands produce."""

from __future__ import annotations

import os


def write_whole(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all.

    The text goes to a temporary file beside ``path`` that replaces it only
    once written and flushed: a full disk or a crash leaves any earlier file
    as it was, never a truncated one.

    Raises:
        OSError: the file could not be written (``path`` is then unchanged).
    """
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
