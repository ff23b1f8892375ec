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

// A figure to `digits` places, or a dash when there is none.
function fixed(value, digits) {
  return value === null || value === undefined ? "–" : value.toFixed(digits);
}

const loss = (value) => fixed(value, 4);
const similarity = (value) => fixed(value, 3);

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
  if (stats.local_model) flags.push(["Local replies (this worker)", batching(stats.local_model.batching)]);
  facts($("flags"), flags);
}

function batching(b) {
  return `${b.running} decoding, ${b.waiting} waiting (at most ${b.max_batch} and ${b.max_queue}); ` +
    `largest batch so far ${b.largest_batch}; ${b.left_early} left early`;
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
  const kind = { incremental: "continues the active version", from_base: "from the base model" }[run.kind];
  title.textContent = `Run ${run.id}: ${run.status} (${run.trigger}${kind ? `, ${kind}` : ""})`;
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
  const trained = version.trained_on ? `${version.trained_on.new} new + ${version.trained_on.replay} replayed`
    : version.examples?.train ?? "?";
  const examples = version.examples ? `${trained} / ${version.examples.eval ?? "?"}` : "–";
  const judged = version.evaluation;
  const lineage = version.parent ? `continues ${version.parent}` : version.trained_on ? "from the base model" : "";
  row.append(cell(lineage ? `${version.name} (${lineage})` : version.name), cell(state), cell(loss(version.metrics.candidate_loss)),
             cell(loss(version.metrics.base_loss)), cell(examples),
             cell(judged ? similarity(judged.similarity) : "–"),
             cell(judged ? `${judged.unsafe} / ${judged.degenerate} of ${judged.examples}` : "–"));
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

const PAIR_COLUMNS = ["Message", "Groq", "Local", "Similarity"];

// rows: [{prompt, groq, local, similarity, unsafe}] -> table rows, Groq and local side by side
function pairRows(rows) {
  return rows.map((pair) => {
    const row = document.createElement("tr");
    if (pair.unsafe) row.className = "unsafe";
    const verdict = pair.unsafe ? " (unsafe: withheld from users)" : pair.degenerate ? ` (${pair.degenerate})` : "";
    const cells = [cell(pair.prompt), cell(pair.groq), cell(pair.local + verdict), cell(similarity(pair.similarity))];
    cells.forEach((td, i) => { td.dataset.label = PAIR_COLUMNS[i]; }); // the column's name where rows stack
    row.append(...cells);
    return row;
  });
}

function evaluationDetails(version) {
  const judged = version.evaluation, details = document.createElement("details");
  details.dataset.version = version.name;
  const summary = document.createElement("summary");
  const active = judged.active ? `; the active ${judged.active.version}: ${similarity(judged.active.similarity)}, ` +
    `${judged.active.unsafe} unsafe` : "";
  summary.textContent = `${version.name}: ${judged.examples} held-out replies, similarity ` +
    `${similarity(judged.similarity)}, ${judged.unsafe} unsafe, ${judged.degenerate} degenerate${active}. ` +
    `Gate: ${version.gate.reason || "–"}`;
  const table = document.createElement("table"), head = document.createElement("thead");
  table.className = "samples";
  const headings = document.createElement("tr");
  headings.append(...PAIR_COLUMNS.map((name) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    return th;
  }));
  head.append(headings);
  const body = document.createElement("tbody");
  body.append(...pairRows(judged.samples));
  table.append(head, body);
  details.append(summary, table);
  return details;
}

function showEvaluations(versions) {
  const open = new Set([...document.querySelectorAll("#evaluations details[open]")].map((d) => d.dataset.version));
  const details = versions.filter((v) => v.evaluation).map(evaluationDetails);
  details.forEach((d) => { d.open = open.has(d.dataset.version); });
  $("evaluations").replaceChildren(...details);
}

