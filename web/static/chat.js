// The chat page: one conversation per browser, kept across reloads; replies stream in.
"use strict";

const STORAGE_KEY = "therapistai.session";
const MEMORY_KEY = "therapistai.memory"; // the memory id: kept when a conversation is deleted
const $ = (id) => document.getElementById(id);
const state = { sessionId: null, busy: false, nextBefore: null };

function saved() {
  try { return JSON.parse(localStorage.getItem(STORAGE_KEY)) || {}; } catch { return {}; }
}

function remember(sessionId, role) {
  state.sessionId = sessionId;
  localStorage.setItem(STORAGE_KEY, JSON.stringify({ sessionId, role }));
  showSessionControls();
}

function forget() {
  state.sessionId = null;
  state.nextBefore = null;
  $("earlier").hidden = true;
  localStorage.removeItem(STORAGE_KEY);
  $("messages").replaceChildren();
  $("crisis-banner").hidden = true;
  showSessionControls();
}

function showSessionControls() {
  const started = Boolean(state.sessionId);
  $("delete").hidden = !started;
  $("empty").hidden = started && $("messages").children.length > 0;
  // A conversation keeps the role it started with.
  for (const input of document.querySelectorAll("input[name=role]")) input.disabled = started;
}

// Memory across conversations, when the service offers it: the box asks for it, the id keeps it.
function memoryId() {
  return localStorage.getItem(MEMORY_KEY);
}

function keepMemory(id) {
  if (id) localStorage.setItem(MEMORY_KEY, id);
  else localStorage.removeItem(MEMORY_KEY);
  if ($("remember")) {
    $("remember").checked = Boolean(id) || $("remember").checked;
    $("forget-me").hidden = !id;
  }
}

function withMemory(body) {
  if (!$("remember") || !$("remember").checked) return body;
  if (memoryId()) body.memory_id = memoryId();
  else body.remember = true;
  return body;
}

function role() {
  return document.querySelector("input[name=role]:checked").value;
}

function addMessage(author, text, { older = false } = {}) {
  const item = document.createElement("li");
  item.className = `message ${author}`;
  const who = document.createElement("span");
  who.className = "author";
  who.textContent = author === "user" ? "You" : "TherapistAI";
  const body = document.createElement("p");
  body.className = "text";
  body.textContent = text;
  item.append(who, body);
  if (older) return item;
  $("messages").append(item);
  $("empty").hidden = true;
  item.scrollIntoView({ block: "end" });
  return item;
}

function finishReply(item, reply) {
  item.dataset.source = reply.source;
  // Any risk the screen found, passive ideation included, keeps the resources in view.
  if (reply.source === "safety" || (reply.risk_level && reply.risk_level !== "none")) showCrisisBanner(reply.resources);
}

// The crisis lines stay above the conversation; the server sends them in the conversation's language.
function showCrisisBanner(resources) {
  if (resources && resources.length) {
    $("crisis-resources").replaceChildren(...resources.map((line) => {
      const item = document.createElement("li");
      const name = document.createElement("strong");
      name.textContent = line.name;
      item.append(name, ` ${line.how}`);
      return item;
    }));
  }
  $("crisis-banner").hidden = false;
}

function setStatus(text) {
  $("status").textContent = text;
}

async function loadHistory() {
  const { sessionId, role: savedRole } = saved();
  if (!sessionId) return showSessionControls();
  // Kept whatever this load gives: only 404 and 410 mean the conversation is gone. A 500 during a
  // database outage or a 502 during a redeploy must not cost the user their conversation.
  state.sessionId = sessionId;
  const radio = document.querySelector(`input[name=role][value="${savedRole}"]`);
  if (radio) radio.checked = true;
  showSessionControls();
  await loadPage(null);
  showSessionControls();
}

