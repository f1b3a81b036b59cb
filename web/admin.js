// /admin: the reports queue and takedowns, signed in with the admin token.
import { el, $, api, loadSession, signIn, signOut, when } from "/assets/common.js";

const app = $("#app");

function signInForm(note) {
  const token = el("input", { id: "token", type: "password", autocomplete: "off", required: true, "aria-label": "Admin token" });
  const status = el("p", { class: "hint" }, note || "");
  const form = el("form", { id: "signin", class: "card-form" }, el("h1", {}, "Admin"), el("label", {}, "Admin token ", token), el("button", { type: "submit" }, "Sign in"), status);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const s = await signIn(token.value.trim());
      if (s.role !== "admin") {
        await signOut();
        throw new Error("That is not the admin token.");
      }
      render();
    } catch (err) {
      status.textContent = err.message;
    }
  });
  app.replaceChildren(form);
}

async function render() {
  const s = await loadSession();
  if (!s || s.role !== "admin") return signInForm();
  const { reports } = await api("GET", "/api/v1/admin/reports?limit=50");
  const list = el("ul", { id: "reports", class: "list" });
  for (const r of reports) {
    const target = r.target.stream_id ? `stream ${r.target.stream_id}` : `chat message ${r.target.chat_message_id}`;
    const li = el("li", { class: "report" }, el("strong", {}, target), ` · ${r.target_reports} report(s) · by @${r.reporter} · ${when(r.created_at)}`, el("p", { class: "reason" }, r.reason));
    if (r.target.stream_id) {
      const reason = el("input", { "aria-label": "Takedown reason", placeholder: "reason", required: true });
      const policy = el("input", { "aria-label": "Policy", placeholder: "policy", required: true });
      const status = el("span", { class: "hint" });
      const form = el("form", { class: "inline" }, el("a", { href: `/watch/${encodeURIComponent(r.target.stream_id)}` }, "Watch"), reason, policy, el("button", { type: "submit", class: "danger" }, "Take down"), status);
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        try {
          const t = await api("POST", `/api/v1/admin/streams/${encodeURIComponent(r.target.stream_id)}/takedown`, { reason: reason.value, policy: policy.value });
          status.textContent = `Taken down; the creator has ${t.active_strikes} strike(s).`;
        } catch (err) {
          status.textContent = err.message;
        }
      });
      li.append(form);
    }
    list.append(li);
  }
  app.replaceChildren(
    el("div", { class: "studio-head" }, el("h1", {}, "Reports"), el("button", { type: "button", onclick: async () => { await signOut(); signInForm("Signed out."); } }, "Sign out")),
    reports.length ? list : el("p", { class: "empty" }, "No reports."),
  );
}

render().catch((err) => app.replaceChildren(el("p", { class: "error" }, err.message)));
