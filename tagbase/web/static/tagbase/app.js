/* Tagbase UI behaviour. Loaded as a static file (no inline scripts or handlers, so a strict
   Content-Security-Policy works). Every feature here is an enhancement: without JavaScript the
   links and forms still lead to full pages that do the same thing. */
(function () {
  "use strict";

  var root = document.documentElement;
  root.classList.remove("no-js");
  root.classList.add("js");

  // --- Toasts (Django messages) -------------------------------------------------------
  function dismissToast(toast) {
    if (!toast || toast.classList.contains("is-leaving")) return;
    toast.classList.add("is-leaving");
    window.setTimeout(function () { toast.remove(); }, 220);
  }

  function initToasts(scope) {
    (scope || document).querySelectorAll(".toast:not([data-ready])").forEach(function (toast) {
      toast.setAttribute("data-ready", "");
      var delay = parseInt(toast.getAttribute("data-autodismiss") || "0", 10);
      if (delay > 0) {
        var timer = window.setTimeout(function () { dismissToast(toast); }, delay);
        // Keep a toast while the pointer or focus is on it, so it can be read.
        toast.addEventListener("mouseenter", function () { window.clearTimeout(timer); });
        toast.addEventListener("focusin", function () { window.clearTimeout(timer); });
      }
    });
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
    if (level === "error") {
      toast.setAttribute("role", "alert");
      toast.removeAttribute("data-autodismiss");
    }
    box.appendChild(toast);
    initToasts(box);
  }

  // --- Modal dialog (confirmations and small forms loaded with htmx) -----------------
  var lastOpener = null;

  function modal() { return document.getElementById("modal"); }

  function openModal() {
    var dialog = modal();
    if (!dialog) return;
    if (!dialog.open) dialog.showModal();
    var focus = dialog.querySelector("[autofocus], input:not([type=hidden]), textarea, select, button");
    if (focus) focus.focus();
  }

  function closeModal() {
    var dialog = modal();
    if (dialog && dialog.open) dialog.close();
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) return;
    var opener = target.closest("[hx-target='#modal']");
    if (opener) lastOpener = opener;
    // In the dialog a Cancel / Close link just closes it; on a full page (the same template
    // without JavaScript's dialog) the link goes where it points.
    var closer = target.closest("[data-close-modal]");
    if (closer && modal() && modal().contains(closer)) {
      event.preventDefault();
      closeModal();
    }
    var dismiss = target.closest("[data-dismiss]");
    if (dismiss) dismissToast(dismiss.closest(".toast"));
    // Clicking the backdrop (the dialog element itself, outside its article) closes it.
    if (target.id === "modal") closeModal();
    // A click outside an open user menu closes it.
    document.querySelectorAll("details.user-menu[open]").forEach(function (menu) {
      if (!menu.contains(target)) menu.removeAttribute("open");
    });
  });

  document.addEventListener("close", function (event) {
    if (event.target && event.target.id === "modal") {
      var body = event.target;
      if (body) body.replaceChildren();
      if (lastOpener && document.body.contains(lastOpener)) lastOpener.focus();
      lastOpener = null;
    }
  }, true);

  // --- Keyboard ------------------------------------------------------------------------
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var target = event.target instanceof Element ? event.target : null;
    var editRow = target && target.closest(".row-edit");
    if (editRow) {
      var cancel = editRow.querySelector("[data-cancel]");
      if (cancel) { event.preventDefault(); cancel.click(); }
      return;
    }
    document.querySelectorAll("details.user-menu[open]").forEach(function (menu) {
      menu.removeAttribute("open");
      menu.querySelector("summary").focus();
    });
  });

  // --- Navigation toggle on small screens ----------------------------------------------
  document.addEventListener("click", function (event) {
    var toggle = event.target instanceof Element && event.target.closest(".nav-toggle");
    if (!toggle) return;
    var sidebar = document.getElementById(toggle.getAttribute("aria-controls"));
    if (!sidebar) return;
    var open = sidebar.classList.toggle("is-open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });

  // --- htmx integration ----------------------------------------------------------------
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === "modal") {
      if (target.childElementCount) openModal();
      else closeModal();
    }
  });

  // Inline row editing. htmx:load fires on every element htmx inserts (an outerHTML swap
  // replaces the row, so events on the old row would never reach the document).
  var editedRowId = null;
  document.addEventListener("htmx:load", function (event) {
    var elt = event.detail && event.detail.elt;
    if (!(elt instanceof Element) || elt.tagName !== "TR" || !elt.id) return;
    if (elt.classList.contains("row-edit")) {
      editedRowId = elt.id;
      var field = elt.querySelector("input:not([type=hidden])");
      if (field) { field.focus(); field.select(); }
    } else if (elt.id === editedRowId) {
      // Back from editing (saved or cancelled): keep the keyboard where it was.
      editedRowId = null;
      var link = elt.querySelector("a");
      if (link) link.focus();
    }
  });

  // A panel that reports what just happened (the add/remove result) takes the focus, so
  // keyboard and screen-reader users land on it.
  function focusResult() {
    var panel = document.querySelector("[data-focus-on-load]");
    if (!panel) return;
    panel.removeAttribute("data-focus-on-load");
    panel.focus();
  }

  document.addEventListener("htmx:afterSettle", function () {
    initToasts(document);
    focusResult();
  });
  document.addEventListener("htmx:oobAfterSwap", function () { initToasts(document); });

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    var text = "The server could not complete the request (HTTP " + status + "). Please try again.";
    if (status === 403) text = "You do not have permission to do this.";
    if (status === 404) text = "This item no longer exists. Reload the page to see the current state.";
    showToast("error", text);
  });

  document.addEventListener("htmx:sendError", function () {
    showToast("error", "The server did not answer. Check your connection and try again.");
  });

  document.addEventListener("DOMContentLoaded", function () {
    initToasts(document);
    focusResult();
  });
})();