// One page of history: the newest first; "Show earlier messages" fetches the page before it.
async function loadPage(before) {
  const query = before ? `?before=${before}` : "";
  const response = await fetch(`/api/sessions/${encodeURIComponent(state.sessionId)}/messages${query}`);
  if (response.status === 404 || response.status === 410) return forget(); // deleted, or another database
  if (!response.ok) throw new Error(`The server answered ${response.status}.`);
  const body = await response.json();
  const items = [];
  for (const message of body.messages) {
    if (message.role === "assistant" && message.status === "error") continue;
    const item = addMessage(message.role, message.content, { older: true });
    if (message.role === "assistant") finishReply(item, message);
    items.push(item);
  }
  $("messages").prepend(...items);
  if (items.length) $("empty").hidden = true;
  if (!before && items.length) items[items.length - 1].scrollIntoView({ block: "end" });
  state.nextBefore = body.next_before;
  $("earlier").hidden = !state.nextBefore;
}

// Server-sent events from a POST: split the body on blank lines, parse each "data:" block.
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (block.startsWith("data: ")) yield JSON.parse(block.slice(6));
    }
  }
}

async function send(text) {
  state.busy = true;
  $("send").disabled = true;
  setStatus("");
  addMessage("user", text);
  const reply = addMessage("assistant", "");
  reply.setAttribute("aria-busy", "true");
  const body = withMemory({ message: text, stream: true, training_consent: $("consent").checked });
  if (state.sessionId) body.session_id = state.sessionId;
  else body.role = role();
  try {
    const response = await fetch("/api/chat", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!response.ok) {
      const error = (await response.json()).error || {};
      if (error.session_id) remember(error.session_id, role());
      if (["memory_forgotten", "memory_not_found"].includes(error.code)) keepMemory(null);
      throw new Error(error.message || `The server answered ${response.status}.`);
    }
    const text = reply.querySelector(".text");
    for await (const event of events(response)) {
      if (event.resources) showCrisisBanner(event.resources); // before any reply text
      if (event.retract) text.textContent = ""; // the rest of the reply was withheld: drop what it showed
      if (event.delta) text.textContent += event.delta;
      if (event.error) {
        remember(event.error.session_id, role());
        throw new Error(event.error.message);
      }
      if (event.done) {
        remember(event.session_id, role());
        if (event.memory_id) keepMemory(event.memory_id);
        text.textContent = event.reply;
        finishReply(reply, event);
      }
    }
  } catch (error) {
    reply.classList.add("failed");
    reply.querySelector(".text").textContent = "No reply this time.";
    setStatus(`${error.message} Your message was saved; you can send again.`);
  } finally {
    reply.removeAttribute("aria-busy");
    state.busy = false;
    $("send").disabled = false;
  }
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text || state.busy) return;
  $("message").value = "";
  send(text);
});

$("message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});

$("consent").addEventListener("change", async () => {
  if (!state.sessionId) return;
  const response = await fetch(`/api/sessions/${encodeURIComponent(state.sessionId)}`, {
    method: "PATCH", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ training_consent: $("consent").checked }),
  });
  setStatus(response.ok ? "Your choice about training was saved." : "Your choice could not be saved.");
});

$("delete").addEventListener("click", () => {
  $("confirm-delete").hidden = false;
  $("confirm-delete-yes").focus();
});

$("confirm-delete-no").addEventListener("click", () => {
  $("confirm-delete").hidden = true;
  $("delete").focus();
});

$("confirm-delete-yes").addEventListener("click", async () => {
  const response = await fetch(`/api/sessions/${encodeURIComponent(state.sessionId)}`, { method: "DELETE" });
  $("confirm-delete").hidden = true;
  if (response.ok || response.status === 410) {
    forget();
    setStatus("Your conversation was deleted.");
    $("message").focus();
  } else {
    setStatus("The conversation could not be deleted. Please try again.");
  }
});

$("forget-me")?.addEventListener("click", async () => {
  const response = await fetch(`/api/memories/${encodeURIComponent(memoryId())}`, { method: "DELETE" });
  if (response.ok || response.status === 410 || response.status === 404) {
    keepMemory(null);
    $("remember").checked = false;
    setStatus("Everything remembered about you was forgotten.");
  } else {
    setStatus("Your memories could not be forgotten just now. Please try again.");
  }
});

keepMemory(memoryId());

$("earlier").addEventListener("click", () => {
  loadPage(state.nextBefore).catch(() => setStatus("Earlier messages could not be loaded just now. Please try again."));
});

loadHistory().catch(() => setStatus("Your earlier messages could not be loaded just now. They are kept: reload the page to try again."));
