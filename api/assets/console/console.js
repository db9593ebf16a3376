// shiplog's console: what htmx's SSE extension does not do by itself (no build step;
// served as written).
//
// A page the browser leaves may be kept whole in its back/forward cache, live streams
// and all. Each such stream holds one of the six HTTP/1.1 connections a browser opens
// to a host, so after a handful of live pages the next page waits, in Chromium for
// about a minute, until a cached page is evicted. So a page closes its streams when
// it is hidden, and a page brought back from that cache loads again (its badges and
// lines would be stale, and its streams are closed).
(function () {
  "use strict";
  window.addEventListener("pagehide", function () {
    document.querySelectorAll("[sse-connect]").forEach(function (element) {
      // Where the SSE extension keeps an element's EventSource.
      var data = element["htmx-internal-data"];
      if (data && data.sseEventSource) {
        data.sseEventSource.close();
      }
    });
  });
  // A live log tail: the stream starts again from the tail the page was rendered with
  // (`logs-reset`, then the lines), so the rendered lines go first: no line missed,
  // none twice. Only the last `data-keep-lines` lines are kept, and a reader at the
  // bottom stays there.
  document.addEventListener("htmx:sseOpen", function (event) {
    var connected = event.target;
    event.detail.source.addEventListener("logs-reset", function () {
      connected.querySelectorAll("[data-live-reset]").forEach(function (element) {
        element.textContent = "";
      });
    });
  });
  var atBottom = function (element) {
    return element.scrollHeight - element.scrollTop - element.clientHeight < 24;
  };
  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var element = event.target;
    if (element.hasAttribute && element.hasAttribute("data-keep-lines")) {
      element.shiplogFollow = atBottom(element);
    }
  });
  document.addEventListener("htmx:sseMessage", function (event) {
    var element = event.target;
    if (!element.hasAttribute || !element.hasAttribute("data-keep-lines")) {
      return;
    }
    var keep = parseInt(element.getAttribute("data-keep-lines"), 10);
    while (element.children.length > keep) {
      element.removeChild(element.firstElementChild);
    }
    if (element.shiplogFollow) {
      element.scrollTop = element.scrollHeight;
    }
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      window.location.reload();
    }
  });
})();
