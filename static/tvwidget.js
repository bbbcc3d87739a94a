// tvwidget's only script: show "busy" while a request runs, say so when the
// network fails (htmx leaves the widget untouched then), keep the live status
// from polling while the page is hidden, and copy the customer link. No
// inline handlers: the pages' CSP forbids inline script.
(function () {
  "use strict";

  function widgetOf(element) {
    return element && element.closest ? element.closest("#tvwidget-widget") : null;
  }

  // Background requests (the status poll, the history) never make the widget
  // busy and fail quietly: the agent did not ask for them.
  function isBackground(element) {
    return Boolean(element && element.closest && element.closest("[data-tvwidget-background]"));
  }

  // The status poll's hx-trigger cannot carry a [!document.hidden] filter:
  // htmx evaluates filters with Function(), which the CSP (and allowEval:
  // false) forbids. So a poll of a hidden page is cancelled here, and the
  // status is fetched at once when the page shows again.
  document.addEventListener("htmx:confirm", function (event) {
    if (document.hidden && event.detail.elt.id === "tvwidget-status") {
      event.preventDefault();
    }
  });

  document.addEventListener("visibilitychange", function () {
    var status = document.getElementById("tvwidget-status");
    if (!document.hidden && status && status.hasAttribute("hx-get") && window.htmx) {
      window.htmx.trigger(status, "tvwidget:visible");
    }
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var widget = widgetOf(event.detail.elt);
    if (!widget || isBackground(event.detail.elt)) { return; }
    widget.dataset.tvwidgetPreviousState = widget.dataset.tvwidgetState;
    widget.dataset.tvwidgetState = "busy";
    widget.setAttribute("aria-busy", "true");
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    // Reached only when the widget was not swapped (network failure, aborted request).
    var widget = widgetOf(event.detail.elt);
    if (!widget || isBackground(event.detail.elt) || !widget.isConnected ||
        !widget.dataset.tvwidgetPreviousState) { return; }
    widget.dataset.tvwidgetState = widget.dataset.tvwidgetPreviousState;
    widget.setAttribute("aria-busy", "false");
  });

  document.addEventListener("htmx:sendError", function (event) {
    var widget = widgetOf(event.detail.elt);
    if (!widget || isBackground(event.detail.elt)) { return; }
    var alert = widget.querySelector(".tvwidget-alert--network");
    if (!alert) {
      alert = document.createElement("div");
      alert.className = "tvwidget-alert tvwidget-alert--network";
      alert.setAttribute("role", "alert");
      widget.insertBefore(alert, widget.children[1] || null);
    }
    alert.textContent = widget.dataset.tvwidgetErrorNetwork;
  });

  // Copy the customer link. Inside a cross-site frame the Clipboard API needs a
  // permission the host may not grant, so the fallback selects the link's text
  // (and tries the older copy command) for the agent to copy by hand.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest('[data-tvwidget-action="copy-link"]') : null;
    if (!button) { return; }
    var holder = button.closest("dd");
    var source = holder ? holder.querySelector('[data-tvwidget-field="customer-link"]') : null;
    if (!source) { return; }
    var text = source.getAttribute("href") || source.textContent;
    var status = button.parentNode.querySelector(".tvwidget-copy-status");

    function say(message) {
      if (status) { status.textContent = message || ""; }
    }

    function selectAndCopy() {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      var copied = false;
      try {
        copied = document.execCommand("copy");
      } catch (error) {
        copied = false;
      }
      say(copied ? button.dataset.tvwidgetCopied : button.dataset.tvwidgetCopyFailed);
    }

    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () {
        say(button.dataset.tvwidgetCopied);
      }, selectAndCopy);
    } else {
      selectAndCopy();
    }
  });
})();
