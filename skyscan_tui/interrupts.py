"""What Ctrl-C (SIGINT) does while the CLI runs: stop a scan cleanly.

Never lose the press, never die by SIGINT (exit 130 instead). See :class:`CtrlC`."""

from __future__ import annotations

from typing import Any

__all__ = ["CtrlC", "importing", "forget_caught_interrupt"]


class CtrlC:
    """What Ctrl-C (SIGINT) does while ``main`` runs.

    Outside a scan it raises KeyboardInterrupt, which ``main`` reports with exit code 130,
    but not while a module is being imported: raised there it breaks the import (numpy then
    fails with an ImportError) or is lost in a callback of the import machinery, so it is
    raised again 50 ms later. While a scan runs it only asks the engine to stop: the engine
    then cancels the work, stops the workers and ends the scan, and ``run_scan`` exits with
    130. An asynchronous KeyboardInterrupt there could strike inside loky's locks (its
    shutdown then waits forever) or inside a lazy import. A second Ctrl-C while the scan
    stops only prints a note; a third raises KeyboardInterrupt and so abandons the
    clean-up."""

    current: CtrlC | None = None  # the instance of the running ``main``

    def __init__(self) -> None:
        self.presses = 0
        self._engine: Any = None
        self._previous: Any = None
        self._outer: CtrlC | None = None
        self._installed = False
        self._again = False  # the next SIGINT is our own retry, not a press

    def install(self) -> None:
        """Handle SIGINT (see the module docstring) until :meth:`uninstall`."""
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():  # signals go there only
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
            self._outer, CtrlC.current = CtrlC.current, self

    def uninstall(self) -> None:
        """Restore the SIGINT handler found by :meth:`install`."""
        import signal

        if self._installed:
            previous = self._previous
            # None: the previous handler was not set from Python; Python's own is closest
            signal.signal(signal.SIGINT, signal.default_int_handler if previous is None
                          else previous)
            self._installed = False
            CtrlC.current = self._outer

    def stop_with(self, engine: Any) -> None:
        """Ctrl-C now cancels ``engine`` (None: raises KeyboardInterrupt again)."""
        self._engine = engine
        if engine is not None and self.presses:  # pressed already (the interrupt was lost)
            engine.cancel()

    def _on_sigint(self, signum: int, frame: Any) -> None:
        import os

        if self._again:
            self._again = False
        else:
            self.presses += 1
        engine = self._engine
        if engine is None or self.presses >= 3:
            if importing(frame):
                self._retry_later()
                return
            raise KeyboardInterrupt
        if self.presses == 1:
            engine.cancel()
        else:  # os.write: print() could re-enter a write to stderr that this interrupted
            os.write(2, b"skyscan-tui: stopping the workers; Ctrl-C again to abandon them\n")

    def _retry_later(self) -> None:
        import _thread
        import signal
        import threading

        def again() -> None:
            if not self._installed:  # main has ended meanwhile
                return
            self._again = True
            if hasattr(signal, "pthread_kill"):  # a real signal also wakes a blocking call
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            else:
                _thread.interrupt_main(signal.SIGINT)

        timer = threading.Timer(0.05, again)
        timer.daemon = True
        timer.start()


def importing(frame: Any) -> bool:
    """Whether ``frame`` (the main thread's, in a signal handler) is inside an import."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def forget_caught_interrupt() -> None:
    """Clear CPython's flag of an unhandled KeyboardInterrupt.

    CPython flags a KeyboardInterrupt that leaves exec() of a string (dataclasses and
    namedtuples are made that way, e.g. while a module is imported) as unhandled even when it
    is caught later, and then ends the process with SIGINT (exit status -2 instead of our
    130). exec() of a string clears that flag again."""
    exec("")
