"""The Experiments area in the main window: its cross-area requests arrive where they should."""

from __future__ import annotations

from engine.graph import Graph
from tests.conftest import example


def test_open_model_goes_to_the_designer_and_clone_to_the_run_form(window, qtbot, monkeypatch):
    window.show_area("Experiments")
    experiments = window.area("Experiments")
    assert type(experiments).__name__ == "ExperimentsArea"
    spec = example("wine_csv")
    experiments.open_model_requested.emit(spec["model"])
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Designer"
    assert window.doc.graph.to_dict() == Graph.from_dict(spec["model"]).to_dict()

    runs = window.area("Runs")
    cloned = []
    monkeypatch.setattr(runs, "open_spec", cloned.append)
    experiments.clone_requested.emit(spec)
    assert cloned == [spec]
    assert window.tabs.tabText(window.tabs.currentIndex()) == "Runs"
