// tvwidget's embed script (docs/embed.md), for the host's pages: the host writes only
//   <script src="https://tvwidget.example.com/embed/embed.js" async></script>
//   <div data-tvwidget-embed data-tvwidget-token="<launch token>"></div>
// Each such element (also ones added later) gets an iframe into which the
// launch token is POSTed, so it is never in a URL. The iframe follows the
// widget's height (capped by data-tvwidget-max-height), and the widget's case
// events are dispatched on the element as bubbling tvwidget:* DOM events.
// Messages count only from tvwidget's origin and the element's own iframe.
(function () {
  "use strict";

  var SELECTOR = "[data-tvwidget-embed]";
  var EVENTS = ["case-opened", "case-closed", "case-expired", "email-status", "token-needed"];
  var OPTIONAL = ["comment", "emailStatus", "message"];
  var SCRIPT_PATH = /\/embed\/embed\.js(?:[?#].*)?$/;

  // tvwidget's address comes from this script's own src. document.currentScript
  // is null once the script has run (and in some loaders), so look for it too.
  function ownScript() {
    if (document.currentScript && SCRIPT_PATH.test(document.currentScript.src)) {
      return document.currentScript;
    }
    var scripts = document.getElementsByTagName("script");
    for (var i = scripts.length - 1; i >= 0; i--) {
      if (scripts[i].src && SCRIPT_PATH.test(scripts[i].src)) { return scripts[i]; }
    }
    return null;
  }

  var script = ownScript();
  if (!script || window.tvwidgetEmbed) { return; }  // loaded twice: the first copy does the work
  var launchUrl = new URL("widget", script.src).href;  // .../embed/embed.js -> .../embed/widget
  var tvwidgetOrigin = new URL(launchUrl).origin;
  var mounts = [];  // {element, frame, token}
  var counter = 0;
  window.tvwidgetEmbed = { version: 1 };

  function maxHeight(element) {
    var value = parseInt(element.getAttribute("data-tvwidget-max-height"), 10);
    return value > 0 ? value : Infinity;
  }

  function mountOf(element) {
    for (var i = 0; i < mounts.length; i++) {
      if (mounts[i].element === element) { return mounts[i]; }
    }
    return null;
  }

  // A fresh frame per launch: a second POST into the same frame would leave a
  // history entry that "back" could only show as a resubmission error.
  function launch(element) {
    mounts = mounts.filter(function (mount) { return mount.element.isConnected; });
    var token = element.getAttribute("data-tvwidget-token");
    var mount = mountOf(element);
    if (!token || (mount && mount.token === token)) { return; }
    var name = "tvwidget-frame-" + (++counter) + "-" + Math.random().toString(36).slice(2);
    var frame = document.createElement("iframe");
    frame.name = name;
    frame.title = "TeamViewer";
    frame.setAttribute("allow", "clipboard-write");
    frame.style.cssText = "display:block;width:100%;border:0;height:" +
      (mount ? mount.frame.style.height : Math.min(160, maxHeight(element)) + "px");
    if (mount) {
      element.replaceChild(frame, mount.frame);
      mount.frame = frame;
      mount.token = token;
    } else {
      element.appendChild(frame);
      mount = { element: element, frame: frame, token: token };
      mounts.push(mount);
    }
    var form = document.createElement("form");
    form.method = "post";
    form.action = launchUrl;
    form.target = name;
    form.style.display = "none";
    var fields = { token: token, host_origin: window.location.origin };
    for (var key in fields) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = key;
      input.value = fields[key];
      form.appendChild(input);
    }
    element.appendChild(form);
    form.submit();
    element.removeChild(form);
  }

  function scan(root) {
    if (root.nodeType !== 1) { return; }
    if (root.matches(SELECTOR)) { launch(root); }
    var found = root.querySelectorAll(SELECTOR);
    for (var i = 0; i < found.length; i++) { launch(found[i]); }
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== tvwidgetOrigin) { return; }
    var mount = null;
    for (var i = 0; i < mounts.length; i++) {
      if (mounts[i].frame.contentWindow === event.source) { mount = mounts[i]; }
    }
    var data = event.data;
    if (!mount || !data || data.tvwidget !== 1) { return; }
    if (data.type === "height" && typeof data.height === "number" && data.height >= 0) {
      mount.frame.style.height = Math.min(Math.ceil(data.height), maxHeight(mount.element)) + "px";
    } else if (data.type === "event" && EVENTS.indexOf(data.event) >= 0 && data.detail) {
      var detail = { ticketId: null, code: null, state: null };
      for (var field in detail) {
        if (typeof data.detail[field] === "string") { detail[field] = data.detail[field]; }
      }
      for (var k = 0; k < OPTIONAL.length; k++) {
        if (typeof data.detail[OPTIONAL[k]] === "string") { detail[OPTIONAL[k]] = data.detail[OPTIONAL[k]]; }
      }
      mount.element.dispatchEvent(new CustomEvent("tvwidget:" + data.event, { bubbles: true, detail: detail }));
    }
  });

  function start() {
    scan(document.documentElement);
    new MutationObserver(function (records) {
      for (var i = 0; i < records.length; i++) {
        var record = records[i];
        if (record.type === "attributes") {
          if (record.target.matches(SELECTOR)) { launch(record.target); }
        } else {
          for (var j = 0; j < record.addedNodes.length; j++) { scan(record.addedNodes[j]); }
        }
      }
    }).observe(document.documentElement, {
      childList: true, subtree: true, attributes: true, attributeFilter: ["data-tvwidget-token", "data-tvwidget-embed"]
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
