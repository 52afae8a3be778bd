"""*A/B split*: customers are divided into variants ``a``, ``b``, ``c``… by the percentages in
``percentages`` (summing to 100). The variant is a hash of the campaign, the node and the
customer: the same customer always gets the same variant, and over many customers the shares
match the percentages."""

from __future__ import annotations

import hashlib
import string
from typing import Any

from tagbase.campaigns.actions import Action, Ports, StepContext
from tagbase.campaigns.nodes import GraphError, Param

PORTS = tuple(string.ascii_lowercase[:10])
SCALE = 10_000


def bucket(salt: str, customer_id: int) -> int:
    """A stable number in [0, SCALE) for this customer."""
    digest = hashlib.blake2b(f"{salt}:{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SCALE


class Split(Action):
    kind = "split"
    label = "A/B split"
    params = (Param("percentages", "int_list", label="Percent per variant"),)
    ports = PORTS

    @classmethod
    def check(cls, node_id: str, params: dict[str, Any]) -> None:
        shares = params["percentages"]
        if not 2 <= len(shares) <= len(PORTS):
            raise GraphError(f"give 2 to {len(PORTS)} variants", node=node_id, field="percentages")
        if any(s < 0 for s in shares) or sum(shares) != 100:
            raise GraphError(
                "percentages must be 0 or more and add up to 100",
                node=node_id,
                field="percentages",
            )

    @classmethod
    def output_ports(cls, params: dict[str, Any]) -> tuple[str, ...]:
        return PORTS[: len(params.get("percentages") or ())] or PORTS

    @classmethod
    def execute(cls, ids: list[int], ctx: StepContext) -> Ports:
        bounds, total = [], 0
        for share in ctx.params["percentages"]:
            total += share * SCALE // 100
            bounds.append(total)
        out: Ports = {port: [] for port in cls.output_ports(ctx.params)}
        salt = f"{ctx.campaign.pk}:{ctx.node}"
        for customer_id in ids:
            b = bucket(salt, customer_id)
            index = next(i for i, bound in enumerate(bounds) if b < bound)
            out[PORTS[index]].append(customer_id)
        return out
