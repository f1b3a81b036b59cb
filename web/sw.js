// The service worker for Web Push, served at /sw.js so that its scope covers every page: shows
// each push (a notification of the viewer's feed: {title, body, url, tag}) and opens its page
// when the notification is clicked. It caches nothing.
self.addEventListener("push", (event) => {
  let m = {};
  try {
    m = event.data ? event.data.json() : {};
  } catch {
    m = {};
  }
  event.waitUntil(
    self.registration.showNotification(m.title || "livefront", {
      body: m.body || "",
      tag: m.tag,
      data: { url: m.url || "/" },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || "/", self.location.origin);
  // Only this server's pages.
  if (url.origin !== self.location.origin) return;
  event.waitUntil(
    (async () => {
      const open = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const same = open.find((w) => w.url === url.href && "focus" in w);
      return same ? same.focus() : self.clients.openWindow(url.href);
    })(),
  );
});
