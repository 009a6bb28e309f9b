"""Hostile and broken realtime files: one-line error, exit 2, fast, bounded memory, no code run."""

from __future__ import annotations

import base64
import json
import os
import pickle
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from skyscan_tui import realtime
from skyscan_tui.errors import EventFileError
from skyscan_tui.events import load_event
from skyscan_tui.realtime import container, unpickle
from skyscan_tui.realtime.frames import FrameEntry
from tests.conftest import REPO, run_cli

DATA = REPO / "tests" / "data"
GOLD = DATA / "run00136766-evt000007637140-GOLD.pkl"
JSON_2023 = DATA / "138632_31747601.json"


class _Evil:
    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def _py2_frame_pickle(frame: bytes) -> bytes:
    """Frame pickle in the 2016 (Python 2) dialect, written opcode by opcode."""
    return (b"\x80\x02cicecube.icetray\nI3Frame\n)R}"
            + b"T" + struct.pack("<I", len(frame)) + frame + b"\x86b.")


def _wrap(pickle_bytes: bytes) -> str:
    return base64.b64encode(zlib.compress(pickle_bytes)).decode()


def _frames_of(path: Path) -> tuple[dict, list]:
    msg = json.loads(path.read_text())
    return msg, msg["value"]["data"]["frames"]


def _q_frame_bytes() -> bytes:
    _msg, frames = _frames_of(JSON_2023)
    (payload,) = [p for s, p in frames if s == "Q"]
    return container.frame_bytes(payload, "Q frame")


def _with_q(frame: bytes | None = None, pickle_bytes: bytes | None = None,
            payload: str | None = None) -> str:
    msg, frames = _frames_of(JSON_2023)
    if payload is None:
        payload = _wrap(pickle_bytes if pickle_bytes is not None else _py2_frame_pickle(frame))
    msg["value"]["data"]["frames"] = [[s, payload if s == "Q" else p] for s, p in frames]
    return json.dumps(msg)


