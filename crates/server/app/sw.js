// The vsc app's service worker (scope /app/).
//
// * The app shell (page, script, style, core, manifest, icons) is cached under a name the server
//   fills in from the app's version and a digest of the shell, so any new shell is a new service
//   worker, which caches it and deletes the old caches once it takes over.
// * Shell requests are network-first: online, the newest shell is used (and the cache refreshed);
//   offline, the cached one opens. The API (/api/) is never cached or even touched here.
// * Web Push: a notice carries only a request id. The notification says "Request waiting" and
//   nothing about anyone or what is asked; tapping it opens (or focuses) the app, which fetches the request over
//   its authenticated channel.
"use strict";

const CACHE = "{{cache}}";
const SCOPE = new URL("./", self.location).pathname; // "/app/"
const SHELL = [
  "./",
  "app.js",
  "app.css",
  "manifest.webmanifest",
  "icon-192.png",
  "icon-512.png",
  "pkg/vsc_phone_web.js",
  "pkg/vsc_phone_web_bg.wasm",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // One request each, bypassing the HTTP cache: the shell cached is the one this worker
      // was made for.
      await cache.addAll(SHELL.map((path) => new Request(path, { cache: "reload" })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name !== CACHE && name.startsWith("vsc-app-")) {
          await caches.delete(name);
        }
      }
      await self.clients.claim();
    })(),
  );
});

/** Whether a request is for the app shell (and may be answered from the cache). */
function isShell(url) {
  return (
    url.origin === self.location.origin &&
    url.pathname.startsWith(SCOPE) &&
    !url.pathname.startsWith("/api/")
  );
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (!isShell(url)) return; // the API and everything else: straight to the network
  event.respondWith(
    (async () => {
      // The page is one entry whatever its fragment or query.
      const key = url.pathname === SCOPE || url.pathname === SCOPE + "index.html" ? "./" : request;
      let response;
      try {
        // The server marks every shell file no-cache: the browser revalidates it. (A navigation
        // request cannot be copied with options, so it goes as it is.)
        response = await fetch(request);
      } catch (offline) {
        const cached = await caches.match(key, { cacheName: CACHE, ignoreSearch: true });
        if (cached) return cached;
        throw offline;
      }
      // Only a shell file the server answered itself: not an error, not where a redirect led.
      // Caching is best effort: a full quota (or any other storage failure) is not "offline",
      // and the answer from the network is used as it is.
      if (response.ok && !response.redirected && response.type === "basic") {
        const copy = response.clone();
        event.waitUntil(
          caches
            .open(CACHE)
            .then((cache) => cache.put(key, copy))
            .catch(() => {}),
        );
      }
      return response;
    })(),
  );
});

self.addEventListener("push", (event) => {
  let requestId = "";
  try {
    requestId = String((event.data && event.data.json().request_id) || "");
  } catch (_) {
    // A notice the app cannot read still says that something is waiting.
  }
  event.waitUntil(
    // Nothing personal and nothing about the request: it can be a sign-in, a prescription
    // batch or a card operation, and the app shows which once it has fetched it.
    self.registration.showNotification("Request waiting", {
      body: "Open vsc to see it.",
      tag: "vsc-request",
      renotify: true,
      requireInteraction: true,
      icon: "icon-192.png",
      badge: "icon-192.png",
      data: { requestId },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      for (const client of windows) {
        if (new URL(client.url).pathname.startsWith(SCOPE) && "focus" in client) {
          client.postMessage({ type: "push", requestId: event.notification.data?.requestId });
          return client.focus();
        }
      }
      return self.clients.openWindow(SCOPE);
    })(),
  );
});
