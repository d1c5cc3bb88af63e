"""Keep TensorFlow's C++ start-up lines off the terminal; let everything else through.

TensorFlow and XLA log from C++ straight to file descriptor 2, before absl's logging is set
up, so TF_CPP_MIN_LOG_LEVEL does not silence them: "oneDNN custom operations are on", "Could
not find cuda drivers", and on every machine without a GPU a red "failed call to cuInit". A
new user reads the last as a failure. Each command runs with fd 2 piped through a filter that
drops those lines (by their C++ log prefix) and passes every other byte on unchanged:
Python's tracebacks, warnings and the kit's own `error:` lines.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

# "I0000 00:00:1795323321.474817   16757 port.cc:153] ...": info and warning lines of C++ code,
# absl's one-line notice before InitializeLog, and the cuInit error of GPU-less machines.
NOISE = re.compile(rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                   rb"|[IW]\d{4} [\d:.]+\s+\d+ [\w.\-]+:\d+\] "
                   rb"|E\d{4} [\d:.]+\s+\d+ [\w.\-]+:\d+\] .*(cuInit|Unable to register cu\w+ factory|"
                   rb"computation placer already registered))")


def is_noise(line: bytes) -> bool:
    """Return True for a C++ start-up log line the user should not see."""
    return bool(NOISE.match(line))


@contextlib.contextmanager
def quiet_native_logs():
    """Filter fd 2 while the block runs (a no-op where fd 2 cannot be piped); restore it after."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except OSError:
        yield
        return
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=copy_lines, args=(read_end, saved), daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump sees the end and stops
        pump.join(timeout=5)
        os.close(saved)


def copy_lines(read_end: int, target: int) -> None:
    """Copy lines from the pipe to the real stderr, dropping the noise."""
    with os.fdopen(read_end, "rb", buffering=0) as source:
        pending = b""
        while chunk := source.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not is_noise(line):
                    os.write(target, line + b"\n")
        if pending and not is_noise(pending):
            os.write(target, pending)


class RetracingFilter:
    """Drop TensorFlow's "triggered tf.function retracing" warning: the kit predicts each TTA view and each
    stage at its own image size on purpose, so a new trace per shape is expected, and the warning's paragraph
    of advice reads as a fault in the middle of a submission's lines."""

    def filter(self, record) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def quiet_retracing_warnings() -> None:
    """Install RetracingFilter on TensorFlow's Python logger once (its other warnings pass)."""
    import logging

    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, RetracingFilter) for f in logger.filters):
        logger.addFilter(RetracingFilter())