def _hostile_inputs(tmp: Path, marker: Path) -> dict[str, Path]:
    q = _q_frame_bytes()
    cases: dict[str, bytes | str] = {}
    cases["evil.pkl"] = pickle.dumps(_Evil(f"touch {marker}"), protocol=2)
    cases["evil-frame.json"] = _with_q(pickle_bytes=pickle.dumps(_Evil(f"touch {marker}")))
    cases["evil-eval.pkl"] = (b"\x80\x03cbuiltins\neval\nX\x0b\x00\x00\x00print('hi!')"
                              b"\x85R.")
    cases["frame-global-outside.pkl"] = b"\x80\x02cicecube.icetray\nI3Frame\n)R."
    cases["random.bin"] = os.urandom(4096)
    cases["random.pkl"] = b"\x80" + os.urandom(4095)
    cases["truncated-frame.json"] = _with_q(q[: len(q) // 2])
    cases["truncated-file.pkl"] = GOLD.read_bytes()[:40_000]
    cases["truncated-zlib.json"] = _with_q(
        payload=base64.b64encode(zlib.compress(_py2_frame_pickle(q))[:-50]).decode())
    huge_count = bytearray(q)
    huge_count[11:15] = struct.pack("<I", 0xFFFFFFF0)  # number of frame entries
    cases["huge-entries.json"] = _with_q(bytes(huge_count))
    huge_blob = bytearray(q)
    key_len = struct.unpack_from("<I", q, 15)[0]
    type_at = 19 + key_len
    type_len = struct.unpack_from("<I", q, type_at)[0]
    huge_blob[type_at + 4 + type_len: type_at + 8 + type_len] = b"\xff\xff\xff\xff"
    cases["huge-blob.json"] = _with_q(bytes(huge_blob))  # 0xFFFFFFFF → u64 escape, huge
    cases["huge-pickle-len.pkl"] = b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"abc."
    cases["huge-memo.pkl"] = b"\x80\x02}r\xff\xff\xff\x7f."  # LONG_BINPUT 2**31-1
    cases["zip-bomb.json"] = _with_q(payload=base64.b64encode(
        zlib.compress(b"\0" * (64 * 1024 * 1024), 9)).decode())
    flipped = bytearray(q)
    flipped[len(q) // 2] ^= 0x40
    cases["crc.json"] = _with_q(bytes(flipped))
    cases["bad-b64.json"] = _with_q(payload="!!not base64!!")
    cases["wrong-structure-1.json"] = json.dumps({"value": {"data": 5}})
    cases["wrong-structure-2.json"] = json.dumps({"value": {"data": [["Q", 5]]}})
    cases["wrong-structure-3.json"] = json.dumps({"value": {"data": {"frames": "x"}}})
    cases["wrong-structure-4.json"] = json.dumps({"value": {"data": [["G", "eJwDAAAAAAE="]]}})
    cases["not-a-frame.json"] = _with_q(b"[i2]" + q[4:])
    out = {}
    for name, content in cases.items():
        path = tmp / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    marker = tmp / "PWNED"
    return _hostile_inputs(tmp, marker), marker


def test_hostile_inputs_fail_fast_with_bounded_memory(hostile):
    cases, marker = hostile
    for name, path in cases.items():
        tracemalloc.start()
        t0 = time.perf_counter()
        with pytest.raises(EventFileError) as info:
            load_event(path)
        elapsed = time.perf_counter() - t0
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        msg = str(info.value)
        assert "\n" not in msg and len(msg) < 400, (name, msg)
        assert elapsed < 1.0, (name, elapsed)
        assert peak < 150 * 1024 * 1024, (name, peak)
    assert not marker.exists()


@pytest.mark.parametrize("name, needle", [
    ("evil.pkl", "forbidden global"),
    ("evil-frame.json", "forbidden global"),
    ("evil-eval.pkl", "forbidden global builtins.eval"),
    ("frame-global-outside.pkl", "forbidden global icecube.icetray.I3Frame"),
    ("random.bin", "not a text/JSON event file"),
    ("random.pkl", "pickle"),
    ("truncated-frame.json", "Q frame"),
    ("truncated-file.pkl", "corrupt pickle"),
    ("truncated-zlib.json", "truncated"),
    ("huge-entries.json", "exceed"),
    ("huge-blob.json", "exceeds the data"),
    ("huge-pickle-len.pkl", "corrupt pickle"),
    ("huge-memo.pkl", "memo index"),
    ("zip-bomb.json", "decompresses to more than"),
    ("crc.json", "checksum mismatch"),
    ("bad-b64.json", "base64"),
    ("wrong-structure-1.json", "neither a frame list"),
    ("wrong-structure-2.json", "not a [stream, payload] pair"),
    ("wrong-structure-3.json", "no frame list"),
    ("wrong-structure-4.json", "lacks its Q"),
    ("not-a-frame.json", "bad magic"),
])
def test_hostile_messages(hostile, name, needle):
    cases, marker = hostile
    with pytest.raises(EventFileError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_event(cases[name])
    assert not marker.exists()


@pytest.mark.parametrize("name", ["evil.pkl", "random.bin", "truncated-frame.json",
                                  "huge-blob.json", "wrong-structure-1.json"])
def test_hostile_via_cli(hostile, name):
    cases, marker = hostile
    t0 = time.monotonic()
    r = run_cli("info", cases[name], timeout=30)
    assert time.monotonic() - t0 < 10  # process start included; the decoding itself is < 1 s
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skyscan-tui: error: "), r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not marker.exists()


def test_scan_cli_refuses_evil_pickle(hostile, tmp_path):
    cases, marker = hostile
    r = run_cli("scan", cases["evil.pkl"], "--reco", "dummy", "-o", tmp_path / "out")
    assert r.returncode == 2 and "forbidden global" in r.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_restricted_loads_unit():
    assert realtime.restricted_loads(pickle.dumps({"a": [1, 2.5, None, "x"]})) == \
        {"a": [1, 2.5, None, "x"]}
    with pytest.raises(realtime.RealtimeError, match="forbidden global"):
        realtime.restricted_loads(pickle.dumps(_Evil("true")))
    with pytest.raises(realtime.RealtimeError, match="forbidden global"):
        realtime.restricted_loads(pickle.dumps(set), {("x", "y"): object})
    with pytest.raises(realtime.RealtimeError, match="disallowed opcode"):
        realtime.restricted_loads(b"\x80\x02P0\n.")  # persistent id
    with pytest.raises(realtime.RealtimeError, match="disallowed opcode"):
        realtime.restricted_loads(b"\x80\x02\x82\x01.")  # EXT1 (copyreg registry)
    with pytest.raises(realtime.RealtimeError, match="_codecs.encode"):
        realtime.restricted_loads(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00"
                                  b"\x00\x00utf-8\x86R.", unpickle.FRAME_GLOBALS)


def _rebuild_frame(letter: str, entries: dict) -> bytes:
    """Serialise frame entries again, with a valid checksum (to reach the object decoders)."""
    body = letter.encode() + struct.pack("<I", len(entries))
    for key, entry in entries.items():
        for part in (key.encode(), entry.type_name.encode(), entry.blob):
            body += struct.pack("<I", len(part)) + part
    return b"[i3]" + struct.pack("<I", 6) + b"\0\0" + body \
        + struct.pack("<I", realtime.crc32c_raw(body))


def _load_with_q_entries(tmp_path: Path, edit) -> None:
    _stream, entries = realtime.parse_frame(_q_frame_bytes(), "Q")
    edit(entries)
    path = tmp_path / "edited.json"
    path.write_text(_with_q(_rebuild_frame("Q", entries)))
    t0 = time.perf_counter()
    try:
        load_event(path)
    finally:
        assert time.perf_counter() - t0 < 1.0


def _replace(entries: dict, key: str, blob: bytes) -> None:
    entries[key] = FrameEntry(entries[key].type_name, blob)


def test_rebuilt_frame_roundtrip(tmp_path):
    _load_with_q_entries(tmp_path, lambda e: None)  # the rebuild itself is faithful


@pytest.mark.parametrize("edit, needle", [
    (lambda e: _replace(e, "I3SuperDST", e["I3SuperDST"].blob[:-7]), "I3SuperDST"),
    (lambda e: _replace(e, "I3SuperDST", e["I3SuperDST"].blob + b"\0"), "trailing bytes"),
    (lambda e: _replace(e, "I3SuperDST", e["I3SuperDST"].blob[:34] + b"\xf7" + b"\xff" * 8
                        + e["I3SuperDST"].blob[35:]), "truncated or corrupt"),  # 2**64-1 stamps
    (lambda e: _replace(e, "InIceDSTPulses", e["InIceDSTPulses"].blob.replace(
        b"\x0a\x00\x00\x00I3SuperDST", b"\x0e\x00\x00\x00InIceDSTPulses")), "too deep"),
    (lambda e: _replace(e, "InIceDSTPulses", e["InIceDSTPulses"].blob.replace(
        b"\x0a\x00\x00\x00I3SuperDST", b"\x0e\x00\x00\x00QI3EventHeader")),
     "not a pulse series"),
    (lambda e: _replace(e, "QI3EventHeader", e["QI3EventHeader"].blob[:40]), "QI3EventHeader"),
    (lambda e: e.pop("QI3EventHeader"), "lacks its QI3EventHeader"),
])
def test_corrupt_objects_inside_valid_frames(tmp_path, edit, needle):
    with pytest.raises(EventFileError, match=needle):
        _load_with_q_entries(tmp_path, edit)


def test_build_cannot_modify_allowed_objects():
    # BUILD on the _codecs.encode stand-in (state = (None, {"__defaults__": ...})) is refused
    data = (b"\x80\x02c_codecs\nencode\nN}X\x0c\x00\x00\x00__defaults__)s\x86b.")
    with pytest.raises(realtime.RealtimeError, match="modify _codecs.encode"):
        realtime.restricted_loads(data, unpickle.FRAME_GLOBALS)
    assert unpickle._latin1_encode("é", "latin1") == b"\xe9"
