"""Questions a back-end must ask the user while it runs: login prompts (one-time codes,
Duo/TOTP, passwords) of a keyboard-interactive SSH login.

The core never talks to a terminal or a UI itself: it calls :func:`ask`, which hands the
question to the handler the front end installed (:func:`set_prompt_handler`). The CLI keeps
the default, :func:`terminal_prompt` (no echo on a terminal; a line of stdin otherwise); the
app installs one that shows a modal dialog on its main thread. A handler may be called from
any thread (paramiko calls it from its transport thread) and blocks until the user answered.

Answers are secrets: nothing here logs them, and callers must keep them out of messages.
"""

from __future__ import annotations

import atexit
import sys
import threading
from collections.abc import Callable, Sequence

from skyscan_tui.errors import UserError

__all__ = ["PromptHandler", "PromptCancelled", "ask", "set_prompt_handler",
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
    """The CLI's handler: text on stderr; answers read from the terminal without echo (for
    prompts that ask so), or one line each from stdin when stdin is not a terminal (a pipe,
    a here-document), so scripts and tests can answer."""
    for text in (title, instructions):
        if text.strip():
            print(text.strip(), file=sys.stderr, flush=True)
    answers = []
    for prompt, echo in prompts:
        if sys.stdin is not None and sys.stdin.isatty():
            answers.append(_read_tty(prompt, echo))
            continue
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = sys.stdin.readline() if sys.stdin is not None else ""
        if not line:
            sys.stderr.write("\n")
            raise PromptCancelled(f"no answer to the login prompt {prompt.strip()!r} "
                                  "(stdin is closed); run from a terminal or type it on stdin")
        answers.append(line.rstrip("\r\n"))
    return answers


def _read_tty(prompt: str, echo: bool) -> str:
    """One answer from the terminal on stdin; echo off unless the prompt allows it. A Ctrl-C
    may end the program while this thread waits here, so the terminal's mode is restored at
    exit too."""
    import termios

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def restore() -> None:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    atexit.register(restore)
    try:
        if not echo:  # echo off before the prompt shows: nothing typed after it is echoed
            quiet = termios.tcgetattr(fd)
            quiet[3] &= ~termios.ECHO
            termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = sys.stdin.readline()
    finally:
        restore()
        atexit.unregister(restore)
        if not echo:
            sys.stderr.write("\n")
    if not line:
        raise PromptCancelled(f"no answer to the login prompt {prompt.strip()!r}")
    return line.rstrip("\r\n")
