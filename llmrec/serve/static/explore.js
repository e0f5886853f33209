// The explanation explorer: plain DOM code on the documented /v1 API; nothing is loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const K = 5;

function say(text) { $("status").textContent = text; }

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  const key = sessionStorage.getItem("llmrec-key");
  if (key) headers["X-API-Key"] = key;
  const r = await fetch(path, body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
  if (r.status === 401) { $("key-box").hidden = false; throw new Error("this server needs an API key"); }
  const data = await r.json();
  if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail));
  return data;
}

function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") n.className = v; else if (k.startsWith("on")) n.addEventListener(k.slice(2), v); else n.setAttribute(k, v);
  }
  for (const k of kids) n.append(k);
  return n;
}

// Mark the names the server matched (the faithfulness metrics' normalised matching: words joined by
// any run of other characters, case-insensitive) as ranges of the raw text; DOM text nodes only.
function highlighted(text, matches) {
  const ranges = [];
  for (const [cls, names] of [["ev", matches.evidence], ["it", matches.item], ["hal", matches.hallucinated]]) {
    for (const name of names || []) {
      const words = name.toLowerCase().match(/[0-9a-z']+/g);
      if (!words) continue;
      const re = new RegExp("(^|[^0-9a-z'])(" + words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("[^0-9a-z']+") + ")(?=$|[^0-9a-z'])", "gi");
      let m;
      while ((m = re.exec(text)) !== null) {
        const start = m.index + m[1].length;
        ranges.push([start, start + m[2].length, cls]);
        re.lastIndex = start + m[2].length;
      }
    }
  }
  ranges.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const out = el("span", {});
  let at = 0;
  for (const [s, e, cls] of ranges) {
    if (s < at) continue;  // overlapping: the longer, earlier name wins
    out.append(text.slice(at, s), el("mark", { class: cls }, text.slice(s, e)));
    at = e;
  }
  out.append(text.slice(at));
  return out;
}

function evidenceLine(ev) {
  if (!ev) return el("span", {}, "no evidence (this variant reads none)");
  const parts = [];
  if (ev.titles.length) parts.push("liked before: " + ev.titles.join("; "));
  if (ev.interests.length) parts.push("interests: " + ev.interests.join(", "));
  if (ev.glosses.length) parts.push("behaviour: " + ev.glosses.join(", "));
  return el("span", {}, "Evidence — " + (parts.join(" | ") || "none") + (ev.fallback ? " (fallback: no titled history)" : ""));
}

let current = null;

async function showControl(li, user, item) {
  const c = await api("/v1/explain/counterfactual", { user_id: user, item_id: item, max_tokens: 48 });
  li.querySelector(".control")?.remove();
  li.append(el("div", { class: "control", "data-testid": "control" },
    el("strong", {}, "Counterfactual (evidence of user " + c.donor.user_id + ", item " + c.donor.item_id + "): "),
    highlighted(c.explanation, c.matches), el("br", {}), evidenceLine(c.evidence)));
}

async function explainInto(list, user, items, extra) {
  list.replaceChildren();
  for (const it of items) {
    const li = el("li", { "data-item": it.item_id });
    list.append(li);
    const e = await api("/v1/explain", { user_id: user, item_id: it.item_id, max_tokens: 48, ...extra });
    li.append(el("strong", {}, e.title), " ", el("span", { class: "muted" }, "(item " + it.item_id + ", score " + it.score.toFixed(3) + ")"),
      el("p", { class: "expl", "data-testid": "explanation" }, highlighted(e.explanation, e.matches)),
      el("div", { class: "evidence", "data-testid": "evidence" }, evidenceLine(e.evidence)));
    if (e.matches.hallucinated.length) li.append(el("p", { class: "muted" }, "Not in the evidence: " + e.matches.hallucinated.join(", ")));
    if (!extra && $("counterfactual").checked) await showControl(li, user, it.item_id);
  }
}

async function loadUser(id) {
  say("Loading user " + id + "…");
  const u = await api("/v1/users/" + encodeURIComponent(id));
  current = id;
  $("user").hidden = false;
  $("user-title").textContent = "User " + id;
  const i = u.interests;
  $("interests").replaceChildren(i.phrases.join(", ") || "none",
    el("span", { class: "muted" }, " — " + (i.status === "inherited" ? "from user " + i.representative + "'s answer, " : "") + i.answer),
    i.fallback ? el("strong", { class: "fallback" }, " (fallback: the LLM answer was not valid)") : "");
  $("tokens").replaceChildren(...u.tokens.map((t) => el("li", {}, t.position + " #" + t.code + ": " + (t.phrases.join(", ") || "no phrases"))));
  $("history").replaceChildren(...u.history.map((h) => el("li", {}, h.title + " ",
    el("span", { class: "muted" }, [h.behaviours.join("+"), h.time ? new Date(h.time * 1000).toISOString().slice(0, 10) : "", h.split].filter(Boolean).join(" · ")))));
  const recs = await api("/v1/recommend", { user_id: id, k: K });
  await explainInto($("recs"), id, recs.items);
  say("User " + id + ": " + recs.items.length + " recommendations explained.");
  $("user-title").focus();
}

$("search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const r = await api("/v1/users?q=" + encodeURIComponent($("q").value));
    $("results").replaceChildren(...r.users.map((u) => el("li", {}, el("button", { type: "button", onclick: () => loadUser(u.user_id).catch((e) => say(e.message)) },
      "user " + u.user_id), " ", el("span", { class: "muted" }, u.match === "id" ? "" : "history: " + u.match))));
    say(r.users.length + " users found.");
  } catch (e) { say(e.message); }
});

$("counterfactual").addEventListener("change", async () => {
  if (!current) return;
  try {
    for (const li of $("recs").children) {
      if ($("counterfactual").checked) await showControl(li, current, li.dataset.item);
      else li.querySelector(".control")?.remove();
    }
    say($("counterfactual").checked ? "Counterfactuals shown." : "Counterfactuals hidden.");
  } catch (e) { say(e.message); }
});

$("cold-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const items = $("cold-items").value.split(",").map((s) => s.trim()).filter(Boolean);
  try {
    const recs = await api("/v1/recommend", { user_id: "new-user", k: K, interactions: items });
    await explainInto($("cold-recs"), "new-user", recs.items, { user_interactions: items });
    say("New user: " + recs.items.length + " recommendations explained.");
  } catch (e) { say(e.message); }
});

$("key-save").addEventListener("click", () => { sessionStorage.setItem("llmrec-key", $("api-key").value); $("key-box").hidden = true; say("Key set."); });

api("/v1/models").then((m) => {
  $("model").textContent = "Recommender: " + (m.recommender ? m.recommender.name : "none") + " · Explainer: " + (m.explainer ? m.explainer.name : "none");
}).catch((e) => say(e.message));
$("user-title").setAttribute("tabindex", "-1");
