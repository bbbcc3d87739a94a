// tvwidget's only script: show "busy" while a request runs, and say so when the
// network fails (htmx leaves the widget untouched then). No inline handlers:
// the pages' CSP forbids inline script.
(function () {
  "use strict";

  function widgetOf(element) {
    return element && element.closest ? element.closest("#tvwidget-widget") : null;
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var widget = widgetOf(event.detail.elt);
    if (!widget) { return; }
    widget.dataset.tvwidgetPreviousState = widget.dataset.tvwidgetState;
    widget.dataset.tvwidgetState = "busy";
    widget.setAttribute("aria-busy", "true");
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    // Reached only when the widget was not swapped (network failure, aborted request).
    var widget = widgetOf(event.detail.elt);
    if (!widget || !widget.isConnected || !widget.dataset.tvwidgetPreviousState) { return; }
    widget.dataset.tvwidgetState = widget.dataset.tvwidgetPreviousState;
    widget.setAttribute("aria-busy", "false");
  });

  document.addEventListener("htmx:sendError", function (event) {
    var widget = widgetOf(event.detail.elt);
    if (!widget) { return; }
    var alert = widget.querySelector(".tvwidget-alert--network");
    if (!alert) {
      alert = document.createElement("div");
      alert.className = "tvwidget-alert tvwidget-alert--network";
      alert.setAttribute("role", "alert");
      widget.insertBefore(alert, widget.children[1] || null);
    }
    alert.textContent = widget.dataset.tvwidgetErrorNetwork;
  });
})();
