"""Delivering the messages campaign steps wrote to the outbox.

A step writes ``OutboxMessage`` rows in its own transaction; ``deliver`` runs after it commits
(and on every tick, for anything left). Each message is claimed with a conditional UPDATE
``pending → sending`` that exactly one process wins, then sent and marked ``sent`` or ``failed``.
A process that dies after claiming leaves the message ``sending``: it is never sent twice.

E-mail goes through Django's mail backend (``EMAIL_*`` settings); SMS and push through the
gateway class named by TAGBASE_CAMPAIGN_GATEWAY, whose default only records (the outbox row is
the record).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone
from django.utils.module_loading import import_string

from tagbase.campaigns.models import Channel, OutboxMessage, OutboxStatus

log = logging.getLogger("tagbase.campaigns")


class Gateway:
    """The interface of an SMS/push gateway: ``send`` delivers or raises."""

    def send(self, message: OutboxMessage) -> None:
        raise NotImplementedError


class OutboxGateway(Gateway):
    """The default: delivers nothing; the outbox row, marked sent, is the record."""

    def send(self, message: OutboxMessage) -> None:
        log.info(
            "outbox: %s message %s recorded (no gateway configured)", message.channel, message.pk
        )


def gateway() -> Gateway:
    return import_string(settings.TAGBASE_CAMPAIGN_GATEWAY)()  # type: ignore[no-any-return]


def deliver(ids: Iterable[int] | None = None, *, limit: int = 1_000) -> int:
    """Send pending messages (these ids, or the oldest ``limit``). Returns how many were sent."""
    pending = OutboxMessage.objects.filter(status=OutboxStatus.PENDING)
    if ids is not None:
        pending = pending.filter(pk__in=list(ids))
    sent = 0
    for pk in list(pending.order_by("pk").values_list("pk", flat=True)[:limit]):
        if not OutboxMessage.objects.filter(pk=pk, status=OutboxStatus.PENDING).update(
            status=OutboxStatus.SENDING
        ):
            continue  # another process took it
        message = OutboxMessage.objects.get(pk=pk)
        try:
            _send(message)
        except Exception as exc:
            log.warning("outbox: message %s failed: %s", pk, type(exc).__name__)
            OutboxMessage.objects.filter(pk=pk).update(
                status=OutboxStatus.FAILED, error=str(exc)[:1000]
            )
            continue
        OutboxMessage.objects.filter(pk=pk).update(status=OutboxStatus.SENT, sent_at=timezone.now())
        sent += 1
    return sent


def _send(message: OutboxMessage) -> None:
    if message.channel == Channel.EMAIL:
        send_mail(message.subject, message.body, None, [message.to])
    else:
        gateway().send(message)
