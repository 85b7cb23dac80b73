"""Writing the files the ``curcor`` commands produce."""

from __future__ import annotations

import os


def write_whole(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all.

    The text goes to a temporary file beside ``path`` that replaces it only
    once written and flushed: a full disk or a crash leaves any earlier file
    as it was, never a truncated one.

    A symbolic link is followed (its target is replaced, the link stays),
    and a replaced file keeps its permission bits.

    Raises:
        OSError: the file could not be written (``path`` is then unchanged),
            or ``path`` is a device, a FIFO or a directory, which a whole
            new file must not replace.
    """
    import errno
    import stat

    path = os.path.realpath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "not a regular file; give a file path", path)
    directory = os.path.dirname(path)
    temp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if mode is not None:
            os.chmod(temp, stat.S_IMODE(mode))
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
