// Follow the creator from the watch page, and "Remind me" on a stream scheduled ahead (a
// notification comes at its scheduled time). For signed-in viewers; others are asked to pick a
// chat name first. Re-renders when the page signs in (`livefront:session`).
import { el, api, currentSession } from "/assets/common.js";

export function viewerActions(streamId, stream) {
  const box = el("span", { id: "viewer-actions", class: "buttons" });
  const render = async () => {
    const s = await api("GET", `/api/v1/streams/${encodeURIComponent(streamId)}/viewer`).catch(() => null);
    if (!s || !s.creator) return box.replaceChildren();
    const me = s.viewer;
    const hint = el("span", { class: "hint", id: "viewer-actions-status" });
    const needViewer = () => {
      if (currentSession()?.role === "viewer") return false;
      hint.textContent = "Pick a chat name first.";
      return true;
    };
    let following = !!me?.following;
    const follow = el("button", { id: "follow", type: "button", "aria-pressed": String(following) }, following ? `Following @${s.creator}` : `Follow @${s.creator}`);
    follow.addEventListener("click", async () => {
      if (needViewer()) return;
      try {
        await api(following ? "DELETE" : "PUT", `/api/v1/creators/${encodeURIComponent(s.creator)}/follow`);
        following = !following;
        follow.textContent = following ? `Following @${s.creator}` : `Follow @${s.creator}`;
        follow.setAttribute("aria-pressed", String(following));
      } catch (err) {
        hint.textContent = err.message;
      }
    });
    const parts = [follow];
    const upcoming = stream.state === "scheduled";
    if (upcoming || me?.reminder) {
      let set = !!me?.reminder;
      const label = () => (me?.reminder?.fired ? "Reminded" : set ? "Reminder set" : "Remind me");
      const remind = el("button", { id: "remind", type: "button", "aria-pressed": String(set), disabled: !!me?.reminder?.fired }, label());
      remind.addEventListener("click", async () => {
        if (needViewer()) return;
        try {
          await api(set ? "DELETE" : "PUT", `/api/v1/streams/${encodeURIComponent(streamId)}/reminder`);
          set = !set;
          remind.textContent = label();
          remind.setAttribute("aria-pressed", String(set));
        } catch (err) {
          hint.textContent = err.message;
        }
      });
      parts.push(remind);
    }
    box.replaceChildren(...parts, hint);
  };
  render();
  window.addEventListener("livefront:session", render);
  return box;
}
