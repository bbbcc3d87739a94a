// The demo helpdesk's own script (not part of tvwidget): it shows what a host
// does with the embed script's events, adding tvwidget's comment to the
// ticket's timeline when a case closes or expires, without a reload.
(function () {
  "use strict";

  function addComment(event) {
    var list = document.getElementById("demo-comments");
    if (!list || !event.detail.comment) { return; }
    var empty = list.querySelector(".demo-empty");
    if (empty) { list.removeChild(empty); }
    var article = document.createElement("article");
    article.className = "demo-comment";
    article.setAttribute("data-demo-comment", "");
    var meta = document.createElement("span");
    meta.className = "demo-comment-meta";
    meta.textContent = "tvwidget · " + new Date().toLocaleString();
    var body = document.createElement("pre");
    body.textContent = event.detail.comment;
    article.appendChild(meta);
    article.appendChild(body);
    list.appendChild(article);
  }

  document.addEventListener("tvwidget:case-closed", addComment);
  document.addEventListener("tvwidget:case-expired", addComment);
})();
