"""``python -m curcor``: the ``curcor`` command line.

Written so that an interpreter older than 3.11 can still parse it and say
in one line why it cannot go on.
"""

import sys


def _start():
    """Check the interpreter, then run the command line and exit with it."""
    if sys.version_info < (3, 11):  # noqa: UP036 - must run on old Pythons
        found = f"{sys.version_info[0]}.{sys.version_info[1]}"
        sys.stderr.write(
            f"curcor: Python 3.11 or newer is required, this is Python {found}; "
            "run it with python3.11 or newer\n"
        )
        sys.exit(2)
    from curcor.cli import main

    sys.exit(main())


if __name__ == "__main__":
    _start()
