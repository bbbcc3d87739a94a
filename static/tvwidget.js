// tvwidget's only script: show "busy" while a request runs, say so when the
// network fails (htmx leaves the widget untouched then), keep the live status
// from polling while the page is hidden, copy the customer link, and tell the
// host page (through embed.js) the widget's height and case events. No
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

  // Talk to the host page (docs/embed.md), only when embed.js launched the widget: the widget then carries
  // the host page's origin, which the server took from the signed credential (checked against
  // TVWIDGET_FRAME_ANCESTORS at launch). Messages go to that origin only, never "*". A plain
  // iframe carries none, and nothing is posted.
  var host = { origin: null, ticketId: null, height: -1 };

  function tellHost(message) {
    if (host.origin && window.parent !== window) {
      message.tvwidget = 1;
      window.parent.postMessage(message, host.origin);
    }
  }

  function reportHeight() {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height !== host.height) {
      host.height = height;
      tellHost({ type: "height", height: height });
    }
  }

  // Each event the server put on the widget is told once: the attribute goes when it is read.
  function announce() {
    var widget = document.getElementById("tvwidget-widget");
    if (widget && widget.dataset.tvwidgetHostOrigin) { host.origin = widget.dataset.tvwidgetHostOrigin; }
    if (widget && widget.dataset.tvwidgetTicket) { host.ticketId = widget.dataset.tvwidgetTicket; }
    var holders = document.querySelectorAll("[data-tvwidget-events]");
    for (var i = 0; i < holders.length; i++) {
      var events = JSON.parse(holders[i].getAttribute("data-tvwidget-events"));
      holders[i].removeAttribute("data-tvwidget-events");
      for (var j = 0; j < events.length; j++) {
        var detail = events[j].detail;
        if (!("ticketId" in detail)) { detail.ticketId = host.ticketId; }
        tellHost({ type: "event", event: events[j].event, detail: detail });
      }
    }
    reportHeight();
  }

  document.addEventListener("htmx:afterSettle", announce);
  function start() {
    announce();
    if (window.ResizeObserver) {
      new ResizeObserver(reportHeight).observe(document.documentElement);
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }

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
