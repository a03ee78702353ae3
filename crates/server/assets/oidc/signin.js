// vsc web sign-in: waits for the phone and continues by itself. The pages work without this
// script (a "continue" button and links); it only saves the clicks. First-party, no inline use.
"use strict";
(function () {
  function waitForPhone() {
    var wait = document.getElementById("wait");
    var form = document.getElementById("continue");
    if (!wait || !form || !wait.dataset.status) return;
    var url = wait.dataset.status + "?wait=25";
    function poll() {
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.json(); })
        .then(function (s) {
          if (s.state === "approved") {
            wait.textContent = "Approved. Continuing…";
            form.submit();
          } else if (s.state === "pending") {
            poll();
          } else {
            // Declined, expired, replaced: the page explains what happened.
            window.location.reload();
          }
        })
        .catch(function () { setTimeout(poll, 3000); });
    }
    poll();
  }
  function autoSubmit() {
    var form = document.querySelector("form[data-auto=submit]");
    if (form) form.submit();
  }
  function roleFilter() {
    var input = document.querySelector("input[data-filter]");
    if (!input) return;
    var list = document.getElementById(input.dataset.filter);
    input.addEventListener("input", function () {
      var q = input.value.toLowerCase();
      list.querySelectorAll(".role").forEach(function (row) {
        row.hidden = q !== "" && row.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    waitForPhone();
    autoSubmit();
    roleFilter();
  });
})();
