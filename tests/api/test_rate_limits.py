"""Rate limit per API token: over TAGBASE_API_RATE_LIMIT requests a minute, 429 rate_limited
with Retry-After; each token and each minute counted on its own (tiny limits here)."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from tagbase.lib import ratelimit

from .support import assert_error, send, session_client, token_client

pytestmark = pytest.mark.django_db

MINUTE_START = 1_800_000_000.0  # a whole minute, so the tests know where the window ends


@pytest.fixture(autouse=True)
def _fresh_counters(monkeypatch):
    cache.clear()
    clock = {"now": MINUTE_START + 15}
    monkeypatch.setattr(ratelimit, "_now", lambda: clock["now"])
    yield clock
    cache.clear()


def test_a_token_over_its_limit_gets_429_with_retry_after(settings):
    settings.TAGBASE_API_RATE_LIMIT = 3
    client, _ = token_client("read")
    for _ in range(3):
        assert send(client, "GET", "/audiences").status_code == 200
    response = send(client, "GET", "/audiences")
    error = assert_error(response, 429, "rate_limited", None)
    assert response["Retry-After"] == "45"  # 15 s into the minute
    assert "at most 3 a minute" in error["message"]


def test_refused_requests_count_too_and_writes_are_limited_like_reads(settings):
    settings.TAGBASE_API_RATE_LIMIT = 2
    client, _ = token_client("read")
    assert_error(send(client, "POST", "/audiences", {"name": "A"}), 403, "missing_scope")
    assert send(client, "GET", "/audiences").status_code == 200
    assert_error(send(client, "POST", "/audiences", {"name": "A"}), 429, "rate_limited")


def test_each_token_has_its_own_count(settings):
    settings.TAGBASE_API_RATE_LIMIT = 1
    first, _ = token_client("read")
    second, _ = token_client("read")
    assert send(first, "GET", "/audiences").status_code == 200
    assert_error(send(first, "GET", "/audiences"), 429, "rate_limited")
    assert send(second, "GET", "/audiences").status_code == 200


def test_the_next_minute_starts_a_new_count(settings, _fresh_counters):
    settings.TAGBASE_API_RATE_LIMIT = 1
    client, _ = token_client("read")
    assert send(client, "GET", "/audiences").status_code == 200
    _fresh_counters["now"] = MINUTE_START + 59.5
    response = send(client, "GET", "/audiences")
    assert_error(response, 429, "rate_limited")
    assert response["Retry-After"] == "1"  # never 0
    _fresh_counters["now"] = MINUTE_START + 60
    assert send(client, "GET", "/audiences").status_code == 200


def test_the_uis_session_is_not_limited_and_a_bad_token_stays_a_401(settings):
    settings.TAGBASE_API_RATE_LIMIT = 1
    client = session_client()
    bad = token_client("read")[0]
    bad.defaults["HTTP_AUTHORIZATION"] = "Bearer tb_not-a-real-token"
    for _ in range(3):
        assert send(client, "GET", "/audiences").status_code == 200
        assert_error(send(bad, "GET", "/audiences"), 401, "invalid_token")


def test_zero_turns_the_limit_off(settings, monkeypatch):
    settings.TAGBASE_API_RATE_LIMIT = 0

    def no_counting(*args):
        raise AssertionError("counted although the limit is off")

    monkeypatch.setattr(ratelimit, "hit", no_counting)
    client, _ = token_client("read")
    for _ in range(5):
        assert send(client, "GET", "/audiences").status_code == 200


def test_a_failing_cache_lets_requests_through_and_is_logged(settings, monkeypatch, caplog):
    settings.TAGBASE_API_RATE_LIMIT = 1

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "add", broken)
    client, _ = token_client("read")
    for _ in range(3):
        assert send(client, "GET", "/audiences").status_code == 200
    assert "Rate limit 'api' not applied: the cache failed" in caplog.text


def test_the_openapi_schema_lists_429_for_token_routes():
    client, _ = token_client("read")
    schema = send(client, "GET", "/openapi.json").json()
    responses = schema["paths"]["/api/v1/audiences"]["get"]["responses"]
    assert "429" in responses


def test_the_limit_holds_with_the_shared_database_cache(settings):
    # The production setting (TAGBASE_CACHE=database): counters in the tagbase_cache table.
    from django.core.management import call_command

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "tagbase_cache",
        }
    }
    call_command("createcachetable", verbosity=0)
    settings.TAGBASE_API_RATE_LIMIT = 2
    client, _ = token_client("read")
    assert send(client, "GET", "/audiences").status_code == 200
    assert send(client, "GET", "/audiences").status_code == 200
    response = send(client, "GET", "/audiences")
    assert_error(response, 429, "rate_limited")
    assert response["Retry-After"] == "45"
