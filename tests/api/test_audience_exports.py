"""``GET /api/v1/audiences/{id}/members.csv`` (docs/api.md, docs/exports.md): identifier and
ad-platform exports, the refusals, and who may export what.

Expected hashes are literals computed outside Tagbase with ``printf '%s' VALUE | sha256sum``.
"""

from __future__ import annotations

import pytest

from tagbase.accounts.models import Role
from tagbase.audiences import services
from tagbase.audiences.models import Audience
from tagbase.customers.models import Customer
from tagbase.customers.services import upsert_customers
from tagbase.testing import make_customers, system_actor

from .support import assert_error, send, session_client, token_client

pytestmark = pytest.mark.django_db
ACTOR = system_actor()
SHA_EMAIL = (
    "df6c9204dec1b4d1e56ac24eb9bb8908e79361219e84d98f8767dfa1abd2263e"  # ivan.petrov@mail.ru
)
SHA_PHONE_E164 = "694e8de862e4f3198b67f7a4aa9f4dfb123c5b78b0a72460ce882c405b111e63"  # +79123456789
SHA_PHONE_DIGITS = "dbae582ee1f37b15623829ece40b66a8eb5162337ab0a8b7cf1b86cb300391bc"  # 79123456789


def audience_with_ivan() -> tuple[Audience, Customer]:
    upsert_customers(
        [{"external_id": "E1", "email": " Ivan.Petrov@Mail.RU", "phone": "+7 912 345-67-89"}],
        actor=ACTOR,
    )
    ivan = Customer.objects.get(external_id="E1")
    audience = services.create_audience("Ads", actor=ACTOR)
    services.add_customers_to_audience(audience, [ivan.pk], actor=ACTOR, kind="cli")
    return audience, ivan


def body(response) -> str:
    return b"".join(response.streaming_content).decode("utf-8")


def test_the_default_export_is_sc_ids_under_a_header():
    ids = make_customers(3)
    audience = services.create_audience("Plain", actor=ACTOR)
    services.add_customers_to_audience(audience, ids, actor=ACTOR, kind="cli")
    client, _ = token_client("read")
    response = send(client, "GET", f"/audiences/{audience.pk}/members.csv")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Cache-Control"] == "no-store"
    assert f"audience-{audience.pk}-sc_id.csv" in response["Content-Disposition"]
    assert body(response) == "sc_id\r\n" + "".join(f"{i}\r\n" for i in ids)


def test_an_identifier_export_escapes_phones_and_may_start_with_a_bom():
    audience, _ = audience_with_ivan()
    client, _ = token_client("read")
    response = send(client, "GET", f"/audiences/{audience.pk}/members.csv?id_type=phone&bom=true")
    assert body(response) == "\ufeffphone\r\n'+79123456789\r\n"


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("google", f"Email,Phone\r\n{SHA_EMAIL},{SHA_PHONE_E164}\r\n"),
        ("meta", f"email,phone\r\n{SHA_EMAIL},{SHA_PHONE_DIGITS}\r\n"),
    ],
)
def test_a_platform_export_has_the_platforms_header_and_hashed_contacts(platform, expected):
    audience, _ = audience_with_ivan()
    client, _ = token_client("read")
    response = send(client, "GET", f"/audiences/{audience.pk}/members.csv?platform={platform}")
    assert response.status_code == 200
    assert f"audience-{audience.pk}-{platform}.csv" in response["Content-Disposition"]
    assert body(response) == expected


def test_contradictory_or_unknown_options_are_refused_naming_the_field():
    audience, _ = audience_with_ivan()
    client, _ = token_client("read")
    path = f"/audiences/{audience.pk}/members.csv"
    assert_error(
        send(client, "GET", f"{path}?id_type=email&platform=meta"),
        422,
        "validation_error",
        "platform",
    )
    assert_error(
        send(client, "GET", f"{path}?platform=google&bom=true"), 422, "validation_error", "bom"
    )
    assert_error(
        send(client, "GET", f"{path}?platform=tiktok"), 422, "validation_error", "platform"
    )


def test_an_unknown_audience_is_404():
    client, _ = token_client("read")
    assert_error(send(client, "GET", "/audiences/999999/members.csv"), 404, "audience_not_found")


@pytest.mark.parametrize("query", ["id_type=email", "id_type=card", "platform=google"])
def test_an_analysts_session_may_export_sc_ids_only(query):
    audience, _ = audience_with_ivan()
    client = session_client(Role.ANALYST)
    assert send(client, "GET", f"/audiences/{audience.pk}/members.csv").status_code == 200
    assert_error(
        send(client, "GET", f"/audiences/{audience.pk}/members.csv?{query}"), 403, "forbidden"
    )


def test_a_marketers_session_exports_platform_lists():
    audience, _ = audience_with_ivan()
    client = session_client(Role.MARKETER)
    response = send(client, "GET", f"/audiences/{audience.pk}/members.csv?platform=meta")
    assert body(response) == f"email,phone\r\n{SHA_EMAIL},{SHA_PHONE_DIGITS}\r\n"


def test_a_token_without_read_may_not_export():
    audience, _ = audience_with_ivan()
    client, _ = token_client("write")
    assert_error(send(client, "GET", f"/audiences/{audience.pk}/members.csv"), 403, "missing_scope")
