"""Generated bad input never gets a 500: random JSON bodies, random identifiers and random query
strings against every write and list endpoint answer 2xx or a 4xx error of the one shape."""

from __future__ import annotations

import itertools
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagbase.audiences.services import create_audience
from tagbase.testing import make_customers, system_actor

from .support import send, token_client

pytestmark = pytest.mark.django_db

# A quick pass in every run; `make test-long` (TAGBASE_LONG_TESTS=1) fuzzes ten times longer.
LONG = os.environ.get("TAGBASE_LONG_TESTS") == "1"
FUZZ = settings(
    max_examples=500 if LONG else 50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    # Surrogates, control characters (NUL) and odd digits: text no column can hold, or that
    # normalisers must refuse rather than misread.
    | st.text(st.characters(categories=("Cs", "Cc", "Cf", "Nd", "No")), max_size=6)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_names = itertools.count()
member_bodies = st.fixed_dictionaries(
    {
        "id_type": st.sampled_from(["sc_id", "external_id", "phone", "email", "card", "x"]),
        "ids": st.lists(scalars, min_size=0, max_size=12),
    }
)


def assert_well_formed(response) -> None:
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"code", "message", "field"}


def dumps(value) -> str:
    return json.dumps(value)  # NaN and Infinity are written as Python's json does


@FUZZ
@given(body=json_values | member_bodies)
def test_any_json_body_sent_to_a_write_endpoint_is_answered_without_a_500(body):
    client, _ = token_client()
    target = create_audience(f"Fuzz {next(_names)}", actor=system_actor()).pk
    for path in (
        f"/audiences/{target}/members/add",
        f"/audiences/{target}/members/remove",
        "/audiences",
        "/customers/bulk",
        "/receipts/bulk",
    ):
        assert_well_formed(send(client, "POST", path, dumps(body)))
    assert_well_formed(send(client, "PATCH", f"/audiences/{target}", dumps(body)))


@FUZZ
@given(body=member_bodies)
def test_random_identifiers_are_resolved_or_rejected_never_a_500(body):
    client, _ = token_client()
    make_customers(2)
    audience = create_audience(f"Fuzz {next(_names)}", actor=system_actor())
    response = send(client, "POST", f"/audiences/{audience.pk}/members/add", dumps(body))
    assert_well_formed(response)
    if response.status_code == 200:
        result = response.json()
        counted = ("matched", "not_found", "ambiguous", "invalid", "duplicates")
        assert sum(result[k] for k in counted) == len(body["ids"])


@FUZZ
@given(
    name=st.sampled_from(
        ["limit", "offset", "q", "after", "kind", "audience_id", "id_type", "value"]
    ),
    value=st.text(max_size=25),
)
def test_any_query_parameter_value_is_answered_without_a_500(name, value):
    client, _ = token_client("read")
    for path in ("/audiences", "/operations", "/audiences/1/members", "/customers/lookup"):
        assert_well_formed(client.get(f"/api/v1{path}", {name: value}))


@FUZZ
@given(segment=st.text(min_size=1, max_size=25).filter(lambda s: "/" not in s and "?" not in s))
def test_any_path_segment_is_answered_without_a_500(segment):
    from urllib.parse import quote

    client, _ = token_client("read")
    part = quote(segment, safe="")
    for path in (f"/audiences/{part}", f"/customers/{part}", f"/audiences/1/members/{part}"):
        assert_well_formed(client.get(f"/api/v1{path}"))
