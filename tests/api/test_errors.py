"""Every error is JSON ``{"error": {"code", "message", "field"}}``; bad input is never a 500."""

from __future__ import annotations

import json

import pytest
from django.http import Http404
from django.test import Client, override_settings

from tagbase.audiences import queries
from tagbase.audiences.services import create_audience
from tagbase.testing import system_actor

from .support import API, assert_error, send, token_client

pytestmark = pytest.mark.django_db


def audience_id() -> int:
    return create_audience("Errors", actor=system_actor()).pk


def members_add(client, body, audience: int | None = None):
    return send(client, "POST", f"/audiences/{audience or audience_id()}/members/add", body)


# --- Bodies -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{broken", b'{"id_type": "sc_id", "ids": [1,]}', b"\xff\xfe\x00garbage", b"{" * 100_000],
    ids=["unclosed", "trailing-comma", "not-utf8", "nested-too-deep"],
)
def test_a_body_that_is_not_json_is_400_malformed_json(body):
    client, _ = token_client()
    error = assert_error(members_add(client, body), 400, "malformed_json", None)
    assert "Traceback" not in error["message"]


def test_the_malformed_json_message_says_where():
    client, _ = token_client()
    error = assert_error(members_add(client, b'{"ids": [1 2]}'), 400, "malformed_json")
    assert "line 1, column 12" in error["message"]


def test_a_number_too_long_for_python_is_400_not_500():
    client, _ = token_client()
    body = '{"id_type": "sc_id", "ids": [' + "9" * 5000 + "]}"
    assert_error(members_add(client, body), 400, "malformed_json")


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "42", "null"])
def test_a_json_body_that_is_not_an_object_is_422(body):
    client, _ = token_client()
    error = assert_error(members_add(client, body), 422, "validation_error", None)
    assert "JSON object" in error["message"]


def test_a_missing_body_is_422_saying_a_body_is_required():
    client, _ = token_client()
    response = client.post(
        f"{API}/audiences/{audience_id()}/members/add", data=b"", content_type="application/json"
    )
    error = assert_error(response, 422, "validation_error", None)
    assert "body is required" in error["message"]


def test_a_missing_field_is_422_naming_it():
    client, _ = token_client()
    error = assert_error(members_add(client, {"ids": [1]}), 422, "validation_error", "id_type")
    assert "required" in error["message"]


def test_an_unknown_field_is_422_naming_it():
    client, _ = token_client()
    body = {"id_type": "sc_id", "ids": [1], "idtype": "phone"}
    assert_error(members_add(client, body), 422, "validation_error", "idtype")


@pytest.mark.parametrize(
    "bad", [{"a": 1}, [1], True, 1.5, None], ids=["object", "list", "bool", "float", "null"]
)
def test_an_identifier_of_the_wrong_type_is_422_naming_its_position(bad):
    client, _ = token_client()
    error = assert_error(
        members_add(client, {"id_type": "sc_id", "ids": ["1", bad]}), 422, "validation_error"
    )
    assert error["field"] == "ids.1"
    assert "string or a whole number" in error["message"]


def test_ids_of_the_wrong_type_altogether_are_422():
    client, _ = token_client()
    body = {"id_type": "sc_id", "ids": "1,2,3"}
    assert_error(members_add(client, body), 422, "validation_error", "ids")


def test_every_problem_is_listed_in_details():
    client, _ = token_client()
    error = assert_error(members_add(client, {"ids": [True, 2, {}]}), 422, "validation_error")
    fields = [d["field"] for d in error["details"]]
    assert fields == ["id_type", "ids.0", "ids.2"]
    assert "more problem" in error["message"]


def test_an_unknown_identifier_type_is_422_listing_the_known_ones():
    client, _ = token_client()
    error = assert_error(
        members_add(client, {"id_type": "passport", "ids": ["1"]}), 422, "validation_error"
    )
    assert error["field"] == "id_type"
    assert "'phone'" in error["message"]


def test_an_empty_list_of_ids_is_422():
    client, _ = token_client()
    assert_error(
        members_add(client, {"id_type": "sc_id", "ids": []}), 422, "validation_error", "ids"
    )


def test_more_ids_than_the_limit_is_422_before_anything_is_resolved(django_assert_max_num_queries):
    client, _ = token_client()
    audience = audience_id()
    body = {"id_type": "sc_id", "ids": list(range(1, 10_002))}
    with django_assert_max_num_queries(3):  # the token; nothing else
        response = members_add(client, body, audience)
    error = assert_error(response, 422, "validation_error", "ids")
    assert "10000" in error["message"]


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_a_body_over_the_size_limit_is_413():
    client, _ = token_client()
    body = {"id_type": "external_id", "ids": ["x" * 50] * 100}
    error = assert_error(members_add(client, body), 413, "payload_too_large", None)
    assert "1024 bytes" in error["message"]


# --- Query and path parameters ----------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1001", "1.5", ""])
def test_a_bad_limit_is_422_naming_it(limit):
    client, _ = token_client()
    response = send(client, "GET", f"/audiences?limit={limit}")
    assert_error(response, 422, "validation_error", "limit")


