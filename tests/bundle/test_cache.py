"""The build cache: keyed entries appear whole or not at all."""

from __future__ import annotations

import pytest

from kubeforge.bundle.cache import Cache, default_cache_dir, input_key


def test_entry_is_made_once_and_then_found(tmp_path):
    cache, calls = Cache(tmp_path), []

    def make(directory):
        calls.append(directory)
        (directory / "tool").write_text("built")
        return {"sha256": "abc"}

    key = input_key("go-binary", {"component": "crictl"}, "go1.26.8")
    first = cache.get_or_make("bin", key, make)
    second = cache.get_or_make("bin", key, make)
    assert first[2] is True and second[2] is False and len(calls) == 1
    assert second[0] == first[0] and (second[0] / "tool").read_text() == "built"
    assert second[1] == {"sha256": "abc"}


def test_failed_make_leaves_nothing_behind(tmp_path):
    cache = Cache(tmp_path)

    def make(directory):
        (directory / "half").write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_make("bin", input_key("x"), make)
    assert cache.lookup("bin", input_key("x")) is None
    assert list((tmp_path / "bin").iterdir()) == []


def test_keys_depend_on_every_input():
    assert input_key("a", {"x": 1}) == input_key("a", {"x": 1})
    assert input_key("a", {"x": 1}) != input_key("a", {"x": 2})
    assert input_key("a", "go1.26.8") != input_key("a", "go1.26.9")


def test_cache_location_can_be_overridden(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBEFORGE_BUNDLE_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("KUBEFORGE_BUNDLE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "kubeforge" / "bundles"
