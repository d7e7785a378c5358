"""The journal's writer process for the crash point `during-group-commit` (tests/crashpoints.py):

    python -I -S crashpoint_writer.py PACKAGE_FOLDER N SIGNAL FD PATH

It is the writer of `httptask.journal_commit`, except that inside the Nth group commit's transaction, once its
statements ran and before anything is committed, it sends SIGNAL to its parent (the run) and then to itself.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def main() -> None:
    folder, n, name = sys.argv[1:4]
    sys.path.insert(0, folder)
    from httptask import journal_commit

    execute, seen, number = journal_commit.execute, [0], int(n)

    def executing(connection: Any, statements: Any) -> None:
        execute(connection, statements)
        seen[0] += 1
        if seen[0] == number:
            os.kill(os.getppid(), signal.Signals[name])
            os.kill(os.getpid(), signal.Signals[name])

    journal_commit.execute = executing
    journal_commit.main()


if __name__ == "__main__":
    main()
