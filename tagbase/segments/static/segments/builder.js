/* The segment builder (Customers → User segments → New / Edit).

   It edits the rule tree of docs/segments.md — groups (AND / OR, NOT) of conditions — and writes
   it as JSON into the form's `rules` field after every change: the server validates everything
   it receives, so this file only draws the tree and keeps the field in step. What the pickers
   offer comes from the page: the field catalogue (`segment-catalogue`, the same as
   GET /api/v1/segments/fields) and the names of audiences and segments.

   The live count posts the rule to the count view 400 ms after the last edit; an error comes
   back with its place (`rules[2].value`) and is shown under that condition. Loaded as a static
   file, no inline script or style (CSP); without JavaScript the page shows the JSON field. */
(function () {
  "use strict";

  var root = document.querySelector("[data-segment-builder]");
  if (!root) return;
  var source = document.getElementById(root.getAttribute("data-rules-field"));
  if (!source) return;
  var form = source.form;

  var MAX_DEPTH = 6;
  var DEBOUNCE_MS = 400;
  var DEFAULT_DAYS = 30;

  function readJson(id, fallback) {
    var el = document.getElementById(id);
    if (!el) return fallback;
    try { return JSON.parse(el.textContent); } catch (e) { return fallback; }
  }

  var catalogue = readJson("segment-catalogue", []);
  var audiences = readJson("segment-audiences", []);
  var segments = readJson("segment-segments", []);
  var FIELDS = {};
  catalogue.forEach(function (group) {
    group.fields.forEach(function (f) {
      f.group = group.group;
      f.ops = {};
      f.operators.forEach(function (o) { f.ops[o.id] = o; });
      FIELDS[f.id] = f;
    });
  });
  var iconHref = (document.querySelector("svg.icon use") || { getAttribute: function () { return ""; } })
    .getAttribute("href").replace(/#.*$/, "");

  var uid = 0;
  function nextId(prefix) { uid += 1; return prefix + "-" + uid; }

  // --- DOM helpers ---------------------------------------------------------------------------
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

  // --- The model -----------------------------------------------------------------------------
  function isGroup(node) {
    return node && typeof node === "object" && !("field" in node) && ("rules" in node || "op" in node);
  }

  function normalizeGroup(group) {
    var rules = Array.isArray(group.rules) ? group.rules : [];
    return {
      op: group.op === "or" ? "or" : "and",
      negate: group.negate === true,
      rules: rules.map(function (n) {
        return isGroup(n) ? normalizeGroup(n) : Object.assign({}, n && typeof n === "object" ? n : {});
      }),
    };
  }

  function parseTree(text) {
    try {
      var parsed = JSON.parse(text || "{}");
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed) && !("field" in parsed)) {
        return normalizeGroup(parsed);
      }
    } catch (e) { /* an unreadable rule starts empty; the server said why on the page */ }
    return { op: "and", negate: false, rules: [] };
  }

  var tree = parseTree(source.value);

  function arityOf(cond) {
    var f = FIELDS[cond.field];
    var o = f && f.ops[cond.operator];
    return o ? o.arity : "";
  }

  function missing(value) { return value === undefined || value === null || value === ""; }

  function serializeCondition(cond) {
    var out = { field: cond.field || "" };
    var f = FIELDS[cond.field];
    if (f) f.params.forEach(function (p) { if (!missing(cond[p])) out[p] = cond[p]; });
    out.operator = cond.operator || "";
    var arity = arityOf(cond);
    var value = cond.value;
    if (arity === "two") {
      if (Array.isArray(value) && !missing(value[0]) && !missing(value[1])) out.value = [value[0], value[1]];
    } else if (arity === "list") {
      if (Array.isArray(value) && value.length) out.value = value.slice();
    } else if (arity !== "none" && !missing(value)) {
      out.value = value;
    }
    return out;
  }

  function serialize(group) {
    return {
      op: group.op,
      negate: group.negate,
      rules: group.rules.map(function (n) { return isGroup(n) ? serialize(n) : serializeCondition(n); }),
    };
  }

  /** True when every condition has its field, operator, parameters and value filled in. */
  function complete(group) {
    return group.rules.every(function (n) {
      if (isGroup(n)) return complete(n);
      var f = FIELDS[n.field];
      if (!f || !f.ops[n.operator]) return false;
      if (f.params.some(function (p) { return missing(n[p]); })) return false;
      return arityOf(n) === "none" || "value" in serializeCondition(n);
    });
  }

  function countConditions(group) {
    return group.rules.reduce(function (sum, n) { return sum + (isGroup(n) ? countConditions(n) : 1); }, 0);
  }

  /** Pick a field: keep what still fits (operator, value, parameters), reset the rest. */
  function setField(cond, fieldId) {
    var before = FIELDS[cond.field];
    var f = FIELDS[fieldId];
    cond.field = fieldId;
    ["key", "event", "days"].forEach(function (p) {
      if (f.params.indexOf(p) < 0) delete cond[p];
      else if (p === "days" && missing(cond.days)) cond.days = DEFAULT_DAYS;
    });
    if (!before || before.type !== f.type) {
      cond.operator = f.operators[0].id;
      delete cond.value;
      if (f.type === "boolean") cond.value = true;
    } else if (!f.ops[cond.operator]) {
      cond.operator = f.operators[0].id;
      delete cond.value;
    }
  }

  function setOperator(cond, operatorId) {
    var f = FIELDS[cond.field];
    var from = arityOf(cond);
    cond.operator = operatorId;
    var to = f.ops[operatorId].arity;
    if (from === to) return;
    if (from === "one" && to === "two") cond.value = [cond.value, undefined];
    else if (from === "two" && to === "one" && Array.isArray(cond.value)) cond.value = cond.value[0];
    else if (to === "none") delete cond.value;
    else if (!(from === "one" && to === "days") && !(from === "days" && to === "one")) delete cond.value;
    if (f.type === "boolean" && missing(cond.value)) cond.value = true;
  }

  // --- Rendering -------------------------------------------------------------------------------
  var pendingFocus = null; // {node, selector} to focus after the next render
  var elementOf = new WeakMap();

  function render() {
    elementOf = new WeakMap();
    var built = renderGroup(tree, "", 1, null);
    root.replaceChildren(built);
    if (pendingFocus) {
      var host = elementOf.get(pendingFocus.node);
      var target = host && host.querySelector(pendingFocus.selector);
      if (target) target.focus();
      pendingFocus = null;
    }
  }

  /** After every edit: write the field, drop the errors of the previous rule, count again. */
  function changed(structure) {
    source.value = JSON.stringify(serialize(tree));
    if (structure) render();
    else clearErrors();
    scheduleCount();
  }

  function renderGroup(group, path, depth, parent) {
    var isRoot = parent === null;
    var radioName = nextId("op");
    var joinerText = group.op === "and" ? "and" : "or";
    var head = h("div", { class: "group-head" },
      isRoot ? h("span", { class: "group-caption", text: "Customers who match" }) : null,
      h("div", { class: "seg-toggle", role: "radiogroup", "aria-label": "Match" },
        ["and", "or"].map(function (op) {
          return h("label", { class: group.op === op ? "is-on" : "" },
            h("input", {
              type: "radio", name: radioName, value: op, checked: group.op === op,
              onchange: function () { group.op = op; changed(true); },
            }),
            op === "and" ? "All" : "Any");
        })),
      h("span", { class: "group-caption", text: "of these conditions" }),
      h("label", { class: "not-toggle" + (group.negate ? " is-on" : ""), title: "NOT: the customers who do not match this group" },
        h("input", {
          type: "checkbox", checked: group.negate,
          onchange: function (e) { group.negate = e.target.checked; changed(true); },
        }),
        "NOT"),
      h("span", { class: "grow" }),
      h("button", {
        type: "button", class: "btn-small secondary outline add-condition",
        onclick: function () {
          var cond = { field: "", operator: "" };
          group.rules.push(cond);
          pendingFocus = { node: cond, selector: ".picker-input" };
          changed(true);
        },
      }, icon("plus"), "Condition"),
      depth < MAX_DEPTH ? h("button", {
        type: "button", class: "btn-small secondary outline add-group",
        onclick: function () {
          var inner = { op: group.op === "and" ? "or" : "and", negate: false, rules: [{ field: "", operator: "" }] };
          group.rules.push(inner);
          pendingFocus = { node: inner.rules[0], selector: ".picker-input" };
          changed(true);
        },
      }, icon("plus"), "Group") : null,
      isRoot ? null : h("button", {
        type: "button", class: "btn-link danger remove-node", "aria-label": "Remove this group",
        title: "Remove this group",
        onclick: function () { removeNode(parent, group); },
      }, icon("trash")));

    var children = h("ol", { class: "rule-children", "data-joiner": joinerText });
    group.rules.forEach(function (node, index) {
      var childPath = (path ? path + "." : "") + "rules[" + index + "]";
      var item = isGroup(node)
        ? renderGroup(node, childPath, depth + 1, group)
        : renderCondition(node, childPath, group);
      children.appendChild(h("li", { class: "rule-item" }, item));
    });

    var empty = group.rules.length ? null : h("p", {
      class: "group-empty",
      text: group.negate
        ? "An empty group with NOT matches no customer. Add a condition."
        : isRoot
          ? "No conditions yet: every customer matches. Add a condition to narrow it down."
          : "An empty group matches every customer. Add a condition.",
    });
    var el = h("fieldset", {
      class: "rule-group" + (isRoot ? " is-root" : "") + (group.negate ? " is-negated" : ""),
      "data-path": path,
    }, h("legend", {
      class: "visually-hidden",
      text: (isRoot ? "Rule" : "Group") + ": " + (group.negate ? "not " : "") + (group.op === "and" ? "all" : "any") + " of these conditions",
    }), head, h("p", { class: "field-error node-error", role: "alert", hidden: true }), children, empty);
    elementOf.set(group, el);
    return el;
  }

  function removeNode(parent, node) {
    var index = parent.rules.indexOf(node);
    if (index < 0) return;
    parent.rules.splice(index, 1);
    var neighbour = parent.rules[index] || parent.rules[index - 1];
    pendingFocus = neighbour
      ? { node: neighbour, selector: isGroup(neighbour) ? ".add-condition" : ".picker-input" }
      : { node: parent, selector: ".add-condition" };
    changed(true);
  }

  function renderCondition(cond, path, parent) {
    var f = FIELDS[cond.field];
    var line = h("div", { class: "cond-line" }, renderPicker(cond));
    if (f) {
      if (f.params.indexOf("key") >= 0) {
        line.appendChild(h("input", {
          type: "text", class: "param-key", "data-part": "key", "aria-label": "Attribute key",
          placeholder: "attribute key", maxlength: 100, spellcheck: "false", autocomplete: "off",
          value: cond.key || "",
          oninput: function (e) { cond.key = e.target.value.trim(); changed(false); },
        }));
      }
      if (f.params.indexOf("event") >= 0) {
        line.appendChild(h("input", {
          type: "text", class: "param-event", "data-part": "event", "aria-label": "Event name",
          placeholder: "event name, e.g. app_login", maxlength: 100, spellcheck: "false", autocomplete: "off",
          value: cond.event || "",
          oninput: function (e) { cond.event = e.target.value.trim(); changed(false); },
        }));
      }
      if (f.params.indexOf("days") >= 0) {
        line.appendChild(h("span", { class: "cond-text", text: "in the last" }));
        line.appendChild(h("input", {
          type: "number", class: "num-input days-input", "data-part": "days", "aria-label": "Number of days",
          min: 1, max: 3650, step: 1, value: missing(cond.days) ? "" : cond.days,
          oninput: function (e) { cond.days = numberOrRaw(e.target.value); changed(false); },
        }));
        line.appendChild(h("span", { class: "cond-text", text: "days" }));
      }
      line.appendChild(h("select", {
        class: "operator", "data-part": "operator", "aria-label": "Operator",
        onchange: function (e) {
          setOperator(cond, e.target.value);
          pendingFocus = { node: cond, selector: "[data-part^=value], .operator" };
          changed(true);
        },
      }, f.operators.map(function (o) {
        return h("option", { value: o.id, selected: o.id === cond.operator, text: o.label });
      })));
      append(line, renderValue(cond, f));
    }
    line.appendChild(h("button", {
      type: "button", class: "btn-link danger remove-node", "aria-label": "Remove this condition",
      title: "Remove this condition",
      onclick: function () { removeNode(parent, cond); },
    }, icon("close")));
    var help = f && f.help ? h("small", { class: "cond-help", text: f.help }) : null;
    var el = h("div", { class: "rule-cond", "data-path": path }, line, help,
      h("p", { class: "field-error node-error", role: "alert", hidden: true }));
    elementOf.set(cond, el);
    return el;
  }

  function numberOrRaw(text) {
    if (text === "") return undefined;
    var n = Number(text);
    return isFinite(n) ? n : text;
  }

  // --- The attribute picker (an ARIA combobox that filters by field or group name) ---------------
  function fieldLabel(f) { return f ? f.group + " · " + f.label : ""; }

  function renderPicker(cond) {
    var listId = nextId("fields");
    var input = h("input", {
      type: "text", class: "picker-input", role: "combobox", "data-part": "field",
      "aria-label": "Attribute", "aria-autocomplete": "list", "aria-expanded": "false",
      "aria-controls": listId, autocomplete: "off", spellcheck: "false",
      placeholder: "Type to find an attribute…", value: fieldLabel(FIELDS[cond.field]),
    });
    var list = h("div", { class: "picker-list", id: listId, role: "listbox", "aria-label": "Attributes", hidden: true });
    var none = h("p", { class: "picker-none", text: "No attribute matches.", hidden: true });
    var options = [];
    catalogue.forEach(function (group) {
      var labelId = nextId("group");
      var box = h("div", { role: "group", "aria-labelledby": labelId, class: "picker-group" },
        h("div", { class: "picker-group-label", id: labelId, text: group.group }));
      group.fields.forEach(function (f) {
        var option = h("div", {
          role: "option", id: nextId("field"), class: "picker-option", "data-field": f.id,
          "aria-selected": f.id === cond.field ? "true" : "false",
          onmousedown: function (e) { e.preventDefault(); pick(f.id); },
        }, h("span", { text: f.label }), h("small", { text: typeLabel(f) }));
        option.searchText = (group.group + " " + f.label + " " + f.id).toLowerCase();
        options.push(option);
        box.appendChild(option);
      });
      list.appendChild(box);
    });
    list.appendChild(none);
    var active = null;

    function visible() { return options.filter(function (o) { return !o.hidden; }); }

    function setActive(option) {
      if (active) active.classList.remove("is-active");
      active = option;
      if (option) {
        option.classList.add("is-active");
        input.setAttribute("aria-activedescendant", option.id);
        option.scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    function filter(query) {
      var terms = query.toLowerCase().split(/\s+/).filter(Boolean);
      options.forEach(function (o) {
        o.hidden = !terms.every(function (t) { return o.searchText.indexOf(t) >= 0; });
      });
      list.querySelectorAll(".picker-group").forEach(function (box) {
        box.hidden = !box.querySelector(".picker-option:not([hidden])");
      });
      none.hidden = visible().length > 0;
      setActive(visible()[0] || null);
    }

    function open() {
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      setActive(null);
    }

    function pick(fieldId) {
      close();
      setField(cond, fieldId);
      pendingFocus = { node: cond, selector: FIELDS[fieldId].params.length ? "[data-part=key], [data-part=event]" : ".operator" };
      changed(true);
    }

    input.addEventListener("focus", function () { filter(""); open(); input.select(); });
    input.addEventListener("click", function () { if (list.hidden) { filter(""); open(); } });
    input.addEventListener("input", function () { filter(input.value); open(); });
    input.addEventListener("blur", function () {
      close();
      input.value = fieldLabel(FIELDS[cond.field]);
    });
    input.addEventListener("keydown", function (e) {
      var shown = visible();
      var at = active ? shown.indexOf(active) : -1;
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        if (list.hidden) { filter(""); open(); return; }
        var step = e.key === "ArrowDown" ? 1 : -1;
        setActive(shown[(at + step + shown.length) % shown.length] || null);
      } else if (e.key === "Enter") {
        e.preventDefault();
        if (!list.hidden && active) pick(active.getAttribute("data-field"));
      } else if (e.key === "Escape") {
        if (!list.hidden) { e.preventDefault(); e.stopPropagation(); }
        close();
        input.value = fieldLabel(FIELDS[cond.field]);
        input.select();
      }
    });
    return h("div", { class: "picker" }, input, list);
  }

  function typeLabel(f) {
    var names = { string: "text", number: "number", money: "amount", date: "date", boolean: "yes / no",
      choice: "choice", audience: "audience", audiences: "audiences", segment: "segment" };
    return names[f.type] || f.type;
  }

  // --- Value inputs by type and operator ---------------------------------------------------------
  function renderValue(cond, f) {
    var arity = f.ops[cond.operator] ? f.ops[cond.operator].arity : "none";
    if (arity === "none") return null;
    if (arity === "days") {
      return [
        scalarInput(cond, { type: "number", min: 0, max: 36500, step: 1, cls: "days-input" }, "value", "Number of days",
          cond.value, function (v) { cond.value = numberOrRaw(v); }),
        h("span", { class: "cond-text", text: "days" }),
      ];
    }
    if (arity === "two") {
      var pair = Array.isArray(cond.value) ? cond.value : [undefined, undefined];
      cond.value = pair;
      return [
        oneInput(cond, f, "value[0]", "From", pair[0], function (v) { pair[0] = v; }),
        h("span", { class: "cond-text", text: "and" }),
        oneInput(cond, f, "value[1]", "To", pair[1], function (v) { pair[1] = v; }),
      ];
    }
    if (arity === "list") return listInput(cond, f);
    return oneInput(cond, f, "value", "Value", cond.value, function (v) { cond.value = v; });
  }

  function scalarInput(cond, spec, part, label, value, set) {
    return h("input", {
      type: spec.type, class: spec.cls || "", "data-part": part, "aria-label": label,
      min: spec.min, max: spec.max, step: spec.step, maxlength: spec.maxlength,
      placeholder: spec.placeholder, autocomplete: "off",
      value: missing(value) ? "" : String(value),
      oninput: function (e) { set(e.target.value); changed(false); },
    });
  }

  function oneInput(cond, f, part, label, value, set) {
    switch (f.type) {
      case "string":
        return scalarInput(cond, { type: "text", cls: "text-input", maxlength: 200, placeholder: "text" }, part, label, value,
          function (v) { set(v === "" ? undefined : v); });
      case "number":
        return scalarInput(cond, {
          type: "number", cls: "num-input", step: f.whole ? 1 : "any",
          min: f.minimum === null ? undefined : f.minimum, max: f.maximum === null ? undefined : f.maximum,
        }, part, label, value, function (v) { set(numberOrRaw(v)); });
      case "money":
        return scalarInput(cond, { type: "number", cls: "num-input", step: "0.01", placeholder: "0.00" }, part, label, value,
          function (v) { set(v === "" ? undefined : v); });
      case "date":
        return scalarInput(cond, { type: "date", cls: "date-input" }, part, label, value,
          function (v) { set(v === "" ? undefined : v); });
      case "boolean":
        return selectInput(part, label, [["true", "yes"], ["false", "no"]], value === undefined ? "" : String(value), null,
          function (v) { set(v === "" ? undefined : v === "true"); });
      case "choice":
        return selectInput(part, label, f.choices.map(function (c) { return [c.value, c.label]; }), value, "Choose…",
          function (v) { set(v === "" ? undefined : v); });
      case "audience":
        return selectInput(part, label, named(audiences, value), missing(value) ? "" : String(value), "Choose an audience…",
          function (v) { set(v === "" ? undefined : Number(v)); });
      case "segment":
        return selectInput(part, label, named(segments, value), missing(value) ? "" : String(value), "Choose a segment…",
          function (v) { set(v === "" ? undefined : Number(v)); });
      default:
        return null;
    }
  }

  /** Options for the audiences or segments, plus the saved id if it is no longer there. */
  function named(items, value) {
    var options = items.map(function (i) { return [String(i.id), i.name]; });
    var wanted = Array.isArray(value) ? value : missing(value) ? [] : [value];
    wanted.forEach(function (id) {
      if (!items.some(function (i) { return i.id === id; })) options.push([String(id), "#" + id + " (not found)"]);
    });
    return options;
  }

  function selectInput(part, label, options, value, placeholder, set) {
    var select = h("select", {
      "data-part": part, "aria-label": label,
      onchange: function (e) { set(e.target.value); changed(false); },
    });
    if (placeholder !== null) select.appendChild(h("option", { value: "", text: placeholder }));
    options.forEach(function (o) {
      select.appendChild(h("option", { value: o[0], text: o[1], selected: String(value) === o[0] }));
    });
    if (placeholder === null && missing(value)) select.value = options[0][0];
    return select;
  }

  function listInput(cond, f) {
    var current = Array.isArray(cond.value) ? cond.value : [];
    if (f.type === "string") {
      return h("textarea", {
        class: "list-input", "data-part": "value", rows: 2, spellcheck: "false",
        "aria-label": "Values, one per line", placeholder: "one value per line",
        value: current.join("\n"),
        oninput: function (e) {
          cond.value = e.target.value.split(/\r?\n/).map(function (s) { return s.trim(); }).filter(Boolean);
          changed(false);
        },
      });
    }
    var options = f.type === "choice"
      ? f.choices.map(function (c) { return [c.value, c.label]; })
      : named(audiences, current);
    var box = h("fieldset", { class: "check-list" + (f.type === "audiences" ? " is-scroll" : ""), "data-part": "value" },
      h("legend", { class: "visually-hidden", text: f.type === "choice" ? "Values" : "Audiences" }));
    if (!options.length) box.appendChild(h("span", { class: "muted", text: "No audiences yet." }));
    options.forEach(function (o) {
      var value = f.type === "choice" ? o[0] : Number(o[0]);
      box.appendChild(h("label", {},
        h("input", {
          type: "checkbox", checked: current.indexOf(value) >= 0,
          onchange: function (e) {
            var chosen = Array.isArray(cond.value) ? cond.value.slice() : [];
            var at = chosen.indexOf(value);
            if (e.target.checked && at < 0) chosen.push(value);
            if (!e.target.checked && at >= 0) chosen.splice(at, 1);
            cond.value = chosen;
            changed(false);
          },
        }), o[1]));
    });
    return box;
  }

  // --- Errors next to the condition they name ------------------------------------------------------
  function clearErrors() {
    root.querySelectorAll(".node-error").forEach(function (p) { p.hidden = true; p.textContent = ""; });
    root.querySelectorAll(".has-error").forEach(function (n) { n.classList.remove("has-error"); });
    root.querySelectorAll("[aria-invalid]").forEach(function (n) { n.removeAttribute("aria-invalid"); });
  }

  /** Show a server error under the deepest node its path names (`rules[1].rules[0].value`). */
  function showError(path, message) {
    path = path || "";
    var best = null;
    root.querySelectorAll("[data-path]").forEach(function (node) {
      var p = node.getAttribute("data-path");
      var covers = p === "" || path === p || path.indexOf(p + ".") === 0 || path.indexOf(p + "[") === 0;
      if (covers && (!best || p.length > best.getAttribute("data-path").length)) best = node;
    });
    if (!best) return;
    var slot = best.querySelector(":scope > .node-error");
    var part = path.slice(best.getAttribute("data-path").length).replace(/^\./, "");
    var text = message;
    if (part === "field" && best.querySelector(".picker-input") && !best.querySelector(".operator")) {
      text = "Choose an attribute.";
    }
    slot.textContent = text;
    slot.hidden = false;
    best.classList.add("has-error");
    var input = part && best.querySelector(":scope > .cond-line [data-part='" + part + "']");
    if (!input && part.indexOf("value") === 0) input = best.querySelector(":scope > .cond-line [data-part^='value']");
    if (input) {
      input.setAttribute("aria-invalid", "true");
      slot.id = slot.id || nextId("error");
      input.setAttribute("aria-describedby", slot.id);
    }
  }

  function showErrorsIn(scope) {
    var node = scope && scope.querySelector("[data-rule-error]");
    if (node) showError(node.getAttribute("data-rule-error"), node.getAttribute("data-rule-message"));
  }

  // --- The live count ----------------------------------------------------------------------------
  var countFigure = document.getElementById("live-count");
  var countState = document.getElementById("live-state");
  var summary = document.getElementById("live-summary");
  var countUrl = root.getAttribute("data-count-url");
  var segmentId = root.getAttribute("data-segment-id");
  var csrf = form.querySelector("[name=csrfmiddlewaretoken]");
  var timer = null;
  var sequence = 0;
  var inflight = null;

  function setCount(figure, state, stale) {
    if (countFigure) {
      countFigure.textContent = figure;
      countFigure.classList.toggle("is-stale", false);
    }
    if (summary) summary.classList.toggle("is-stale", !!stale);
    if (countState) countState.textContent = state;
  }

  function scheduleCount() {
    window.clearTimeout(timer);
    if (countFigure) countFigure.classList.add("is-stale");
    timer = window.setTimeout(runCount, DEBOUNCE_MS);
  }

  function runCount() {
    if (!complete(tree)) {
      sequence += 1;
      if (inflight) inflight.abort();
      setCount("—", "Finish each condition — attribute, operator and value — to see the count.", true);
      return;
    }
    var mine = ++sequence;
    if (inflight) inflight.abort();
    inflight = typeof AbortController === "function" ? new AbortController() : null;
    var body = new URLSearchParams();
    body.set("rules", source.value);
    if (segmentId) body.set("segment", segmentId);
    if (countState) countState.textContent = "Counting…";
    if (countFigure) countFigure.classList.add("is-stale");
    fetch(countUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf ? csrf.value : "", Accept: "application/json" },
      signal: inflight ? inflight.signal : undefined,
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (data) {
      if (mine !== sequence) return;
      if (data.error) {
        showError(data.error.field, data.error.message);
        setCount("—", "Fix the highlighted condition to see the count.", true);
        return;
      }
      setCount(data.count_text, (data.count === 1 ? "customer matches" : "customers match") + " now", false);
      if (summary) summary.textContent = data.summary.charAt(0).toUpperCase() + data.summary.slice(1);
    }).catch(function (error) {
      if (mine !== sequence || (error && error.name === "AbortError")) return;
      setCount("—", "The count could not be loaded (" + error.message + "). It is tried again after the next change.", true);
    });
  }

  // --- Wiring ----------------------------------------------------------------------------------
  // Enter in a builder field would submit (save) the form: inside the builder it does nothing.
  root.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && e.target instanceof HTMLInputElement) e.preventDefault();
  });

  document.addEventListener("htmx:configRequest", function (e) {
    // *Select* sends the rule as it is now, even if the last keystroke is still being debounced.
    if (e.detail && e.detail.parameters && form.contains(e.detail.elt)) {
      source.value = JSON.stringify(serialize(tree));
      if (typeof e.detail.parameters.set === "function") e.detail.parameters.set("rules", source.value);
      else e.detail.parameters.rules = source.value;
    }
  });

  document.addEventListener("htmx:afterSwap", function (e) {
    var target = e.detail && e.detail.target;
    if (!target || target.id !== "selection") return;
    var selection = document.getElementById("selection");
    if (!selection) return;
    clearErrors();
    showErrorsIn(selection);
    selection.scrollIntoView({ behavior: "smooth", block: "start" });
  });

  form.addEventListener("submit", function () {
    source.value = JSON.stringify(serialize(tree));
  });

  root.classList.add("is-ready");
  render();
  source.value = JSON.stringify(serialize(tree));
  showErrorsIn(root.parentNode); // the server's error after Save, under its condition
  runCount();
  if (!tree.rules.length) {
    // An empty rule counts every customer; it opens with one condition to fill in, the way
    // people start (the field keeps the empty rule until that condition is touched).
    tree.rules.push({ field: "", operator: "" });
    render();
  }
})();
