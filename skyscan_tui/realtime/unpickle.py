"""Restricted unpickling of alert ``.pkl`` messages and of the pickled I3Frames inside them.

Every pickle is first walked opcode by opcode (:mod:`pickletools`, which never reads past
the data) against an allow-list of opcodes, with memo indices bounded; only then is it loaded
by an unpickler whose ``find_class`` knows nothing but the globals it is given. For frame
pickles those are the I3Frame class names (mapped to the inert :class:`FrameHolder`) and
``_codecs.encode`` (restricted to latin-1, which Python 3 writers use for ``bytes``).
``os.system``, ``builtins.eval``, persistent ids, extension codes and the like are refused.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from typing import Any

from skyscan_tui.realtime.errors import RealtimeError, short_reason

__all__ = ["FrameHolder", "FRAME_GLOBALS", "restricted_loads"]

_MAX_MEMO = 1_000_000


class FrameHolder:
    """Inert stand-in for ``icecube.icetray.I3Frame``: keeps the pickled state, runs nothing."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Latin1Encode:
    """Replacement for ``_codecs.encode``: only ``(str, 'latin1')`` → bytes (py3 frame pickles).

    An instance without ``__dict__`` whose ``__setstate__`` refuses, so a pickle's BUILD
    opcode cannot alter it (a plain function would accept new attributes).
    """

    __slots__ = ()

    def __call__(self, text: Any, encoding: Any = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise RealtimeError("pickle calls _codecs.encode with unexpected arguments")
        return text.encode("latin-1")

    def __setstate__(self, state: Any) -> None:
        raise RealtimeError("pickle tries to modify _codecs.encode; refused")


_latin1_encode = _Latin1Encode()

#: The only globals a frame pickle may name (the outer message may name none).
FRAME_GLOBALS: dict[tuple[str, str], Any] = {
    ("icecube.icetray", "I3Frame"): FrameHolder,
    ("icecube._icetray", "I3Frame"): FrameHolder,
    ("_codecs", "encode"): _latin1_encode,
}

# Opcodes a data-only pickle (dicts, lists, tuples, strings, numbers) plus the frame wrapper
# needs. No INST/OBJ/NEWOBJ/EXT*/PERSID/STACK_GLOBAL: they could build arbitrary objects.
_SAFE_OPS = frozenset("""
PROTO FRAME STOP MARK POP POP_MARK DUP
NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG1 BINFLOAT
BINSTRING SHORT_BINSTRING BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8
BINUNICODE SHORT_BINUNICODE BINUNICODE8
EMPTY_DICT DICT SETITEM SETITEMS EMPTY_LIST LIST APPEND APPENDS
EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_SET ADDITEMS FROZENSET
BINPUT LONG_BINPUT MEMOIZE BINGET LONG_BINGET
""".split())
_CALL_OPS = frozenset({"GLOBAL", "REDUCE", "BUILD"})


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, allowed: dict[tuple[str, str], Any]) -> None:
        super().__init__(io.BytesIO(data), encoding="latin1")  # py2 str payloads → text
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        obj = self._allowed.get((module, name))
        if obj is None:
            raise RealtimeError(f"pickle refers to forbidden global {module}.{name}; refused")
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise RealtimeError("pickle uses persistent ids; refused")


def restricted_loads(data: bytes, allowed: dict[tuple[str, str], Any] | None = None) -> Any:
    """Unpickle ``data`` allowing only the globals in ``allowed`` (none by default).

    The opcode stream is checked first (allow-listed opcodes, declared lengths within the
    data, bounded memo indices), so neither code execution nor a huge allocation can happen.

    Parameters
    ----------
    data : the pickle bytes.
    allowed : ``{(module, name): object}`` that ``GLOBAL`` may name; e.g. :data:`FRAME_GLOBALS`.

    Raises
    ------
    RealtimeError : one line, for a corrupt pickle or one that needs anything not allowed.
    """
    allowed = allowed or {}
    ops = _SAFE_OPS | (_CALL_OPS if allowed else frozenset())
    try:
        recent: list[str] = ["?", "?"]  # last two strings pushed (names for STACK_GLOBAL)
        for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
            if isinstance(arg, str) and op.name.endswith("UNICODE"):
                recent = [recent[1], arg[:80]]
            if op.name in ("GLOBAL", "STACK_GLOBAL"):
                # protocol-4 STACK_GLOBAL takes its names from the stack: never allowed
                module, _, name = (str(arg).partition(" ") if op.name == "GLOBAL"
                                   else (recent[0], "", recent[1]))
                if op.name == "STACK_GLOBAL" or (module, name) not in allowed:
                    raise RealtimeError(
                        f"pickle refers to forbidden global {module}.{name}; refused")
            elif op.name not in ops:
                raise RealtimeError(f"pickle uses the disallowed opcode {op.name}; refused")
            elif op.name in ("BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET") \
                    and int(arg) > _MAX_MEMO:
                raise RealtimeError("pickle memo index out of range")
    except RealtimeError:
        raise
    except (ValueError, EOFError, UnicodeDecodeError, OverflowError) as exc:
        raise RealtimeError(f"corrupt pickle ({short_reason(exc)})") from None
    try:
        return _Unpickler(data, allowed).load()
    except RealtimeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a file defect
        raise RealtimeError(
            f"corrupt pickle ({type(exc).__name__}: {short_reason(exc)})") from None