function showShadow(shadow) {
  $("shadow-verdict").textContent = !shadow.version ? "No version is active yet." :
    shadow.verdict.ready ? `${shadow.version} looks ready to switch on.` : `${shadow.version} is not ready yet.`;
  $("shadow-reasons").replaceChildren(...shadow.verdict.reasons.map((reason) => {
    const item = document.createElement("li");
    item.textContent = reason;
    return item;
  }));
  facts($("shadow"), [
    ["SHADOW_SAMPLE_RATE", shadow.running ? String(shadow.sample_rate) : `${shadow.sample_rate} (not shadowing here)`],
    ["Shadow replies", String(shadow.count)],
    ["Mean similarity", similarity(shadow.similarity_mean)],
    ["Unsafe", String(shadow.unsafe)],
    ["Degenerate", String(shadow.degenerate)],
  ]);
  const oldestFirst = [...shadow.recent].reverse().filter((p) => p.similarity !== null);
  $("shadow-chart").replaceChildren(...(oldestFirst.length < 2 ? [] : [lineChart(
    oldestFirst.map((p, i) => [i, p.similarity]), "Similarity of the recent shadow replies to Groq's, oldest first")]));
  $("shadow-pairs").replaceChildren(...pairRows(shadow.recent));
}

function showSafety(safety) {
  const judge = safety.judge;
  facts($("safety"), [
    ["User messages none / medium / high", `${safety.by_level.none} / ${safety.by_level.medium} / ${safety.by_level.high}`],
    ["Set by layer", safety.by_layer.filter((row) => row.layer).map((row) => `${row.level} by ${row.layer}: ${row.count}`).join(", ") || "–"],
    ["Judge verdicts", judge.answered ? `${judge.answered}, agreeing with the local screen ${fixed(100 * judge.agreement, 0)}%, overruling it ${judge.overruled}` : "none yet"],
  ]);
  $("safety-messages").replaceChildren(...safety.recent.map((message) => {
    const row = document.createElement("tr");
    row.append(cell(message.text), cell(message.risk_level), cell(message.risk_layer), cell(message.judge_level || "–"),
      cell(when(message.created_at)));
    return row;
  }));
}

function showTryVersions(versions) {
  const select = $("try-version"), chosen = select.value;
  select.replaceChildren(...versions.map((v) => {
    const option = document.createElement("option");
    option.value = v.name;
    option.textContent = `${v.name}${v.active ? " (active)" : v.rejected ? " (rejected)" : ""}`;
    return option;
  }));
  if (versions.some((v) => v.name === chosen)) select.value = chosen;
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
    const [stats, training, models, learning, shadow, safety] = await Promise.all([
      api("/api/stats"), api("/api/admin/training"), api("/api/admin/models"), api("/api/admin/learning"),
      api("/api/admin/shadow"), api("/api/admin/safety"),
    ]);
    showFlags(stats);
    showLearning(learning);
    $("per-day").replaceChildren(barChart(stats.messages_per_day));
    showEligible(stats);
    $("runs").replaceChildren(...training.runs.map(runItem));
    $("train-now").disabled = Boolean(training.running);
    $("models").replaceChildren(...models.versions.map(modelRow));
    showEvaluations(models.versions);
    showShadow(shadow);
    showSafety(safety);
    showTryVersions(models.versions);
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
    const fromBase = $("train-from-base").checked;
    const { run_id: runId } = await api("/api/admin/training", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ from_base: fromBase }),
    });
    $("train-status").textContent = `Run ${runId} started.`;
  } catch (error) {
    $("train-status").textContent = error.message;
  }
  refresh();
});

$("try-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const version = $("try-version").value, button = event.submitter;
  $("try-status").textContent = `Asking ${version}; a version that is not loaded yet takes a few seconds more.`;
  $("try-reply").hidden = true;
  button.disabled = true;
  try {
    const tried = await api(`/api/admin/models/${encodeURIComponent(version)}/try`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: $("try-message").value }] }),
    });
    $("try-reply").textContent = tried.reply;
    $("try-reply").hidden = false;
    $("try-status").textContent = `${tried.version} answered in ${tried.latency_ms} ms` +
      (tried.finish_reason === "length" ? ", cut off at LOCAL_MAX_NEW_TOKENS" : "") +
      (tried.unsafe ? ". Unsafe: the reply screening would withhold this from a user." : ".");
  } catch (error) {
    $("try-status").textContent = error.message;
  } finally {
    button.disabled = false;
  }
});

if (sessionStorage.getItem(TOKEN_KEY)) refresh();
else signedIn(false);
