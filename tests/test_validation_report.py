"""benchmarks/validation_report.py writes its section between the markers, and only there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import validation_report as vr

HEAD = "# Validation\n\nHand-written text before, with a table:\n\n| a | b |\n|---|---|\n\n"
TAIL = "\n\n## Later section\n\nHand-written text after.\n"


def _parts(text: str) -> tuple[str, str, str]:
    i, j = text.index(vr.BEGIN), text.index(vr.END) + len(vr.END)
    return text[:i], text[i:j], text[j:]


def test_quick_run_fills_the_section_and_leaves_the_rest(tmp_path: Path):
    doc = tmp_path / "validation.md"
    doc.write_text(HEAD + vr.BEGIN + "\nstale generated text\n" + vr.END + TAIL)
    rows = tmp_path / "rows"
    argv = ["--quick", "--events", "2", "-j", "1", "--rows", str(rows), "--doc", str(doc)]
    assert vr.main(argv) == 0
    first = doc.read_text()
    head, section, tail = _parts(first)
    assert (head, tail) == (HEAD, TAIL)
    assert "stale" not in section
    # both detectors, the E^-2 sample and the 10 TeV line, 2 events each
    for label in ("matched", "realistic"):
        assert f"| {label} | E⁻², 1–100 | 2 |" in section
        assert f"| {label} | 10 | 2 |" in section
    assert "dim (" in section and "bright (" in section
    assert "| `run00136766-evt000007637140-GOLD.pkl` | GOLD |" in section
    assert "OnlineL2_SplineMPE" in section and "--events 2" in section
    n_rows = {p.name: len(p.read_text().splitlines()) for p in rows.iterdir()}
    assert n_rows == {"sim.jsonl": 8, "real.jsonl": 1}
    # re-rendered from the cache: byte for byte the same document, no scan rerun
    assert vr.main([*argv, "--table-only"]) == 0
    assert doc.read_text() == first
    # a rerun resumes from the cache: nothing is scanned again
    assert vr.main(argv) == 0
    assert doc.read_text() == first
    assert {p.name: len(p.read_text().splitlines()) for p in rows.iterdir()} == n_rows
    # a run killed while writing its last row: that row is cut off and its scan redone
    sim = rows / "sim.jsonl"
    text = sim.read_text()
    sim.write_text(text[:len(text) - 40])
    assert vr.main(argv) == 0
    assert doc.read_text() == first
    def figures(lines: str) -> list[dict]:  # all but the CPU time
        rows = (json.loads(x) for x in lines.splitlines())
        return sorted(rows, key=lambda r: (r["seed"], r["ice"], r["spectrum"]))

    assert [dict(r, cpu=0) for r in figures(sim.read_text())] == [
        dict(r, cpu=0) for r in figures(text)]


def test_section_is_appended_without_markers_and_replaced_after():
    doc = HEAD + "Last hand-written line.\n"
    section = vr.BEGIN + "\nnew\n" + vr.END + "\n"
    once = vr.insert_section(doc, section)
    assert once.startswith(doc) and once.endswith(section)
    assert vr.insert_section(once, section) == once
    other = vr.insert_section(once, vr.BEGIN + "\nnewer\n" + vr.END + "\n")
    assert other == once.replace("\nnew\n", "\nnewer\n")


def test_terciles_split_by_brightness():
    rows = [{"n_bright": n} for n in (5, 1, 9, 3, 7, 2, 8, 4, 6)]
    parts = vr.terciles(rows)
    assert [label for label, _ in parts] == ["dim (1–3)", "middle (4–6)", "bright (7–9)"]
    assert sum(len(p) for _, p in parts) == len(rows)


@pytest.mark.parametrize(("argv", "message"), [
    (["--table-only"], "--table-only needs --rows"),
    (["--events", "0"], "positive numbers"),
    (["--energies", "ten"], "--energies takes TeV values"),
    (["--rows", "{doc}"], "not a folder"),
    (["--doc", "{missing}"], "no such document"),
])
def test_bad_arguments_exit_2(tmp_path: Path, capsys, argv: list[str], message: str):
    doc = tmp_path / "validation.md"
    doc.write_text(HEAD)
    argv = [a.format(doc=doc, missing=tmp_path / "missing.md") for a in argv]
    with pytest.raises(SystemExit) as exc:
        vr.main(["--doc", str(doc), *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert doc.read_text() == HEAD
