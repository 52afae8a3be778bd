/* The campaign canvas (Communications → Campaigns → New / Edit, and read-only on the campaign
   page), built on the vendored Drawflow (static/vendor/drawflow).

   The page renders what it needs as JSON: `campaign-config` (mode, API and page URLs),
   `campaign-kinds` (every trigger and action kind with its parameter schema and output ports,
   NodeKind.schema()), `campaign-graph` (the saved graph), `campaign-stats` (counts per node,
   queries.node_stats) and the names of audiences and segments (`segment-audiences`,
   `segment-segments`, the ids the segment rule builder reads too).

   Editing: drag a kind from the palette onto the canvas (or press it), connect an output port
   (right side of a step, one per port: out, positive, negative…) to another step, select a
   step to set its parameters in the side panel, delete (Delete key or the toolbar), copy and
   paste (Ctrl+C / Ctrl+V), zoom. A filter's rule is edited with the segment rule builder
   (static/segments/builder.js), run again in a dialog for each rule.

   Saving goes through the REST API — POST /api/v1/campaigns or PATCH /api/v1/campaigns/<id>,
   with the session cookie and the X-CSRFToken header. The server validates everything; a 422
   names the node at fault (`error.node`), which is marked red with the message on it and in the
   side panel. Drawflow numbers its nodes; the graph's own node ids live in this file's model.
   Loaded as a static file, no inline script or style (CSP); without JavaScript the page edits
   the graph as JSON. */