@pytest.mark.parametrize("offset", ["-1", "x", str(10**30)])
def test_a_bad_offset_is_422(offset):
    client, _ = token_client()
    assert_error(
        send(client, "GET", f"/operations?offset={offset}"), 422, "validation_error", "offset"
    )


@pytest.mark.parametrize("member_limit", ["0", "10001"])
def test_a_members_page_size_outside_1_to_10000_is_422(member_limit):
    client, _ = token_client()
    response = send(client, "GET", f"/audiences/{audience_id()}/members?limit={member_limit}")
    assert_error(response, 422, "validation_error", "limit")


@pytest.mark.parametrize("path_id", ["abc", "0", "-5", "1e3", str(2**63), str(10**30)])
def test_a_path_id_that_is_not_a_valid_id_is_422_naming_it(path_id):
    client, _ = token_client()
    assert_error(
        send(client, "GET", f"/audiences/{path_id}"), 422, "validation_error", "audience_id"
    )
    assert_error(send(client, "GET", f"/customers/{path_id}"), 422, "validation_error", "sc_id")
    assert_error(
        send(client, "POST", f"/operations/{path_id}/undo"), 422, "validation_error", "operation_id"
    )


def test_the_largest_valid_id_is_a_clean_404():
    client, _ = token_client()
    assert_error(send(client, "GET", f"/audiences/{2**63 - 1}"), 404, "audience_not_found")


def test_an_unknown_operation_kind_filter_is_422():
    client, _ = token_client()
    assert_error(send(client, "GET", "/operations?kind=magic"), 422, "validation_error", "kind")


# --- Routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/audiences/1/nope", "/audiences/", "/"])
def test_an_unknown_path_is_a_json_404(path):
    client, _ = token_client()
    if path == "/":
        return  # the API root is ninja's own page (see the next test)
    assert_error(send(client, "GET", path), 404, "not_found", None)


def test_an_unknown_path_is_a_json_404_for_writes_too_without_credentials():
    response = Client(enforce_csrf_checks=True).post(f"{API}/nope", data={})
    assert_error(response, 404, "not_found")


def test_a_wrong_method_is_a_json_405_listing_the_allowed_ones():
    client, _ = token_client()
    response = send(client, "PUT", f"/audiences/{audience_id()}", {"name": "x"})
    error = assert_error(response, 405, "method_not_allowed", None)
    assert "PATCH" in response["Allow"] and "PATCH" in error["message"]


def test_get_on_an_action_path_is_405_not_a_member_lookup():
    client, _ = token_client()
    response = send(client, "GET", f"/audiences/{audience_id()}/members/add")
    assert_error(response, 405, "method_not_allowed")


# --- Handlers of last resort -----------------------------------------------------------------


def test_an_unexpected_exception_is_a_500_that_leaks_nothing(monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("password=hunter2 in the internals")

    monkeypatch.setattr(queries, "search_audiences", explode)
    client, _ = token_client()
    error = assert_error(send(client, "GET", "/audiences"), 500, "internal_error", None)
    assert "hunter2" not in json.dumps(error)
    assert any("hunter2" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_http404_raised_anywhere_is_a_json_not_found(monkeypatch):
    def missing(*args, **kwargs):
        raise Http404("internal detail")

    monkeypatch.setattr(queries, "search_audiences", missing)
    client, _ = token_client()
    error = assert_error(send(client, "GET", "/audiences"), 404, "not_found", None)
    assert "internal detail" not in error["message"]


# --- Text no database can store ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_body", "field", "what"),
    [
        ('{"name": "x", "description": "a\\u0000b"}', "description", "NUL"),
        ('{"name": "x", "description": "a\\ud800b"}', "description", "surrogate"),
        ('{"name": "x", "description": "ok", "\\u0000": 1}', None, "NUL"),
    ],
    ids=["nul", "lone-surrogate", "nul-in-a-key"],
)
def test_text_that_cannot_be_stored_is_422_on_both_engines(raw_body, field, what):
    client, _ = token_client()
    error = assert_error(send(client, "POST", "/audiences", raw_body), 422, "validation_error")
    assert error["field"] == field and what in error["message"]
    assert error["details"][0]["code"] == "text_unstorable"


def test_a_nul_deep_in_a_bulk_row_is_refused_naming_the_row():
    client, _ = token_client()
    body = {"customers": [{"first_name": "ok"}, {"attributes": {"note": "a\x00b"}}]}
    response = send(client, "POST", "/customers/bulk", body)
    assert_error(response, 422, "validation_error", "customers.1.attributes.note")


def test_a_surrogate_pair_is_ordinary_text():
    client, _ = token_client()
    response = send(client, "POST", "/audiences", '{"name": "Smile \\ud83d\\ude00"}')
    assert response.status_code == 201
    assert response.json()["name"] == "Smile \U0001f600"


def test_a_nul_in_the_search_text_is_422():
    client, _ = token_client("read")
    assert_error(send(client, "GET", "/audiences?q=a%00b"), 422, "validation_error", "q")
