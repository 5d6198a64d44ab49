"""Side environments are never built implicitly: code that needs one fails with the command that builds it."""

from __future__ import annotations

import pytest

from mtnet.cli import main


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MTNET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_missing_side_env_names_the_install_command_and_downloads_nothing(empty_cache, capsys):
    from mtnet.export.tflite_support_env import display

    from mtnet.serve.env import serve_env
    from mtnet.sideenv import SideEnvError

    with pytest.raises(SideEnvError, match="mtnet envs install serve"):
        serve_env()
    with pytest.raises(SideEnvError, match="mtnet envs install tflite-support"):
        display(empty_cache / "model.tflite")
    assert not empty_cache.exists()
    assert main(["envs", "list"]) == 0
    out = capsys.readouterr().out
    assert out.count("not installed") == 2 and str(empty_cache) in out


def test_an_interrupted_install_is_not_taken_for_a_finished_one(empty_cache):
    from mtnet.sideenv import SIDE_ENVS

    env = SIDE_ENVS["tflite-support"]
    (env.root / "bin").mkdir(parents=True)
    env.python.write_text("")  # a venv whose pip install never finished: no marker
    assert not env.installed()
