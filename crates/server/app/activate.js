// The landing pages of activation and unlock links (/activate, /unlock): their "… in this
// browser" link opens the web app with the page's fragment (#code=…&fp=…), which never reaches
// the server and which only a script in the browser can read. An unlock link opens the app's
// unlock screen (#unlock=1&code=…&fp=…).
"use strict";
(function () {
  const link = document.getElementById("open-app");
  if (!link || !/^#code=/.test(location.hash)) {
    return;
  }
  const unlock = link.dataset.kind === "unlock";
  link.href = "/app/#" + (unlock ? "unlock=1&" : "") + location.hash.slice(1);
})();
