// kiln's page: a completion box whose streamed tokens are shaded by probability, and a
// logit-lens grid. Plain JavaScript, no dependencies; it only talks to this server.
"use strict";

const $ = (id) => document.getElementById(id);
let modelId = "kiln";
let controller = null; // aborts the generation in flight

// ---- shared helpers --------------------------------------------------------------

// Headers for a JSON request, with the API key when one was typed.
function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

// The message of an error answer (OpenAI's {"error": {"message"}}) or the status line.
async function errorText(response) {
  if (response.status === 401) $("key-box").hidden = false; // the server wants a key
  try {
    const body = await response.json();
    if (body.error && body.error.message) return response.status + ": " + body.error.message;
  } catch (_) { /* not JSON */ }
  return response.status + " " + response.statusText;
}

// A probability in [0, 1] as a background colour: red (unlikely) to green (likely).
function probColor(p) {
  const x = Math.max(0, Math.min(1, p));
  return "hsl(" + Math.round(120 * x) + ", 75%, " + Math.round(88 - 10 * x) + "%)";
}

// Whitespace made visible, for token labels.
function visible(token) {
  return token.replace(/ /g, "\u00b7").replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5");
}

// ---- tabs --------------------------------------------------------------------------

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
    $("panel-complete").hidden = tab.dataset.tab !== "complete";
    $("panel-lens").hidden = tab.dataset.tab !== "lens";
  });
}

$("legend-low").style.background = probColor(0);
$("legend-mid").style.background = probColor(0.5);
$("legend-high").style.background = probColor(1);

// The model's id (and whether a key is needed: /v1/models answers 401 without one).
async function loadModel() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) {
    $("status").textContent = await errorText(response);
    return;
  }
  const body = await response.json();
  if (body.data && body.data.length) {
    modelId = body.data[0].id;
    $("model-name").textContent = modelId;
  }
}
$("api-key").addEventListener("change", loadModel);
loadModel();

// ---- the completion box -------------------------------------------------------------

// Append one streamed piece of text; `alternatives` is [{token, logprob}] best first and
// `logprob` the chosen token's, both absent for text that came without log-probs.
function addToken(text, token, logprob, alternatives) {
  const span = document.createElement("span");
  span.textContent = text;
  if (logprob !== undefined && logprob !== null) {
    const p = Math.exp(logprob);
    span.className = "tok";
    span.dataset.prob = p.toFixed(4);
    span.style.background = probColor(p);
    // A token with no text of its own yet (part of a multi-byte character) is an empty
    // box (style.css), still hoverable.
    if (!text) span.title = "part of a character whose text comes with a later token";
    span.addEventListener("mouseenter", () => showAlternatives(span, token, logprob, alternatives));
    span.addEventListener("mouseleave", () => { $("alts").hidden = true; });
  }
  $("output").appendChild(span);
}

// Show the top alternatives of a token in a box under it.
function showAlternatives(span, token, logprob, alternatives) {
  const box = $("alts");
  const rows = (alternatives || []).map((a) => {
    const chosen = a.token === token ? " class=\"chosen\"" : "";
    return "<tr" + chosen + "><td></td><td>" + a.logprob.toFixed(3) + "</td><td>" +
      (100 * Math.exp(a.logprob)).toFixed(1) + "%</td></tr>";
  });
  box.innerHTML = "<div>chosen: <b></b> logprob " + logprob.toFixed(3) + "</div><table>" + rows.join("") + "</table>";
  box.querySelector("b").textContent = JSON.stringify(token);
  // Token texts go in with textContent (never as HTML).
  box.querySelectorAll("tr").forEach((tr, i) => { tr.firstChild.textContent = JSON.stringify(alternatives[i].token); });
  const r = span.getBoundingClientRect();
  box.style.left = (window.scrollX + r.left) + "px";
  box.style.top = (window.scrollY + r.bottom + 4) + "px";
  box.hidden = false;
}

