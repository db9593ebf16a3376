// shiplog's console: what htmx's SSE extension does not do by itself.
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
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      window.location.reload();
    }
  });
})();
