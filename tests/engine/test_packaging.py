"""The install: every Python package and the resources reach a wheel, not only a checkout."""

import tomllib

from tests.conftest import ROOT


def test_every_package_is_listed_for_setuptools():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("engine", "app")
        for p in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert "trainbench_resources" in listed


def test_resources_resolve():
    from engine import RESOURCES

    assert (RESOURCES / "templates" / "cnn.json").is_file() and (
        RESOURCES / "examples" / "digits_cnn.json"
    ).is_file()
