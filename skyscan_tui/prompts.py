"""Questions a back-end must ask the user while it runs, e.g. at an SSH login.

Login prompts: one-time codes, Duo/TOTP, passwords of a keyboard-interactive login.

The core never talks to a terminal or a UI itself: it calls :func:`ask`, which hands the
question to the handler the front end installed (:func:`set_prompt_handler`). The CLI keeps
the default, :func:`terminal_prompt` (no echo on a terminal; a line of stdin otherwise); the
app installs one that shows a modal dialog on its main thread. A handler may be called from
any thread (paramiko calls it from its transport thread) and blocks until the user answered.

Answers are secrets: nothing here logs them, and callers must keep them out of messages.
"""

from __future__ import annotations

import atexit
import os
import select
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from skyscan_tui.errors import UserError

__all__ = ["PromptHandler", "PromptCancelled", "ask", "cancelled_by", "set_prompt_handler",
           "terminal_prompt"]

#: ``handler(title, instructions, [(prompt, echo), ...]) -> [answer, ...]``; raises
#: :class:`PromptCancelled` when the user declines. An empty prompt list is information only
#: (e.g. "a push was sent to your phone"): show it and return ``[]`` without waiting.
PromptHandler = Callable[[str, str, Sequence[tuple[str, bool]]], list[str]]


class PromptCancelled(UserError):
    """The user declined to answer (Escape in the dialog, end of input on stdin)."""


_lock = threading.Lock()  # one question at a time, whichever thread asks
_handler: PromptHandler | None = None


def set_prompt_handler(handler: PromptHandler | None) -> PromptHandler | None:
    """Install ``handler`` (None: the terminal again); returns the one it replaces."""
    global _handler
    previous, _handler = _handler, handler
    return previous


def ask(title: str, instructions: str, prompts: Sequence[tuple[str, bool]]) -> list[str]:
    """Ask the user through the installed handler; one answer per prompt."""
    handler = _handler or terminal_prompt
    with _lock:
        answers = list(handler(title, instructions, list(prompts)))
    if len(answers) != len(prompts):
        raise PromptCancelled(f"expected {len(prompts)} answers, got {len(answers)}")
    return answers


def terminal_prompt(title: str, instructions: str,
                    prompts: Sequence[tuple[str, bool]]) -> list[str]:
    """Ask on the terminal: the CLI's handler.

    Text goes to stderr; answers are read from the terminal without echo (for prompts that
    ask so), or one line each from stdin when stdin is not a terminal (a pipe, a
    here-document), so scripts and tests can answer. Gives up with
    :class:`PromptCancelled` when the event of :func:`cancelled_by` is set (a Ctrl-C).
    """
    for text in (title, instructions):
        if text.strip():
            print(text.strip(), file=sys.stderr, flush=True)
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        fd = -1
    answers = []
    for prompt, echo in prompts:
        if fd < 0:
            line = None
        elif os.isatty(fd):
            line = _read_tty(fd, prompt, echo)
        else:
            sys.stderr.write(prompt)
            sys.stderr.flush()
            line = _read_line(fd)
        if line is None:
            sys.stderr.write("\n")
            raise PromptCancelled(f"no answer to the login prompt {prompt.strip()!r} "
                                  "(stdin is closed); run from a terminal or type it on stdin")
        answers.append(line)
    return answers


@contextmanager
def cancelled_by(event: threading.Event | None) -> Iterator[None]:
    """While inside, a terminal prompt on this thread gives up once ``event`` is set."""
    previous = getattr(_local, "cancel", None)
    _local.cancel = event
    try:
        yield
    finally:
        _local.cancel = previous


_local = threading.local()


def _read_line(fd: int) -> str | None:
    """Read one line from ``fd``, byte by byte; None at end of input.

    What follows stays for the next question, and no buffered reader is left locked if the
    program ends meanwhile. Polls, so a set :func:`cancelled_by` event ends the wait.
    """
    cancel: threading.Event | None = getattr(_local, "cancel", None)
    data = bytearray()
    while True:
        if cancel is not None and cancel.is_set():
            raise PromptCancelled("interrupted")
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        byte = os.read(fd, 1)
        if not byte:
            return data.decode("utf-8", "replace") if data else None
        if byte == b"\n":
            return data.decode("utf-8", "replace").rstrip("\r")
        data += byte


def _read_tty(fd: int, prompt: str, echo: bool) -> str | None:
    """Read one answer from the terminal on ``fd``; echo off unless the prompt allows it.

    Should the program end while this waits, the terminal's mode is restored at exit.
    """
    import termios

    saved = termios.tcgetattr(fd)

    def restore() -> None:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    atexit.register(restore)
    try:
        if not echo:  # echo off before the prompt shows: nothing typed after it is echoed
            quiet = termios.tcgetattr(fd)
            quiet[3] &= ~termios.ECHO
            # TCSADRAIN, not getpass's TCSAFLUSH: typed-ahead input is kept, and in runs on
            # a loopback pty the flush variant sometimes lost the title line (cause unclear)
            termios.tcsetattr(fd, termios.TCSADRAIN, quiet)
        sys.stderr.write(prompt)
        sys.stderr.flush()
        return _read_line(fd)
    finally:
        restore()
        atexit.unregister(restore)
        if not echo:
            sys.stderr.write("\n")
            sys.stderr.flush()
