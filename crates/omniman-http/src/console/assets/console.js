// The board's live refresh: on each event of the same-origin stream, fetch the board's columns
// again and swap them in. While the stream is not open (not available, or reconnecting), poll
// every five seconds instead, so the board stays current either way.
(function () {
  'use strict';
  var board = document.getElementById('board');
  if (!board) {
    return;
  }
  var url = board.getAttribute('data-fragment');
  var last = null;
  var source = null;
  var busy = false;
  var again = false;

  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    // Keep the keyboard focus on the same button across the swap.
    var focused = document.activeElement && board.contains(document.activeElement) ? document.activeElement.id : '';
    fetch(url, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (response) {
        if (response.redirected) {
          // Signed out meanwhile: show the sign-in page.
          window.location.assign(response.url);
          throw new Error('signed out');
        }
        if (!response.ok) {
          throw new Error('status ' + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        // Unchanged: leave the page (and whatever the operator is doing on it) alone.
        if (html === last) {
          return;
        }
        last = html;
        board.innerHTML = html;
        if (focused) {
          var target = document.getElementById(focused);
          if (target) {
            target.focus();
          }
        }
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  if (window.EventSource) {
    source = new EventSource('/console/events');
    source.onmessage = refresh;
    source.onopen = refresh;
  }
  window.setInterval(function () {
    if (!source || source.readyState !== window.EventSource.OPEN) {
      refresh();
    }
  }, 5000);
})();