(function () {
  "use strict";

  var root = document.querySelector("[data-campaign-editor]");
  if (!root || typeof window.Drawflow !== "function") return;
  // The canvas is in a .js-only part of the page, and app.js (which marks the page as having
  // JavaScript) runs after this file: mark it now, so that the canvas has its size when the
  // view is fitted to the steps below.
  document.documentElement.classList.remove("no-js");
  document.documentElement.classList.add("js");
  var canvasEl = root.querySelector(".canvas");
  var readOnly = root.getAttribute("data-mode") === "view";

  var NODE_WIDTH = 190;
  var PASTE_OFFSET = 40;
  var SPLIT_PORTS = "abcdefghij".split("");
  var NEW_AUDIENCE = "__new__";

  function readJson(id, fallback) {
    var el = document.getElementById(id);
    if (!el) return fallback;
    try { return JSON.parse(el.textContent); } catch (e) { return fallback; }
  }

  var config = readJson("campaign-config", {});
  var kinds = readJson("campaign-kinds", { triggers: [], actions: [] });
  var stats = readJson("campaign-stats", {});
  var audiences = readJson("segment-audiences", []);
  var segments = readJson("segment-segments", []);
  var KINDS = {};
  kinds.triggers.concat(kinds.actions).forEach(function (k) { KINDS[k.kind] = k; });
  var iconHref = (document.querySelector("svg.icon use") || { getAttribute: function () { return ""; } })
    .getAttribute("href").replace(/#.*$/, "");

  // --- DOM helpers (as in the segment builder) -------------------------------------------------
  function h(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === undefined || value === null || value === false) return;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else if (key === "value" || key === "checked" || key === "selected") node[key] = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(child.nodeType ? child : document.createTextNode(String(child)));
  }

  /** Replace a node's children, skipping the null ones (replaceChildren would write "null"). */
  function fill(node) {
    node.replaceChildren();
    for (var i = 1; i < arguments.length; i++) append(node, arguments[i]);
  }

  function icon(name) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "icon icon-" + name);
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var use = document.createElementNS(ns, "use");
    use.setAttribute("href", iconHref + "#" + name);
    svg.appendChild(use);
    return svg;
  }

  function clone(value) { return value === undefined ? undefined : JSON.parse(JSON.stringify(value)); }
  function missing(value) { return value === undefined || value === null || value === ""; }
  function fmt(n) { return Number(n || 0).toLocaleString("en-US"); }
  function nameOf(items, id) {
    var found = items.filter(function (i) { return i.id === id; })[0];
    return found ? found.name : "#" + id + " (not found)";
  }

  function showToast(level, text) {
    var box = document.getElementById("toasts");
    var template = document.getElementById("toast-template");
    if (!box || !template) return;
    var toast = template.content.firstElementChild.cloneNode(true);
    toast.className = "toast toast-" + level;
    toast.querySelector("p").textContent = text;
    var use = toast.querySelector("use");
    if (use) use.setAttribute("href", use.getAttribute("href").replace(/#.*$/, "#" + level));
    box.appendChild(toast);
    window.setTimeout(function () { toast.remove(); }, 6000);
  }

  // A save navigates to the campaign page; its confirmation is shown there.
  try {
    var flash = window.sessionStorage.getItem("tagbase-campaign-saved");
    if (flash) { window.sessionStorage.removeItem("tagbase-campaign-saved"); showToast("success", flash); }
  } catch (e) { /* storage disabled: no toast */ }

  // --- The canvas ------------------------------------------------------------------------------
  var editor = new window.Drawflow(canvasEl);
  editor.reroute = false;
  editor.force_first_input = true; // a connection dropped anywhere on a step goes to its input
  editor.zoom_min = 0.3;
  editor.zoom_max = 1.6;
  editor.editor_mode = readOnly ? "view" : "edit";
  editor.start();

  var model = {}; // Drawflow id -> {id, kind, params, error, errorField, stash}
  var edgeOrder = {}; // "from:port>to" (Drawflow ids) -> creation order, so a save keeps the order
  var edgeCount = 0;
  var selected = null;
  var clipboard = null;
  var editing = false; // set once the editing part below is wired up

  function nodeEl(dfId) { return canvasEl.querySelector("#node-" + dfId); }
  function dfIdOf(nodeId) {
    return Object.keys(model).filter(function (k) { return model[k].id === nodeId; })[0] || null;
  }
  function kindOf(m) { return KINDS[m.kind] || { kind: m.kind, label: m.kind, trigger: false, params: [], ports: ["out"] }; }
  function hasTrigger() {
    return Object.keys(model).some(function (k) { return kindOf(model[k]).trigger; });
  }

  /** The output ports of a step; a split has one per percentage (a, b, c…). */
  function portsOf(m) {
    if (m.kind === "split") {
      var shares = Array.isArray(m.params.percentages) ? m.params.percentages.length : 0;
      return SPLIT_PORTS.slice(0, Math.min(Math.max(shares, 2), SPLIT_PORTS.length));
    }
    return (m.ports || kindOf(m).ports).slice();
  }

  function newNodeId(kind) {
    var used = {};
    Object.keys(model).forEach(function (k) { used[model[k].id] = true; });
    for (var n = 1; ; n++) if (!used[kind + "_" + n]) return kind + "_" + n;
  }

  function initialParams(kind) {
    var params = {};
    kind.params.forEach(function (p) {
      if (!missing(p.default)) params[p.name] = p.default;
      else if (p.required && p.choices && p.choices.length) params[p.name] = p.choices[0];
    });
    if (kind.kind === "split") params.percentages = [50, 50];
    return params;
  }

  function addStep(spec, x, y) {
    var kind = KINDS[spec.kind];
    var m = {
      id: spec.id || newNodeId(spec.kind), kind: spec.kind, params: clone(spec.params) || {},
      error: "", errorField: "", ports: kind ? null : spec.ports || ["out"],
    };
    var ports = portsOf(m);
    var classes = "cnode kind-" + spec.kind + (kind && kind.trigger ? " is-trigger" : "");
    var dfId = String(editor.addNode(spec.kind, kind && kind.trigger ? 0 : 1, ports.length,
      x, y, classes, {}, ""));
    model[dfId] = m;
    refreshNode(dfId);
    return dfId;
  }

  /** Draw a step's content: kind, id, what its parameters say, its counts, its error. */
  function refreshNode(dfId) {
    var m = model[dfId];
    var el = nodeEl(dfId);
    if (!m || !el) return;
    var kind = kindOf(m);
    var s = stats[m.id];
    var countLine = null;
    if (config.campaign) {
      countLine = h("div", { class: "cnode-stats" },
        s ? fmt(s.in) + " in" + (s.stopped ? " · " + fmt(s.stopped) + " stopped" : "") : "not run yet",
        s && s.errors ? h("span", { class: "cnode-errors", title: s.last_error,
          text: " · " + fmt(s.errors) + " error" + (s.errors === 1 ? "" : "s") }) : null);
    }
    var content = el.querySelector(".drawflow_content_node");
    fill(content, 
      h("div", { class: "cnode-head" },
        h("span", { class: "cnode-type", text: kind.trigger ? "Trigger" : "Action" }),
        h("code", { class: "cnode-id", text: m.id, title: m.id })),
      h("div", { class: "cnode-title", text: kind.label }),
      h("div", { class: "cnode-summary", text: summary(m) }),
      countLine,
      h("div", { class: "cnode-error", role: "alert", text: m.error, hidden: !m.error }));
    el.classList.toggle("has-error", !!m.error);
    el.setAttribute("data-node", m.id);
    var ports = portsOf(m);
    el.querySelectorAll(".outputs .output").forEach(function (out, i) {
      var port = ports[i] || "?";
      var n = s && s.out ? s.out[port] || 0 : null;
      out.setAttribute("data-port", port);
      out.setAttribute("data-label", n === null ? port : port + " · " + fmt(n));
      out.setAttribute("title", readOnly ? port : "Output “" + port + "”: drag to the next step");
    });
    editor.updateConnectionNodes("node-" + dfId);
  }

  function summary(m) {
    var p = m.params || {};
    if (m.kind === "audience") {
      var verb = p.action === "remove" ? "Remove from" : "Add to";
      if (!missing(p.new_audience)) return verb + " new audience “" + p.new_audience + "”";
      if (!missing(p.audience)) return verb + " “" + nameOf(audiences, p.audience) + "”";
      return verb + " … (choose an audience)";
    }
    if (p.segment !== undefined && !missing(p.segment)) return "Segment “" + nameOf(segments, p.segment) + "”";
    if (m.kind === "filter") {
      if (!p.rules) return "No rule yet";
      var n = countConditions(p.rules);
      return n ? "Rule of " + n + " condition" + (n === 1 ? "" : "s") : "Empty rule (everyone)";
    }
    if (m.kind === "wait" && !missing(p.amount)) return p.amount + " " + (p.unit || "");
    var parts = [];
    kindOf(m).params.forEach(function (param) {
      var v = p[param.name];
      if (missing(v)) return;
      parts.push((param.label || param.name) + ": " + (typeof v === "object" ? JSON.stringify(v) : v));
    });
    var unset = kindOf(m).params.some(function (param) { return param.required && missing(p[param.name]); });
    return parts.join(" · ") || (unset ? "Set the parameters" : "");
  }

  function countConditions(tree) {
    if (!tree || !Array.isArray(tree.rules)) return 0;
    return tree.rules.reduce(function (n, r) { return n + (r && Array.isArray(r.rules) ? countConditions(r) : 1); }, 0);
  }

  // --- Graph in and out ------------------------------------------------------------------------
  function edgeKey(fromDf, outputClass, toDf) { return fromDf + ":" + outputClass + ">" + toDf; }

  editor.on("connectionCreated", function (c) {
    var key = edgeKey(c.output_id, c.output_class, c.input_id);
    if (!(key in edgeOrder)) edgeOrder[key] = edgeCount++;
    changed();
    if (selected === String(c.output_id) || selected === String(c.input_id)) renderPanel();
  });
  editor.on("connectionRemoved", function (c) {
    delete edgeOrder[edgeKey(c.output_id, c.output_class, c.input_id)];
    changed();
    if (selected === String(c.output_id) || selected === String(c.input_id)) renderPanel();
  });

  /** The graph as the API takes it: nodes in the order they were added, edges in the order
   * they were drawn (a saved graph comes back in its own order). */
  function exportGraph() {
    var data = editor.export().drawflow.Home.data;
    var ids = Object.keys(model).sort(function (a, b) { return Number(a) - Number(b); });
    var nodes = ids.map(function (dfId) {
      var m = model[dfId];
      return { id: m.id, kind: m.kind, params: clone(m.params),
        position: { x: Math.round(data[dfId].pos_x), y: Math.round(data[dfId].pos_y) } };
    });
    var edges = [];
    ids.forEach(function (dfId) {
      var ports = portsOf(model[dfId]);
      Object.keys(data[dfId].outputs).forEach(function (cls) {
        var port = ports[parseInt(cls.split("_")[1], 10) - 1];
        data[dfId].outputs[cls].connections.forEach(function (c) {
          if (!model[c.node]) return;
          var key = edgeKey(dfId, cls, c.node);
          edges.push({ order: key in edgeOrder ? edgeOrder[key] : Infinity,
            edge: { from: model[dfId].id, port: port, to: model[c.node].id } });
        });
      });
    });
    edges.sort(function (a, b) { return a.order - b.order; });
    return { nodes: nodes, edges: edges.map(function (e) { return e.edge; }) };
  }

  /** Graphs written by the API or the CLI often have no positions: lay them out by depth. */
  function layOut(graph) {
    var placed = graph.nodes.some(function (n) { return n.position && (n.position.x || n.position.y); });
    if (placed || graph.nodes.length < 2) return;
    var depth = {};
    var incoming = {};
    graph.edges.forEach(function (e) { incoming[e.to] = true; });
    var queue = graph.nodes.filter(function (n) { return !incoming[n.id]; }).map(function (n) { return n.id; });
    queue.forEach(function (id) { depth[id] = 0; });
    for (var guard = 0; queue.length && guard < 10000; guard++) {
      var id = queue.shift();
      graph.edges.forEach(function (e) {
        if (e.from === id && (depth[e.to] === undefined || depth[e.to] < depth[id] + 1) && depth[id] < graph.nodes.length) {
          depth[e.to] = depth[id] + 1;
          queue.push(e.to);
        }
      });
    }
    var rows = {};
    graph.nodes.forEach(function (n) {
      var d = depth[n.id] || 0;
      rows[d] = (rows[d] || 0) + 1;
      n.position = { x: 40 + d * (NODE_WIDTH + 120), y: 40 + (rows[d] - 1) * 150 };
    });
  }

  function load(graph) {
    graph = clone(graph) || {};
    graph.nodes = Array.isArray(graph.nodes) ? graph.nodes : [];
    graph.edges = Array.isArray(graph.edges) ? graph.edges : [];
    layOut(graph);
    var byId = {};
    graph.nodes.forEach(function (n) {
      var used = graph.edges.filter(function (e) { return e.from === n.id; }).map(function (e) { return e.port; });
      var spec = { id: n.id, kind: n.kind, params: n.params || {}, ports: used.length ? used : ["out"] };
      var pos = n.position || { x: 0, y: 0 };
      byId[n.id] = addStep(spec, Number(pos.x) || 0, Number(pos.y) || 0);
    });
    graph.edges.forEach(function (e) {
      var from = byId[e.from];
      var to = byId[e.to];
      if (!from || !to) return;
      var index = portsOf(model[from]).indexOf(e.port);
      if (index >= 0) editor.addConnection(from, to, "output_" + (index + 1), "input_1");
    });
  }

  // --- View: zoom, fit, reveal -----------------------------------------------------------------
  var zoomLabel = root.querySelector(".zoom-level");
  function setView(x, y, zoom) {
    editor.zoom = zoom;
    editor.zoom_last_value = zoom;
    editor.canvas_x = x;
    editor.canvas_y = y;
    editor.precanvas.style.transform = "translate(" + x + "px, " + y + "px) scale(" + zoom + ")";
    showZoom(zoom);
  }
  function showZoom(zoom) { if (zoomLabel) zoomLabel.textContent = Math.round(zoom * 100) + " %"; }
  editor.on("zoom", showZoom);

  function fit() {
    var ids = Object.keys(model);
    if (!ids.length) { setView(0, 0, 1); return; }
    var box = { left: Infinity, top: Infinity, right: -Infinity, bottom: -Infinity };
    ids.forEach(function (dfId) {
      var el = nodeEl(dfId);
      var node = editor.getNodeFromId(dfId);
      box.left = Math.min(box.left, node.pos_x);
      box.top = Math.min(box.top, node.pos_y);
      box.right = Math.max(box.right, node.pos_x + (el ? el.offsetWidth : NODE_WIDTH) + 90);
      box.bottom = Math.max(box.bottom, node.pos_y + (el ? el.offsetHeight : 100));
    });
    var margin = 24;
    var width = canvasEl.clientWidth - 2 * margin;
    var height = canvasEl.clientHeight - 2 * margin;
    var zoom = Math.min(1, width / (box.right - box.left), height / (box.bottom - box.top));
    zoom = Math.max(editor.zoom_min, Math.round(zoom * 100) / 100);
    if (readOnly) {
      // The campaign page's canvas is only as tall as its steps need (an edit canvas keeps
      // its room to add steps).
      var needed = Math.ceil((box.bottom - box.top) * zoom + 2 * margin + 16);
      if (needed < canvasEl.clientHeight) canvasEl.style.height = Math.max(needed, 160) + "px";
    }
    setView(margin - box.left * zoom, margin - box.top * zoom, zoom);
  }

  function reveal(dfId) {
    var node = editor.getNodeFromId(dfId);
    var el = nodeEl(dfId);
    if (!node || !el) return;
    var z = editor.zoom;
    var left = editor.canvas_x + node.pos_x * z;
    var top = editor.canvas_y + node.pos_y * z;
    var inside = left >= 0 && top >= 0 && left + el.offsetWidth * z <= canvasEl.clientWidth &&
      top + el.offsetHeight * z <= canvasEl.clientHeight;
    if (!inside) setView(canvasEl.clientWidth / 2 - (node.pos_x + el.offsetWidth / 2) * z, 40 - node.pos_y * z, z);
  }

  /** Where on the canvas a point of the screen is (zoom and pan included). */
  function canvasPoint(clientX, clientY) {
    var rect = editor.precanvas.getBoundingClientRect();
    return { x: (clientX - rect.left) / editor.zoom, y: (clientY - rect.top) / editor.zoom };
  }

  /** A free place in the visible part of the canvas for a step added by pressing a button. */
  function freeSpot() {
    var rect = canvasEl.getBoundingClientRect();
    var origin = canvasPoint(rect.left + 30, rect.top + 30);
    var taken = Object.keys(model).map(function (k) { return editor.getNodeFromId(k); });
    for (var i = 0; i < 60; i++) {
      var x = origin.x + (i % 3) * (NODE_WIDTH + 60);
      var y = origin.y + Math.floor(i / 3) * 150;
      var clash = taken.some(function (n) { return Math.abs(n.pos_x - x) < NODE_WIDTH && Math.abs(n.pos_y - y) < 120; });
      if (!clash) return { x: Math.round(x), y: Math.round(y) };
    }
    return { x: Math.round(origin.x), y: Math.round(origin.y) };
  }

  root.querySelectorAll("[data-tool]").forEach(function (button) {
    button.addEventListener("click", function () {
      var tool = button.getAttribute("data-tool");
      if (tool === "zoom-in") editor.zoom_in();
      else if (tool === "zoom-out") editor.zoom_out();
      else if (tool === "zoom-reset") editor.zoom_reset();
      else if (tool === "fit") fit();
      else if (tool === "copy") copy();
      else if (tool === "paste") paste();
      else if (tool === "delete") removeSelected();
    });
  });

  var status = h("p", { class: "canvas-status", "aria-live": "polite" });
  canvasEl.parentNode.appendChild(status);
  function say(text) { status.textContent = text; }

  var errorNode = root.getAttribute("data-error-node");

  load(readJson("campaign-graph", { nodes: [], edges: [] }));
  if (errorNode && dfIdOf(errorNode)) {
    var marked = model[dfIdOf(errorNode)];
    marked.error = root.getAttribute("data-error-message") || "";
    refreshNode(dfIdOf(errorNode));
  }
  fit();
  if (readOnly) return;

  // ============================== Editing (edit page only) ====================================
  var form = document.getElementById("campaign-form");
  var graphField = form && form.querySelector("[name=graph]");
  var csrf = form && form.querySelector("[name=csrfmiddlewaretoken]");
  var saveButton = document.getElementById("save-campaign");
  var panel = document.getElementById("node-panel");
  var panelBody = panel.querySelector(".node-panel-body");
  var panelTitle = document.getElementById("node-panel-title");
  var editorError = document.getElementById("editor-error");

  /** After every change: the JSON field (the page's no-JavaScript source) follows the canvas. */
  function changed() {
    if (!editing) return;
    if (graphField) graphField.value = JSON.stringify(exportGraph(), null, 1);
    updateTools();
    updatePalette();
  }
  editor.on("nodeMoved", changed);
  editor.on("nodeRemoved", function (dfId) {
    delete model[dfId];
    if (selected === String(dfId)) select(null);
    changed();
  });
  editor.on("nodeSelected", function (dfId) {
    select(String(dfId));
    canvasEl.focus({ preventScroll: true }); // Delete, Ctrl+C and Ctrl+V act on the canvas
  });
  editor.on("nodeUnselected", function () { select(null); });

  // --- Palette -----------------------------------------------------------------------------------
  var palette = root.querySelector(".palette-groups");
  function paletteGroup(title, list) {
    var headingId = "palette-" + title.toLowerCase();
    return h("div", { class: "palette-group" },
      h("h4", { id: headingId, text: title }),
      title === "Triggers" ? h("small", { class: "palette-note", hidden: true,
        text: "One trigger per campaign: delete it to choose another." }) : null,
      h("ul", { class: "palette-list", "aria-labelledby": headingId }, list.map(function (k) {
        return h("li", {}, h("button", {
          type: "button", class: "palette-item" + (k.trigger ? " is-trigger" : ""), draggable: "true",
          "data-kind": k.kind, title: "Drag onto the canvas, or press to add",
          ondragstart: function (e) {
            e.dataTransfer.setData("application/x-tagbase-kind", k.kind);
            e.dataTransfer.setData("text/plain", k.kind);
            e.dataTransfer.effectAllowed = "copy";
          },
          onclick: function () { var at = freeSpot(); place(k.kind, at.x, at.y); },
        }, k.label));
      })));
  }
  palette.replaceChildren(paletteGroup("Triggers", kinds.triggers), paletteGroup("Actions", kinds.actions));

  function updatePalette() {
    var taken = hasTrigger();
    palette.querySelector(".palette-note").hidden = !taken;
    palette.querySelectorAll(".palette-item.is-trigger").forEach(function (item) {
      item.disabled = taken;
      item.setAttribute("draggable", taken ? "false" : "true");
      item.title = taken ? "A campaign has one trigger: delete the current one to choose another"
        : "Drag onto the canvas, or press to add";
    });
  }

  function place(kindName, x, y, params) {
    var kind = KINDS[kindName];
    if (!kind) return null;
    if (kind.trigger && hasTrigger()) {
      say("A campaign has one trigger: delete the current one to choose another.");
      return null;
    }
    var dfId = addStep({ kind: kindName, params: params || initialParams(kind) }, x, y);
    select(dfId, true);
    changed();
    say(kind.label + " added as step " + model[dfId].id + ".");
    return dfId;
  }

  canvasEl.addEventListener("dragover", function (e) {
    if (Array.prototype.indexOf.call(e.dataTransfer.types, "application/x-tagbase-kind") >= 0) {
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
    }
  });
  canvasEl.addEventListener("drop", function (e) {
    var kindName = e.dataTransfer.getData("application/x-tagbase-kind");
    if (!kindName) return;
    e.preventDefault();
    var at = canvasPoint(e.clientX, e.clientY);
    place(kindName, Math.round(at.x - 30), Math.round(at.y - 20));
    canvasEl.focus();
  });

  // --- Selection, copy, paste, delete --------------------------------------------------------------
  function select(dfId, mark) {
    if (mark) {
      // Selected by the program (added, pasted, named by an error): mark it as Drawflow would.
      if (editor.node_selected) editor.node_selected.classList.remove("selected");
      editor.node_selected = dfId ? nodeEl(dfId) : null;
      if (editor.node_selected) editor.node_selected.classList.add("selected");
    }
    selected = dfId && model[dfId] ? dfId : null;
    renderPanel();
    updateTools();
  }

  function updateTools() {
    var tool = function (name) { return root.querySelector("[data-tool=" + name + "]"); };
    if (tool("copy")) tool("copy").disabled = !selected;
    if (tool("paste")) tool("paste").disabled = !clipboard;
    if (tool("delete")) tool("delete").disabled = !selected && !editor.connection_selected;
  }
  editor.on("connectionSelected", updateTools);
  editor.on("connectionUnselected", updateTools);

  function copy() {
    if (!selected) return;
    var m = model[selected];
    clipboard = { kind: m.kind, params: clone(m.params) };
    updateTools();
    say("Copied step " + m.id + " (" + kindOf(m).label + "). Ctrl+V pastes it.");
  }

  function paste() {
    if (!clipboard) return;
    var base = selected ? editor.getNodeFromId(selected) : null;
    var at = base ? { x: base.pos_x + PASTE_OFFSET, y: base.pos_y + PASTE_OFFSET } : freeSpot();
    place(clipboard.kind, at.x, at.y, clone(clipboard.params));
  }

  function removeSelected() {
    if (selected) {
      var id = model[selected].id;
      editor.removeNodeId("node-" + selected);
      say("Step " + id + " deleted.");
    } else if (editor.connection_selected) {
      editor.removeConnection();
    }
    updateTools();
  }

  canvasEl.addEventListener("keydown", function (e) {
    if (!(e.ctrlKey || e.metaKey) || e.altKey) return;
    var key = e.key.toLowerCase();
    if (key === "c" && selected) { e.preventDefault(); copy(); }
    else if (key === "v" && clipboard) { e.preventDefault(); paste(); }
  });

  // --- The side panel ------------------------------------------------------------------------------
  function renderPanel() {
    if (!selected) {
      panelTitle.textContent = "Step";
      fill(panelBody, 
        h("p", { class: "muted", text: Object.keys(model).length
          ? "Select a step on the canvas to set its parameters and outputs."
          : "Drag a trigger from the palette onto the canvas to start." }),
        stepPicker());
      return;
    }
    var m = model[selected];
    var kind = kindOf(m);
    panelTitle.textContent = kind.label;
    var fields = h("div", { class: "param-fields" });
    var done = {};
    var has = function (type) { return kind.params.filter(function (p) { return p.type === type; })[0]; };
    kind.params.forEach(function (p) {
      if (done[p.name]) return;
      if (p.type === "audience" && kind.params.some(function (q) { return q.name === "new_audience"; })) {
        done.new_audience = true;
        fields.appendChild(audienceField(m, p));
      } else if (p.type === "rules" && has("segment")) {
        done[has("segment").name] = true;
        fields.appendChild(ruleOrSegmentField(m, p, has("segment")));
      } else if (p.type === "rules") {
        fields.appendChild(ruleField(m, p));
      } else {
        fields.appendChild(paramField(m, p));
      }
    });
    if (!kind.params.length) fields.appendChild(h("p", { class: "muted", text: "This step has no parameters." }));
    fill(panelBody, 
      h("p", { class: "node-id" }, "Step ", h("code", { text: m.id })),
      m.error ? h("div", { class: "alert alert-error node-alert", role: "alert" }, icon("error"), h("p", { text: m.error })) : null,
      fields,
      outputsSection(m),
      h("div", { class: "panel-actions" },
        h("button", { type: "button", class: "btn-small secondary outline", onclick: copy }, "Copy"),
        h("button", { type: "button", class: "btn-small secondary outline danger", onclick: removeSelected }, icon("trash"), "Delete step")),
      stepPicker());
    if (m.error && m.errorField) markField(m.errorField, m.error);
  }

  function stepPicker() {
    var ids = Object.keys(model).sort(function (a, b) { return Number(a) - Number(b); });
    if (!ids.length) return null;
    return h("div", { class: "step-picker" },
      h("label", { for: "step-picker", text: "Go to step" }),
      h("select", {
        id: "step-picker",
        onchange: function (e) { if (e.target.value) { select(e.target.value, true); reveal(e.target.value); } },
      }, h("option", { value: "", text: "Choose a step…" }), ids.map(function (dfId) {
        return h("option", { value: dfId, selected: dfId === selected, text: model[dfId].id + " — " + kindOf(model[dfId]).label });
      })));
  }

  /** A parameter changed: store it, redraw the step, forget the step's previous error. */
  function setParam(m, name, value) {
    if (value === undefined) delete m.params[name];
    else m.params[name] = value;
    var dfId = dfIdOf(m.id);
    if (m.error) {
      m.error = "";
      m.errorField = "";
      var alert = panelBody.querySelector(".node-alert");
      if (alert) alert.remove();
      panelBody.querySelectorAll(".field-error.from-server").forEach(function (n) { n.remove(); });
      panelBody.querySelectorAll("[aria-invalid]").forEach(function (n) { n.removeAttribute("aria-invalid"); });
    }
    if (m.kind === "split" && name === "percentages") syncOutputs(dfId);
    refreshNode(dfId);
    changed();
  }

  /** A split's outputs follow its percentages (connections of a removed output go with it). */
  function syncOutputs(dfId) {
    var want = portsOf(model[dfId]).length;
    var have = Object.keys(editor.getNodeFromId(dfId).outputs).length;
    for (; have < want; have++) editor.addNodeOutput(dfId);
    for (; have > want; have--) editor.removeNodeOutput(dfId, "output_" + have);
  }

  function fieldBox(p, input, help, oneOfTwo) {
    var id = "param-" + p.name;
    return h("div", { class: "param-field", "data-param": p.name },
      h("label", { for: id }, p.label || p.name, p.required || oneOfTwo ? null : h("small", { text: " (optional)" })),
      input,
      help ? h("small", { class: "help", id: id + "-help", text: help }) : null);
  }

  function convert(p, text) {
    if (text === "") return undefined;
    var trimmed = text.trim();
    if (p.type === "int") return /^-?\d+$/.test(trimmed) ? parseInt(trimmed, 10) : text;
    if (p.type === "segment" || p.type === "audience") return Number(text);
    if (p.type === "int_list") {
      var parts = trimmed.split(/[\s,;]+/).filter(Boolean);
      return parts.length && parts.every(function (x) { return /^-?\d+$/.test(x); })
        ? parts.map(function (x) { return parseInt(x, 10); }) : text;
    }
    return text;
  }

  function paramField(m, p) {
    var id = "param-" + p.name;
    var value = m.params[p.name];
    var set = function (e) { setParam(m, p.name, convert(p, e.target.value)); };
    var help = "";
    var input;
    if (p.choices) {
      input = h("select", { id: id, onchange: set },
        p.required ? null : h("option", { value: "", text: "—" }),
        p.choices.map(function (c) { return h("option", { value: c, text: choiceLabel(c), selected: c === value }); }));
    } else if (p.type === "int") {
      input = h("input", { id: id, type: "number", step: 1, min: p.min, max: p.max, value: missing(value) ? "" : String(value), oninput: set });
      if (p.min !== undefined || p.max !== undefined) {
        help = p.min !== undefined && p.max !== undefined ? "From " + fmt(p.min) + " to " + fmt(p.max) + "."
          : p.min !== undefined ? "At least " + fmt(p.min) + "." : "At most " + fmt(p.max) + ".";
      }
    } else if (p.type === "decimal") {
      input = h("input", { id: id, type: "text", inputmode: "decimal", autocomplete: "off", placeholder: "0.00", value: missing(value) ? "" : String(value), oninput: set });
    } else if (p.type === "email") {
      input = h("input", { id: id, type: "email", autocomplete: "off", value: value || "", oninput: set });
    } else if (p.type === "time") {
      input = h("input", { id: id, type: "time", value: value || "", oninput: set });
      help = "In the site’s time zone (" + config.timeZone + ").";
    } else if (p.type === "datetime") {
      input = h("input", { id: id, type: "datetime-local", value: typeof value === "string" ? value.slice(0, 16) : "", oninput: set });
      help = "In the site’s time zone (" + config.timeZone + ")" +
        (typeof value === "string" && /[+-]\d\d:\d\d$|Z$/.test(value) ? "; saved as " + value : "") + ".";
    } else if (p.type === "int_list") {
      input = h("input", { id: id, type: "text", inputmode: "numeric", autocomplete: "off", placeholder: "50, 50",
        value: Array.isArray(value) ? value.join(", ") : value || "", oninput: set });
      if (m.kind === "split") help = "One whole number per variant (a, b, c…), adding up to 100.";
    } else if (p.type === "object") {
      return objectField(m, p);
    } else if (p.type === "segment") {
      input = pickSelect(id, segments, value, "Choose a segment…", function (v) { setParam(m, p.name, v); });
    } else if (p.name === "template") {
      input = h("textarea", { id: id, rows: 5, spellcheck: "false", value: value || "", oninput: set });
      help = "Django template: {{ customer.first_name }}, {{ customer.attributes.tier }}…";
    } else {
      input = h("input", { id: id, type: "text", autocomplete: "off", value: missing(value) ? "" : String(value), oninput: set });
    }
    return fieldBox(p, input, help);
  }

  function choiceLabel(value) {
    var text = String(value).replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function pickSelect(id, items, value, placeholder, set, extra) {
    var known = items.some(function (i) { return i.id === value; });
    return h("select", {
      id: id,
      onchange: function (e) { set(e.target.value === "" ? undefined : e.target.value === NEW_AUDIENCE ? NEW_AUDIENCE : Number(e.target.value)); },
    },
    h("option", { value: "", text: placeholder }),
    items.map(function (i) { return h("option", { value: String(i.id), text: i.name, selected: i.id === value }); }),
    !known && !missing(value) && value !== NEW_AUDIENCE ? h("option", { value: String(value), text: "#" + value + " (not found)", selected: true }) : null,
    extra || null);
  }

  function objectField(m, p) {
    var id = "param-" + p.name;
    var value = m.params[p.name];
    var error = h("small", { class: "field-error", hidden: true });
    var input = h("textarea", {
      id: id, rows: 3, spellcheck: "false", class: "json-input", placeholder: "{\"key\": \"value\"}",
      value: missing(value) ? "" : typeof value === "string" ? value : JSON.stringify(value),
      oninput: function (e) {
        var text = e.target.value.trim();
        error.hidden = true;
        input.removeAttribute("aria-invalid");
        if (!text) { setParam(m, p.name, undefined); return; }
        try {
          var parsed = JSON.parse(text);
          if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("an object {…} is needed");
          setParam(m, p.name, parsed);
        } catch (err) {
          error.textContent = "Not a JSON object: " + err.message;
          error.hidden = false;
          input.setAttribute("aria-invalid", "true");
          setParam(m, p.name, e.target.value);
        }
      },
    });
    var box = fieldBox(p, input, "A JSON object: every key must be in the event’s payload with exactly this value.");
    box.appendChild(error);
    return box;
  }

  /** The audience action: pick an audience, or "New audience…" with its name (created when the
   * campaign is saved; `new_audience` in the parameters, see services.clean_graph). */
  function audienceField(m, p) {
    var isNew = !missing(m.params.new_audience);
    var nameBox = h("div", { class: "param-field new-audience", hidden: !isNew },
      h("label", { for: "param-new_audience", text: "Name of the new audience" }),
      h("input", {
        id: "param-new_audience", type: "text", autocomplete: "off", maxlength: 200,
        value: m.params.new_audience || "",
        oninput: function (e) { setParam(m, "new_audience", e.target.value.trim() ? e.target.value : undefined); },
      }),
      h("small", { class: "help", text: "Created when the campaign is saved." }));
    var select = pickSelect("param-audience", audiences, isNew ? NEW_AUDIENCE : m.params.audience, "Choose an audience…", function (v) {
      if (v === NEW_AUDIENCE) {
        delete m.params.audience;
        nameBox.hidden = false;
        var input = nameBox.querySelector("input");
        setParam(m, "new_audience", input.value.trim() ? input.value : undefined);
        input.focus();
      } else {
        delete m.params.new_audience;
        nameBox.hidden = true;
        setParam(m, "audience", v);
      }
    }, h("option", { value: NEW_AUDIENCE, text: "New audience…", selected: isNew }));
    var box = fieldBox(p, select, "", true);
    box.appendChild(nameBox);
    return box;
  }

  /** A filter: by a rule or by a saved segment (one of the two). The rule set aside while a
   * segment is chosen comes back when the rule is chosen again. */
  function ruleOrSegmentField(m, rulesParam, segmentParam) {
    var bySegment = m.mode ? m.mode === "segment" : m.params[segmentParam.name] !== undefined;
    var name = "filter-mode-" + m.id;
    var body = bySegment
      ? fieldBox(segmentParam, pickSelect("param-" + segmentParam.name, segments, m.params[segmentParam.name], "Choose a segment…",
        function (v) { setParam(m, segmentParam.name, v); }), "", true)
      : ruleField(m, rulesParam);
    var choose = function (useSegment) {
      m.mode = useSegment ? "segment" : "rule";
      if (useSegment) {
        if (m.params[rulesParam.name] !== undefined) m.stash = m.params[rulesParam.name];
        setParam(m, rulesParam.name, undefined);
      } else {
        setParam(m, segmentParam.name, undefined);
        if (m.stash !== undefined) setParam(m, rulesParam.name, m.stash);
      }
      renderPanel();
    };
    return h("div", { class: "rule-or-segment" },
      h("fieldset", { class: "segmented mode-toggle" },
        h("legend", { text: "Filter by" }),
        h("label", {}, h("input", { type: "radio", name: name, value: "rule", checked: !bySegment, onchange: function () { choose(false); } }), "a rule"),
        h("label", {}, h("input", { type: "radio", name: name, value: "segment", checked: bySegment, onchange: function () { choose(true); } }), "a saved segment")),
      body);
  }

  /** A rule: its sentence and count now (the segment count view), and a button that opens the
   * segment rule builder in a dialog. */
  function ruleField(m, p) {
    var tree = m.params[p.name];
    var sentence = h("p", { class: "rule-summary", id: "param-" + p.name + "-summary" },
      tree ? "…" : "No rule yet.");
    var button = h("button", {
      type: "button", class: "btn-small secondary", id: "param-" + p.name,
      "aria-describedby": "param-" + p.name + "-summary",
      onclick: function () { openRuleDialog(m, p); },
    }, icon("edit"), tree ? "Edit rule…" : "Set the rule…");
    if (tree) describeRule(tree, sentence);
    return h("div", { class: "param-field", "data-param": p.name },
      h("span", { class: "param-label", text: p.label || p.name }), sentence, button);
  }

  function describeRule(tree, target) {
    var body = new URLSearchParams();
    body.set("rules", JSON.stringify(tree));
    fetch(config.countUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrf ? csrf.value : "", Accept: "application/json" },
    }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (data) {
      if (data.error) { target.textContent = "The rule is not valid: " + data.error.message; return; }
      var text = data.summary ? data.summary.charAt(0).toUpperCase() + data.summary.slice(1) : "Every customer (no condition).";
      target.textContent = text + " — " + data.count_text + " customer" + (data.count === 1 ? "" : "s") + " now.";
    }).catch(function () { target.textContent = "Rule of " + countConditions(tree) + " condition(s)."; });
  }

  function openRuleDialog(m, p) {
    var dialog = document.getElementById("rule-dialog");
    if (!dialog) return;
    var mount = dialog.querySelector(".rule-mount");
    var source = h("textarea", { id: "rule-source", name: "rules", rows: 8, class: "rules-json", spellcheck: "false",
      hidden: true, "aria-label": "Rule (JSON)" });
    source.value = JSON.stringify(m.params[p.name] || { op: "and", negate: false, rules: [] });
    var host = h("div", { class: "rule-builder", "data-segment-builder": "", "data-rules-field": "rule-source",
      "data-count-url": config.countUrl, "data-segment-id": "" });
    mount.replaceChildren(host, source);
    ["live-count", "live-state", "live-summary"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) el.textContent = "";
    });
    document.getElementById("rule-dialog-title").textContent = "Rule of step " + m.id;
    dialog.returnValue = "";
    dialog.showModal();
    // The segment builder starts on the first [data-segment-builder] when its script runs: it
    // runs again for every rule (a new script element executes again, from the cache).
    var script = document.createElement("script");
    script.src = root.getAttribute("data-builder-src");
    script.onload = function () { script.remove(); };
    script.onerror = function () {
      script.remove();
      source.hidden = false; // no builder: the rule is edited as JSON
    };
    document.body.appendChild(script);
    dialog.addEventListener("close", function onClose() {
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue === "apply") {
        try {
          setParam(m, p.name, JSON.parse(source.value));
        } catch (e) {
          setParam(m, p.name, source.value); // the server names what is wrong
        }
        renderPanel();
      }
      mount.replaceChildren();
      var back = document.getElementById("param-" + p.name);
      if (back) back.focus();
    });
  }

  /** Each output port with the steps it leads to, and a way to connect one by keyboard. */
  function outputsSection(m) {
    var dfId = dfIdOf(m.id);
    var node = editor.getNodeFromId(dfId);
    var ports = portsOf(m);
    if (!ports.length) return null;
    var others = Object.keys(model).filter(function (k) { return k !== dfId && !kindOf(model[k]).trigger; });
    return h("section", { class: "outputs-section", "aria-labelledby": "outputs-title" },
      h("h4", { id: "outputs-title", text: "Outputs" }),
      h("ul", { class: "port-list" }, ports.map(function (port, i) {
        var cls = "output_" + (i + 1);
        var links = (node.outputs[cls] || { connections: [] }).connections.filter(function (c) { return model[c.node]; });
        var linked = links.map(function (c) { return c.node; });
        return h("li", { class: "port-item", "data-port": port },
          h("span", { class: "port-name", text: port }),
          links.length ? h("ul", { class: "port-targets" }, links.map(function (c) {
            return h("li", {},
              "→ ", h("code", { text: model[c.node].id }), " ", kindOf(model[c.node]).label,
              h("button", {
                type: "button", class: "btn-link danger", "aria-label": "Disconnect " + port + " from " + model[c.node].id,
                onclick: function () { editor.removeSingleConnection(dfId, c.node, cls, "input_1"); },
              }, icon("close")));
          })) : h("small", { class: "muted", text: " ends the chain" }),
          others.length ? h("select", {
            class: "connect-to", "aria-label": "Connect output " + port + " to",
            onchange: function (e) { if (e.target.value) editor.addConnection(dfId, e.target.value, cls, "input_1"); },
          }, h("option", { value: "", text: "Connect to…" }), others.filter(function (k) { return linked.indexOf(k) < 0; }).map(function (k) {
            return h("option", { value: k, text: model[k].id + " — " + kindOf(model[k]).label });
          })) : null);
      })));
  }

  function markField(field, message) {
    var input = panelBody.querySelector("#param-" + field);
    if (!input) return;
    input.setAttribute("aria-invalid", "true");
    var box = input.closest(".param-field") || input.parentNode;
    var note = h("small", { class: "field-error from-server", id: "param-" + field + "-error", text: message });
    box.appendChild(note);
    input.setAttribute("aria-describedby", note.id);
  }

  // --- Saving through the API ------------------------------------------------------------------
  var SETTINGS = { name: "id_name", description: "id_description", reentry_days: "id_reentry_days" };

  function clearErrors() {
    editorError.hidden = true;
    Object.keys(model).forEach(function (dfId) {
      if (model[dfId].error) { model[dfId].error = ""; model[dfId].errorField = ""; refreshNode(dfId); }
    });
    form.querySelectorAll(".field-error.from-server").forEach(function (n) { n.remove(); });
    Object.keys(SETTINGS).forEach(function (f) {
      var input = document.getElementById(SETTINGS[f]);
      if (input) input.removeAttribute("aria-invalid");
    });
  }

  /** Show an API error where it belongs: on the step it names (red, with the message, and in
   * the side panel), under the setting it names, or above the canvas. */
  function showError(error) {
    editorError.querySelector("p").textContent = error.message || "The campaign could not be saved.";
    editorError.hidden = false;
    var dfId = error.node ? dfIdOf(error.node) : null;
    if (dfId) {
      var m = model[dfId];
      var param = kindOf(m).params.filter(function (q) { return q.name === error.field; })[0];
      var detail = (error.message || "").replace(/^node '[^']*'(, [^:]+)?: /, "");
      m.error = param ? (param.label || param.name) + ": " + detail : detail;
      editorError.querySelector("p").textContent = "Step " + m.id + " (" + kindOf(m).label + "): " + m.error;
      m.errorField = error.field || "";
      refreshNode(dfId);
      select(dfId, true);
      reveal(dfId);
      return;
    }
    var input = error.field && SETTINGS[error.field] && document.getElementById(SETTINGS[error.field]);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.insertAdjacentElement("afterend", h("small", { class: "field-error from-server", text: error.message }));
      input.focus();
    } else {
      editorError.scrollIntoView({ block: "nearest" });
    }
  }

  function save() {
    clearErrors();
    var days = document.getElementById(SETTINGS.reentry_days).value.trim();
    var body = {
      name: document.getElementById(SETTINGS.name).value,
      description: document.getElementById(SETTINGS.description).value,
      reentry_days: days === "" ? null : Number(days),
      graph: exportGraph(),
    };
    var url = config.campaign ? config.updateUrl : config.createUrl;
    saveButton.disabled = true;
    saveButton.setAttribute("aria-busy", "true");
    fetch(url, {
      method: config.campaign ? "PATCH" : "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf ? csrf.value : "" },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, data: data };
      });
    }).then(function (answer) {
      if (answer.status === 200 || answer.status === 201) {
        try {
          window.sessionStorage.setItem("tagbase-campaign-saved",
            "Campaign “" + answer.data.name + "” saved (version " + answer.data.version + ").");
        } catch (e) { /* no toast then */ }
        window.location.assign(config.detailUrl.replace(/\/0\/$/, "/" + answer.data.id + "/"));
        return;
      }
      var error = answer.data && answer.data.error ? answer.data.error
        : { message: "The campaign could not be saved (HTTP " + answer.status + ")." };
      if (answer.status === 403) error = { message: "You do not have permission to change campaigns." };
      showError(error);
    }).catch(function () {
      showError({ message: "The server did not answer. Check your connection and try again." });
    }).then(function () {
      saveButton.disabled = false;
      saveButton.removeAttribute("aria-busy");
    });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    save();
  });
  // Enter in a side-panel field would submit (save) the form: it does nothing there.
  panel.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && e.target instanceof HTMLInputElement) e.preventDefault();
  });

  editing = true;
  changed();
  root.classList.add("is-ready");
  renderPanel();
})();
