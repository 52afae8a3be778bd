"""The campaign graph: validation with messages that name the node, and the read-only view the
engine walks.

A graph is ``{"nodes": [...], "edges": [...]}``. A node is ``{"id", "kind", "params",
"position": {"x", "y"}}``; an edge is ``{"from": node id, "port": output port, "to": node id}``.
``validate`` returns a cleaned copy or raises ``GraphError``: exactly one trigger, known kinds,
every required parameter set and of the right type, ports valid for the node's kind, no edge into
the trigger, no cycles, every node reachable from the trigger. ``check_references`` then checks
the audiences and segments the parameters name against the database.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from tagbase.audiences.models import Audience
from tagbase.campaigns.actions import ACTIONS, Action
from tagbase.campaigns.nodes import GraphError, NodeKind
from tagbase.campaigns.triggers import TRIGGERS, Trigger
from tagbase.segments.models import Segment
from tagbase.segments.rules import RuleError, to_json
from tagbase.segments.services import clean_rules

MAX_NODES = 200
MAX_COORD = 1_000_000.0  # where the editor may place a node, either way
_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
KINDS: dict[str, type[NodeKind]] = {**TRIGGERS, **ACTIONS}


def kind_of(name: str) -> type[NodeKind]:
    return KINDS[name]


def validate(raw: Any) -> dict[str, Any]:
    """The cleaned graph, or GraphError naming the node (see the module docstring)."""
    if not isinstance(raw, dict) or set(raw) - {"nodes", "edges"}:
        raise GraphError("the graph must be an object with 'nodes' and 'edges'")
    nodes_in, edges_in = raw.get("nodes", []), raw.get("edges", [])
    if not isinstance(nodes_in, list) or not isinstance(edges_in, list):
        raise GraphError("'nodes' and 'edges' must be lists")
    if len(nodes_in) > MAX_NODES:
        raise GraphError(f"a campaign has at most {MAX_NODES} nodes", code="too_many_nodes")
    nodes = [_node(n, i) for i, n in enumerate(nodes_in)]
    by_id: dict[str, dict[str, Any]] = {}
    for node in nodes:
        if node["id"] in by_id:
            raise GraphError("two nodes have this id", node=node["id"], code="duplicate_node")
        by_id[node["id"]] = node
    triggers = [n["id"] for n in nodes if KINDS[n["kind"]].is_trigger]
    if len(triggers) != 1:
        found = ", ".join(repr(t) for t in triggers) or "none"
        raise GraphError(f"a campaign has exactly one trigger (found {found})", code="one_trigger")
    edges = _edges(edges_in, by_id)
    graph = {"nodes": nodes, "edges": edges}
    view = Graph(graph)
    _check_acyclic(view)
    _check_reachable(view)
    return graph


def _node(raw: Any, index: int) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise GraphError(f"nodes[{index}] must be an object")
    node_id = raw.get("id")
    if not isinstance(node_id, str) or not _ID.match(node_id):
        raise GraphError(f"nodes[{index}]: id must be 1-64 letters, digits, '_' or '-'", field="id")
    unknown = sorted(set(raw) - {"id", "kind", "params", "position"})
    if unknown:
        raise GraphError(f"unknown key {unknown[0]!r}", node=node_id)
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise GraphError(f"unknown kind {kind!r}", node=node_id, field="kind", code="unknown_kind")
    params = KINDS[kind].clean(node_id, raw.get("params"))
    return {"id": node_id, "kind": kind, "params": params, "position": _position(node_id, raw)}


def _position(node_id: str, raw: dict[str, Any]) -> dict[str, float]:
    position = raw.get("position") or {"x": 0, "y": 0}
    try:
        x, y = position["x"], position["y"]
        if isinstance(x, bool) or isinstance(y, bool):
            raise TypeError
        fx, fy = float(x), float(y)
        if not (math.isfinite(fx) and math.isfinite(fy)) or max(abs(fx), abs(fy)) > MAX_COORD:
            raise ValueError
        return {"x": fx, "y": fy}
    except (TypeError, KeyError, ValueError, OverflowError):
        raise GraphError(
            f"position must be {{x, y}} numbers within ±{MAX_COORD:,.0f}",
            node=node_id,
            field="position",
        ) from None


def _edges(raw: list[Any], by_id: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    edges: list[dict[str, str]] = []
    seen: set[tuple[str, str, str]] = set()
    for index, edge in enumerate(raw):
        if not isinstance(edge, dict) or set(edge) - {"from", "port", "to"}:
            raise GraphError(f"edges[{index}] must be an object with 'from', 'port' and 'to'")
        source, port, target = edge.get("from"), edge.get("port", "out"), edge.get("to")
        if not isinstance(source, str) or not isinstance(target, str):
            raise GraphError(f"edges[{index}]: 'from' and 'to' must be node ids (text)")
        if source not in by_id:
            raise GraphError(f"edges[{index}] comes from an unknown node {source!r}")
        if target not in by_id:
            raise GraphError(f"edges[{index}] goes to an unknown node {target!r}", node=source)
        node = by_id[source]
        ports = KINDS[node["kind"]].output_ports(node["params"])
        if port not in ports:
            raise GraphError(
                f"{KINDS[node['kind']].label} has no output {port!r} (it has "
                + ", ".join(ports)
                + ")",
                node=source,
                field="port",
                code="invalid_port",
            )
        if KINDS[by_id[target]["kind"]].is_trigger:
            raise GraphError("nothing can lead into the trigger", node=target, code="into_trigger")
        if (source, port, target) in seen:
            continue
        seen.add((source, port, target))
        edges.append({"from": source, "port": port, "to": target})
    return edges


def _check_acyclic(view: Graph) -> None:
    state: dict[str, int] = {}  # 1 = on the path, 2 = done

    def visit(node: str) -> None:
        state[node] = 1
        for nxt in view.children(node):
            if state.get(nxt) == 1:
                raise GraphError(f"the chain loops back to node {nxt!r}", node=node, code="cycle")
            if nxt not in state:
                visit(nxt)
        state[node] = 2

    for node in view.nodes:
        if node not in state:
            visit(node)


def _check_reachable(view: Graph) -> None:
    seen = {view.trigger}
    stack = [view.trigger]
    while stack:
        for nxt in view.children(stack.pop()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    for node in view.nodes:
        if node not in seen:
            raise GraphError("is not connected to the trigger", node=node, code="unreachable")


def check_references(graph: dict[str, Any]) -> None:
    """Every audience and segment the nodes name exists; segment rules in filters are valid."""
    for node in graph["nodes"]:
        kind, params = KINDS[node["kind"]], node["params"]
        for param in kind.params:
            value = params.get(param.name)
            if value is None:
                continue
            table = {"audience": Audience.objects, "segment": Segment.objects}.get(param.type)
            if table is not None and not table.filter(pk=value).exists():
                raise GraphError(
                    f"{param.type} {value} does not exist",
                    node=node["id"],
                    field=param.name,
                    code=f"{param.type}_not_found",
                )
            if param.type == "rules":
                try:
                    params[param.name] = to_json(clean_rules(value))
                except RuleError as exc:
                    raise GraphError(exc.message, node=node["id"], field=param.name) from None


@dataclass(frozen=True)
class Graph:
    """A cleaned graph as the engine reads it."""

    data: dict[str, Any]

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        return {n["id"]: n for n in self.data["nodes"]}

    @property
    def trigger(self) -> str:
        return next(n["id"] for n in self.data["nodes"] if KINDS[n["kind"]].is_trigger)

    def trigger_kind(self) -> type[Trigger]:
        return TRIGGERS[self.nodes[self.trigger]["kind"]]

    def action(self, node: str) -> type[Action]:
        return ACTIONS[self.nodes[node]["kind"]]

    def children(self, node: str) -> list[str]:
        return [e["to"] for e in self.data["edges"] if e["from"] == node]

    def targets(self, node: str, port: str) -> list[str]:
        return [e["to"] for e in self.data["edges"] if e["from"] == node and e["port"] == port]

    def order(self) -> list[str]:
        """Nodes in topological order (a node after every node that leads to it)."""
        incoming = {n: 0 for n in self.nodes}
        for edge in self.data["edges"]:
            incoming[edge["to"]] += 1
        ready = [n for n, count in incoming.items() if count == 0]
        out: list[str] = []
        while ready:
            node = ready.pop(0)
            out.append(node)
            for nxt in self.children(node):
                incoming[nxt] -= 1
                if incoming[nxt] == 0:
                    ready.append(nxt)
        return out
