"""Schema-check results kept between runs answer exactly as the check itself."""

from __future__ import annotations

import copy

import pytest

from kubeforge.compiler import api_schema, api_schema_cache
from kubeforge.compiler.api_schema_cache import CheckCache

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"serviceAccount": "old",
                                   "containers": [{"name": "web", "image": "nginx"}]}}},
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBEFORGE_CACHE_DIR", str(tmp_path))
    api_schema_cache.cache_file.cache_clear()
    yield tmp_path
    api_schema_cache.cache_file.cache_clear()


def bad() -> dict:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["spec"]["replicaz"] = 3
    return obj


def counted_checks(monkeypatch) -> list[tuple[dict, int]]:
    """The (object, minor) of every check the cache could not answer, from now on."""
    calls: list[tuple[dict, int]] = []
    real = api_schema.check_object
    monkeypatch.setattr(api_schema, "check_object",
                        lambda obj, minor: calls.append((obj, minor)) or real(obj, minor))
    return calls


def test_a_stored_result_is_the_checks_own(cache, monkeypatch):
    expected = {37: [api_schema.check_object(o, 37) for o in (DEPLOYMENT, bad())]}
    assert expected[37][0] and expected[37][1]  # a deprecation; an error and a deprecation
    first = CheckCache()
    assert [first.check(o, 37) for o in (DEPLOYMENT, bad())] == expected[37]
    first.save()

    def unreachable(obj, minor):
        raise AssertionError("checked again")

    monkeypatch.setattr(api_schema, "check_object", unreachable)
    assert [CheckCache().check(o, 37) for o in (DEPLOYMENT, bad())] == expected[37]


def test_another_object_or_minor_is_checked(cache, monkeypatch):
    stored = CheckCache()
    stored.check(DEPLOYMENT, 37)
    stored.save()
    calls = counted_checks(monkeypatch)
    again = CheckCache()
    again.check(DEPLOYMENT, 37)
    again.check(DEPLOYMENT, 36)
    again.check(bad(), 37)
    reordered = dict(reversed(list(DEPLOYMENT.items())))  # messages show keys in order
    again.check(reordered, 37)
    assert [minor for _, minor in calls] == [36, 37, 37]


def test_a_damaged_file_is_an_empty_cache(cache):
    path = api_schema_cache.cache_file()
    assert path.parent == cache
    path.write_text("{not json")
    assert CheckCache().check(bad(), 37) == api_schema.check_object(bad(), 37)


def test_the_file_is_named_by_the_check_and_the_packages(cache, monkeypatch):
    before = api_schema_cache.cache_file()
    api_schema_cache.cache_file.cache_clear()
    monkeypatch.setattr(api_schema_cache, "_PACKAGES", ("jsonschema", "referencing", "yaml"))
    assert api_schema_cache.cache_file() != before


def test_past_the_limit_a_run_keeps_every_result_it_used(cache, monkeypatch):
    monkeypatch.setattr(api_schema_cache, "LIMIT", 3)
    objects = [{**DEPLOYMENT, "metadata": {"name": f"w{i}"}} for i in range(4)]
    first = CheckCache()
    for obj in objects[:2]:
        first.check(obj, 37)
    first.save()  # two results
    second = CheckCache()
    for obj in objects:  # two known, two new: four, past the limit of three
        second.check(obj, 37)
    second.save()
    checked = counted_checks(monkeypatch)
    third = CheckCache()
    for obj in objects:
        third.check(obj, 37)
    assert checked == []  # all four kept, though past the limit
    third.check({**DEPLOYMENT, "metadata": {"name": "other"}}, 37)
    third.save()
    assert len(CheckCache().known) == 5  # the run's four and its new one; nothing older
