import time

import pytest

from dogiqa.hub import ModelNotAvailableError, from_pretrained, hub_reachable


class Loader:
    """Stands in for a transformers class: records how it was asked."""

    calls: list = []

    @classmethod
    def from_pretrained(cls, name, **kwargs):
        cls.calls.append((name, kwargs))
        if kwargs.get("local_files_only"):
            raise OSError("not in the cache")
        return "loaded"


def test_offline_miss_fails_fast_with_a_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False
    Loader.calls = []
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError, match=r"--sam2-model \./models/some-model"):
        from_pretrained(Loader, "org/some-model", option="--sam2-model", dtype="x")
    assert time.perf_counter() - start < 10.0  # generous: no network wait
    expected = {"local_files_only": True, "dtype": "x", "trust_remote_code": False}  # explicit: no stdin prompt
    assert Loader.calls == [("org/some-model", expected)]  # never the hub


def test_local_folder_is_loaded_as_is_and_bad_folders_are_named(tmp_path):
    Loader.calls = []
    assert from_pretrained(Loader, str(tmp_path)) == "loaded"
    assert Loader.calls == [(str(tmp_path), {"trust_remote_code": False})]  # explicit: never a stdin prompt

    class Broken:
        @classmethod
        def from_pretrained(cls, name, **kwargs):
            raise OSError("no config.json")

    with pytest.raises(ModelNotAvailableError, match="no loadable Broken files"):
        from_pretrained(Broken, str(tmp_path))