// One server-sent event's JSON: add its text to the output (completion or chat shape).
function onChunk(event, chat) {
  if (event.error) throw new Error(event.error.message);
  const choice = (event.choices || [])[0];
  if (!choice) return;
  if (chat) {
    const text = (choice.delta && choice.delta.content) || "";
    const entries = (choice.logprobs && choice.logprobs.content) || [];
    if (entries.length === 0) {
      if (text) addToken(text);
      return;
    }
    // One entry per token; the chunk's text goes with the first.
    entries.forEach((e, i) => addToken(i === 0 ? text : "", e.token, e.logprob, e.top_logprobs));
  } else {
    const text = choice.text || "";
    const lp = choice.logprobs;
    if (!lp || !lp.tokens || lp.tokens.length === 0) {
      if (text) addToken(text);
      return;
    }
    // The completions API's alternatives are a {token: logprob} map.
    const top = lp.top_logprobs && lp.top_logprobs[0] ? lp.top_logprobs[0] : {};
    const alternatives = Object.entries(top).map(([token, logprob]) => ({ token, logprob }))
      .sort((a, b) => b.logprob - a.logprob);
    addToken(text, lp.tokens[0], lp.token_logprobs[0], alternatives);
  }
}

// Read a server-sent-events body, calling `each` with every `data:` payload but [DONE].
async function readEvents(response, each) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of frame.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        each(JSON.parse(data));
      }
    }
  }
}

async function generate() {
  const chat = $("mode").value === "chat";
  const prompt = $("prompt").value;
  const params = {
    model: modelId,
    stream: true,
    temperature: Number($("temperature").value),
    max_tokens: Number($("max-tokens").value),
  };
  let url, body;
  if (chat) {
    url = "/v1/chat/completions";
    body = Object.assign(params, { messages: [{ role: "user", content: prompt }], logprobs: true, top_logprobs: 5 });
  } else {
    url = "/v1/completions";
    body = Object.assign(params, { prompt, logprobs: 5 });
  }
  const output = $("output");
  output.textContent = "";
  if (!chat) {
    const shown = document.createElement("span");
    shown.className = "prompt-text";
    shown.textContent = prompt;
    output.appendChild(shown);
  }
  $("status").textContent = "generating…";
  $("status").classList.remove("error");
  $("generate").disabled = true;
  $("stop").disabled = false;
  controller = new AbortController();
  let tokens = 0;
  try {
    const response = await fetch(url, { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!response.ok) throw new Error(await errorText(response));
    await readEvents(response, (event) => { onChunk(event, chat); tokens = output.querySelectorAll(".tok").length; });
    $("status").textContent = "done: " + tokens + " tokens";
  } catch (e) {
    if (e.name === "AbortError") {
      $("status").textContent = "stopped after " + tokens + " tokens";
    } else {
      $("status").textContent = String(e.message || e);
      $("status").classList.add("error");
    }
  } finally {
    $("generate").disabled = false;
    $("stop").disabled = true;
    controller = null;
  }
}

$("generate").addEventListener("click", generate);
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });

// ---- the lens tab ---------------------------------------------------------------------

// Draw `/v1/lens`'s answer: one row per block, one column per input token.
function drawLens(lens) {
  const table = document.createElement("table");
  const head = table.insertRow();
  head.appendChild(document.createElement("th")).textContent = "block";
  for (const token of lens.tokens) {
    head.appendChild(document.createElement("th")).textContent = visible(token);
  }
  lens.lens.forEach((row, r) => {
    const tr = table.insertRow();
    tr.appendChild(document.createElement("th")).textContent = lens.blocks[r];
    for (const cell of row) {
      const best = cell.top[0];
      const td = tr.insertCell();
      td.className = "lens-cell";
      td.style.background = probColor(best.prob);
      td.textContent = visible(best.token);
      const p = document.createElement("span");
      p.className = "p";
      p.textContent = best.prob.toFixed(2);
      td.appendChild(p);
      // The tooltip lists every top token of the cell.
      td.title = cell.top.map((t) => JSON.stringify(t.token) + " " + t.prob.toFixed(3)).join("\n");
    }
  });
  const grid = $("lens-grid");
  grid.textContent = "";
  grid.appendChild(table);
}

async function runLens() {
  const body = { prompt: $("lens-prompt").value, top: Number($("lens-top").value) };
  const blocks = $("lens-blocks").value.trim();
  if (blocks) body.blocks = blocks.split(",").map((b) => Number(b.trim()));
  $("lens-status").textContent = "running…";
  $("lens-status").classList.remove("error");
  $("lens-run").disabled = true;
  try {
    const response = await fetch("/v1/lens", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!response.ok) throw new Error(await errorText(response));
    const lens = await response.json();
    drawLens(lens);
    $("lens-status").textContent = lens.blocks.length + " blocks × " + lens.prompt_ids.length + " tokens";
  } catch (e) {
    $("lens-status").textContent = String(e.message || e);
    $("lens-status").classList.add("error");
  } finally {
    $("lens-run").disabled = false;
  }
}

$("lens-run").addEventListener("click", runLens);
