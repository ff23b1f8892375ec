// The admin dashboard: everything comes from the admin API with the token kept for this tab.
"use strict";

const TOKEN_KEY = "therapistai.admin-token";
const $ = (id) => document.getElementById(id);
let refreshTimer = null;

class Unauthorised extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options, headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}`, ...options.headers },
  });
  const body = await response.json();
  if (response.status === 401 || response.status === 403) throw new Unauthorised(body.error.message);
  if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
  return body;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function loss(value) {
  return value === null || value === undefined ? "–" : value.toFixed(4);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

function showFlags(stats) {
  const flags = [
    ["USE_LOCAL_AI", stats.use_local_ai ? "1 (the local model answers, Groq as fallback)" : "0 (Groq answers)"],
    ["ENABLE_AUTO_TRAINING", stats.auto_training.enabled ? "1 (trains on its own)" : "0 (only when started)"],
    ["AUTO_TRAIN_THRESHOLD", String(stats.auto_train_threshold)],
    ["Database", `${stats.database.engine}, ${stats.database.persistent ? "persistent" : "NOT persistent: data is lost on restart"}`],
    ["Active model", stats.active_model || "none yet"],
  ];
  facts($("flags"), flags);
}

function facts(list, items) {
  list.replaceChildren(...items.flatMap(([name, value]) => {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = name;
    dd.textContent = value;
    dd.dataset.flag = name;
    return [dt, dd];
  }));
}

function showLearning(learning) {
  const model = learning.embedding_model || `NOT LOADED: ${learning.embedding_error || "memory is off"}`;
  facts($("learning"), [
    ["Messages", String(learning.messages)],
    ["Embedded messages", String(learning.embedded_messages)],
    ["Waiting to be embedded", String(learning.backlog)],
    ["People remembered", learning.memory_enabled ? String(learning.memory_ids) : "memory is off (MEMORY_ENABLED=0)"],
    ["Near-duplicates dropped", learning.last_run_id ? `${learning.near_duplicates_dropped ?? "not checked"} in run ${learning.last_run_id}` : "no run yet"],
    ["Vectors", learning.vector_backend === "pgvector" ? "pgvector (HNSW index)" : "portable (exact search)"],
    ["Embedding model", model],
  ]);
}

function showEligible(stats) {
  const { eligible_since_last_training: eligible, auto_train_threshold: threshold } = stats;
  $("eligible").max = threshold;
  $("eligible").value = Math.min(eligible, threshold);
  const cooldown = stats.auto_training.cooldown_s ? ` A run failed recently; automatic training waits ${stats.auto_training.cooldown_s} s more.` : "";
  $("eligible-text").textContent = `${eligible} of ${threshold} replies needed for the next automatic training.${cooldown}`;
}

function runItem(run) {
  const item = document.createElement("li");
  item.className = `run ${run.status}`;
  item.dataset.runId = run.id;
  const title = document.createElement("h3");
  title.textContent = `Run ${run.id}: ${run.status} (${run.trigger})`;
  const facts = document.createElement("p");
  const eta = run.status === "running" && run.eta_s !== null ? `, about ${Math.round(run.eta_s)} s left` : "";
  facts.textContent = `Started ${when(run.started_at)}; step ${run.step} of ${run.total_steps ?? "?"}${eta}. ` +
    `Eval loss ${loss(run.candidate_loss)} against base ${loss(run.base_loss)}` +
    (run.version ? `; version ${run.version}.` : ".");
  const progress = document.createElement("progress");
  progress.max = run.total_steps || 1;
  progress.value = run.step;
  progress.setAttribute("aria-label", `Run ${run.id} progress`);
  item.append(title, progress, facts, lineChart(run.losses || [], `Training loss of run ${run.id}`));
  if (run.error) {
    const error = document.createElement("pre");
    error.className = "run-error";
    error.textContent = run.error;
    item.append(error);
  }
  return item;
}

function modelRow(version) {
  const row = document.createElement("tr");
  row.dataset.version = version.name;
  const state = version.active ? "active" : version.rejected ? "rejected by the gate" : "kept";
  const examples = version.examples ? `${version.examples.train ?? "?"} / ${version.examples.eval ?? "?"}` : "–";
  row.append(cell(version.name), cell(state), cell(loss(version.metrics.candidate_loss)),
             cell(loss(version.metrics.base_loss)), cell(examples));
  const action = document.createElement("td");
  if (!version.active) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Activate";
    button.setAttribute("aria-label", `Activate ${version.name}`);
    button.addEventListener("click", () => activate(version.name));
    action.append(button);
  }
  row.append(action);
  return row;
}

async function activate(name) {
  try {
    await api(`/api/admin/models/${encodeURIComponent(name)}/activate`, { method: "POST" });
    $("models-status").textContent = `${name} is now active. Workers pick it up within MODEL_POLL_SECONDS.`;
  } catch (error) {
    $("models-status").textContent = error.message;
  }
  refresh();
}

async function refresh() {
  clearTimeout(refreshTimer);
  try {
    const [stats, training, models, learning] = await Promise.all([
      api("/api/stats"), api("/api/admin/training"), api("/api/admin/models"), api("/api/admin/learning"),
    ]);
    showFlags(stats);
    showLearning(learning);
    $("per-day").replaceChildren(barChart(stats.messages_per_day));
    showEligible(stats);
    $("runs").replaceChildren(...training.runs.map(runItem));
    $("train-now").disabled = Boolean(training.running);
    $("models").replaceChildren(...models.versions.map(modelRow));
    signedIn(true);
    refreshTimer = setTimeout(refresh, training.running ? 2000 : 15000); // live while a run trains
  } catch (error) {
    if (error instanceof Unauthorised) {
      sessionStorage.removeItem(TOKEN_KEY);
      signedIn(false);
      $("sign-in-error").textContent = `That token was not accepted. ${error.message}`;
    } else {
      refreshTimer = setTimeout(refresh, 5000);
    }
  }
}

function signedIn(yes) {
  $("dashboard").hidden = !yes;
  $("sign-in").hidden = yes;
  $("sign-out").hidden = !yes;
  if (!yes) $("token").focus();
}

$("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  refresh();
});

$("sign-out").addEventListener("click", () => {
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(TOKEN_KEY);
  signedIn(false);
});

$("train-now").addEventListener("click", async () => {
  try {
    const { run_id: runId } = await api("/api/admin/training", { method: "POST" });
    $("train-status").textContent = `Run ${runId} started.`;
  } catch (error) {
    $("train-status").textContent = error.message;
  }
  refresh();
});

if (sessionStorage.getItem(TOKEN_KEY)) refresh();
else signedIn(false);
