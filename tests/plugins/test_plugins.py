"""The plug-in registry: entry points only, listing without imports, clear load errors."""

from __future__ import annotations

import sys
from importlib import metadata

import pytest

from skyscan_tui import plugins
from skyscan_tui.errors import UserError


def _fake_group(monkeypatch, group: str, eps: dict[str, str]) -> None:
    real = metadata.entry_points

    def entry_points(**kw):
        if kw.get("group") == group:
            return [metadata.EntryPoint(name, value, group) for name, value in eps.items()]
        return real(**kw)

    monkeypatch.setattr(plugins.metadata, "entry_points", entry_points)


@pytest.fixture()
def broken_reco(tmp_path, monkeypatch):
    """A reco plug-in whose module needs a package that is not installed."""
    (tmp_path / "skyscan_fake_reco.py").write_text(
        "import skyscan_no_such_dep  # noqa: F401\nRECO = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _fake_group(monkeypatch, "skyscan_tui.recos",
                {"dummy": "recos.dummy:DummyReco", "fancy": "skyscan_fake_reco:RECO",
                 "gone": "skyscan_fake_reco:NOPE"})
    yield
    sys.modules.pop("skyscan_fake_reco", None)


def test_listing_reads_metadata_only(broken_reco):
    from recos import available_recos

    assert available_recos() == ["dummy", "fancy", "gone"]
    assert "skyscan_fake_reco" not in sys.modules


def test_missing_dependency_is_not_unknown(broken_reco):
    from recos import get_reco

    with pytest.raises(UserError) as info:
        get_reco("fancy")
    msg = str(info.value)
    assert "\n" not in msg and "unknown" not in msg
    assert msg.startswith("reco 'fancy' cannot be loaded: No module named 'skyscan_no_such_dep'")
    assert "pip install skyscan_no_such_dep" in msg


def test_unknown_name_lists_the_installed_ones(broken_reco):
    from recos import get_reco

    with pytest.raises(UserError, match=r"unknown reco 'nope' \(available: dummy, fancy"):
        get_reco("nope")
    assert get_reco("dummy").name == "dummy"


def test_recos_listing_survives_a_broken_plugin(broken_reco, capsys):
    from skyscan_tui.cli import main

    sys.modules.pop("skyscan_fake_reco", None)
    assert main(["recos"]) == 0
    out = capsys.readouterr().out
    assert "dummy" in out and "fancy" in out and "cannot be loaded" in out


def test_executors_come_from_entry_points_only(monkeypatch):
    from executors import available_executors, get_executor

    assert {"local", "serial", "condor", "slurm"} <= set(available_executors())
    _fake_group(monkeypatch, "skyscan_tui.executors", {"serial": "executors.serial:SerialExecutor"})
    assert available_executors() == ["serial"]
    with pytest.raises(UserError, match="unknown executor 'local'"):
        get_executor("local")


def test_worker_falls_back_to_the_module_without_metadata(monkeypatch):
    """A copied tree (no package metadata) on a cluster node: recos.<name>.RECO."""
    from executors.worker import reco_class
    from recos import get_reco

    _fake_group(monkeypatch, "skyscan_tui.recos", {})
    with pytest.raises(UserError, match="unknown reco"):
        get_reco("dummy")  # the registry itself has no fallback
    assert reco_class("dummy").name == "dummy"
    with pytest.raises(UserError, match="unknown reco 'nope'"):
        reco_class("nope")
