"""Child-process side of ``stemseg.io.load(..., isolate=True)``.

Reads a pickled ``(path, lazy, reader_options)`` from standard input, parses
the file with HyperSpy and writes the pickled signal dictionaries to standard
output (exit 0), or a pickled StemsegError (exit 3). A crash of the reader
ends this process only; the parent sees the signal in the exit status.
"""

from __future__ import annotations

import pickle
import sys
import warnings


def main() -> int:
    # Keep standard output for the payload only: whatever the readers print or
    # log (HyperSpy logs to stdout) goes to standard error instead.
    import os

    payload_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from stemseg.errors import StemsegError
    from stemseg.io import _read_signals

    path, lazy, options = pickle.loads(sys.stdin.buffer.read())
    warnings.simplefilter("ignore")
    try:
        signals = _read_signals(__import__("pathlib").Path(path), lazy, options)
        payload = None if lazy else [s._to_dictionary(add_learning_results=False) for s in signals]
        code = 0
    except StemsegError as exc:
        payload, code = exc, 3
    with os.fdopen(payload_fd, "wb") as out:
        out.write(pickle.dumps(payload))
    return code


if __name__ == "__main__":
    sys.exit(main())
