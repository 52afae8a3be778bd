"""*Send message*: an e-mail, SMS or push message to each customer, from a template with the
customer's fields (``{{ customer.first_name }}``, ``customer.attributes.tier``…; Django template
language, autoescaping off — the text is not HTML).

Messages are written to the outbox in the step's transaction and delivered after it commits
(``campaigns.outbox``): e-mail through Django's mail backend, SMS and push through the gateway
of TAGBASE_CAMPAIGN_GATEWAY. Customers with the contact the channel needs go on through ``out``;
the others through ``no_contact``.
"""

from __future__ import annotations

from typing import Any

from django.template import Context, Engine, TemplateSyntaxError

from tagbase.campaigns.actions import Action, Ports, StepContext
from tagbase.campaigns.models import Channel, OutboxMessage
from tagbase.campaigns.nodes import GraphError, Param
from tagbase.customers.models import Customer
from tagbase.lib.sqlbits import chunked

FIELDS = (
    "sc_id", "external_id", "first_name", "last_name", "middle_name", "email", "phone",
    "city", "country", "gender", "birth_date", "registered_at", "attributes",
)  # fmt: skip
_ENGINE = Engine(autoescape=False)


def render(template: str, values: dict[str, Any]) -> str:
    return _ENGINE.from_string(template).render(Context({"customer": values}, autoescape=False))


def check_template(node_id: str, name: str, text: str) -> None:
    try:
        _ENGINE.from_string(text)
    except TemplateSyntaxError as exc:
        raise GraphError(f"template error: {exc}", node=node_id, field=name) from None


class SendMessage(Action):
    kind = "send_message"
    label = "Send message"
    params = (
        Param("channel", "text", choices=("email", "sms", "push"), label="Channel"),
        Param("subject", "text", required=False, label="Subject (e-mail)"),
        Param("template", "text", label="Text"),
    )
    ports = ("out", "no_contact")

    @classmethod
    def check(cls, node_id: str, params: dict[str, Any]) -> None:
        if params["channel"] == "email" and not params.get("subject"):
            raise GraphError("is required for an e-mail", node=node_id, field="subject")
        for name in ("subject", "template"):
            if params.get(name):
                check_template(node_id, name, params[name])

    @classmethod
    def execute(cls, ids: list[int], ctx: StepContext) -> Ports:
        channel = ctx.params["channel"]
        sent: set[int] = set()
        for part in chunked(ids, 2_000):
            for values in Customer.objects.filter(sc_id__in=part).values(*FIELDS):
                to = _address(channel, values)
                if not to:
                    continue
                ctx.outbox.append(
                    OutboxMessage(
                        campaign=ctx.campaign,
                        node=ctx.node,
                        customer_id=values["sc_id"],
                        channel=channel,
                        to=to,
                        subject=render(ctx.params.get("subject", ""), values)[:300],
                        body=render(ctx.params["template"], values),
                        created_at=ctx.now,
                    )
                )
                sent.add(values["sc_id"])
        return {
            "out": [i for i in ids if i in sent],
            "no_contact": [i for i in ids if i not in sent],
        }


def _address(channel: str, values: dict[str, Any]) -> str:
    if channel == Channel.EMAIL:
        return values["email"] or ""
    if channel == Channel.SMS:
        return values["phone"] or ""
    return str(values["sc_id"])  # push: the gateway knows the customer's devices
