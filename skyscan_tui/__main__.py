"""``python -m skyscan_tui``: the CLI.

A Ctrl-C at any moment ends it with exit code 130 or lets it finish cleanly (never a
traceback, never death by SIGINT)."""

import signal
import sys


def _run() -> int:
    try:
        from skyscan_tui.cli import main

        return main()
    except KeyboardInterrupt:  # while Python loads the CLI, before main handles Ctrl-C
        exec("")  # clear CPython's "unhandled" flag: see interrupts.forget_caught_interrupt
        print("skyscan-tui: interrupted", file=sys.stderr)
        return 130
    finally:
        # the work is done or stopped: a late Ctrl-C must not interrupt the interpreter's
        # shutdown (a KeyboardInterrupt in an atexit hook prints a traceback)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


raise SystemExit(_run())
