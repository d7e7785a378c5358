// The httptask editor page: catalog search, a form built from the operation's request schema, the task
// definition as YAML (rebuilt by the server as you type), Test request, the tabs and the keyboard.
// Plain JS, no build step; workflow.js adds the Workflow tab through window.httptask.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "httptask-token";
  const state = { op: null, taskTimer: null, searchTimer: null, task: null, searchSeq: 0, taskSeq: 0, active: -1 };

  // The token arrives once as /?token=T; it is kept for this tab only and removed from the address bar.
  function takeToken() {
    const url = new URL(window.location.href);
    const token = url.searchParams.get("token");
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      url.searchParams.delete("token");
      history.replaceState(null, "", url.pathname + url.search + url.hash);
    }
  }

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers["Authorization"] = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      return { status: 0, data: { error: "The editor server did not answer; is 'httptask serve' still running?", issues: [] } };
    }
    let data;
    try { data = await response.json(); } catch (err) { data = { error: "The server sent a response that is not JSON.", issues: [] }; }
    if (response.status === 401) showAuthNote(data.error);
    return { status: response.status, data };
  }

  function showAuthNote(message) {
    const note = $("auth-note");
    note.textContent = message;
    note.hidden = false;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (/^(data-|aria-)/.test(key) || key === "role" || key === "spellcheck") node.setAttribute(key, value);
      else if (key in node) node[key] = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  // -- search ----------------------------------------------------------------------------------------------

  async function search() {
    const q = $("search").value.trim();
    const seq = ++state.searchSeq;
    const { status, data } = await api("GET", "/api/operations?limit=100&q=" + encodeURIComponent(q));
    if (seq !== state.searchSeq) return;
    const list = $("results");
    list.replaceChildren();
    list.dataset.query = q;
    if (status !== 200) {
      $("result-count").textContent = data.error || "Search failed.";
      return;
    }
    const ops = data.operations;
    $("result-count").textContent = ops.length ? `${ops.length} operation${ops.length === 1 ? "" : "s"}` : `Nothing matches “${q}”. Try fewer or other words.`;
    ops.forEach((op, index) => {
      const chosen = Boolean(state.op && state.op.reference.id === op.id);
      const item = el("li", { id: "result-" + index, class: "result-item" + (chosen ? " selected" : ""), "data-id": op.id, role: "option", "aria-selected": "false" },
        el("span", { class: "result-top" },
          el("span", { class: "method method-" + op.method.toLowerCase(), text: op.method }),
          el("span", { class: "result-summary", text: op.summary || op.id })),
        el("span", { class: "result-id", text: op.id }));
      item.addEventListener("click", () => { openOperation(op.id); $("search").focus(); });
      list.append(item);
    });
    setActive(-1);
  }

  // The results form a listbox driven from the search field (the ARIA combobox pattern): the arrow keys move
  // the active option, Enter opens it, and focus stays in the field so typing goes on refining.
  function setActive(index) {
    const items = [...document.querySelectorAll(".result-item")];
    state.active = items.length ? Math.max(-1, Math.min(index, items.length - 1)) : -1;
    items.forEach((item, i) => {
      item.classList.toggle("active", i === state.active);
      item.setAttribute("aria-selected", String(i === state.active));
    });
    const search = $("search");
    if (state.active >= 0) {
      search.setAttribute("aria-activedescendant", items[state.active].id);
      items[state.active].scrollIntoView({ block: "nearest" });
    } else {
      search.removeAttribute("aria-activedescendant");
    }
  }

  function onSearchKey(event) {
    const count = document.querySelectorAll(".result-item").length;
    const moves = { ArrowDown: state.active + 1, ArrowUp: state.active - 1, Home: 0, End: count - 1, PageDown: state.active + 10, PageUp: state.active - 10 };
    if (event.key in moves && (event.key.startsWith("Arrow") || event.key.startsWith("Page") || event.ctrlKey)) {
      event.preventDefault();
      setActive(event.key === "ArrowUp" && state.active < 0 ? count - 1 : Math.max(0, moves[event.key]));
    } else if (event.key === "Enter") {
      event.preventDefault();
      const item = document.querySelectorAll(".result-item")[Math.max(0, state.active)];
      if (item) openOperation(item.dataset.id);
    } else if (event.key === "Escape" && $("search").value) {
      $("search").value = "";
      search();
    }
  }

  // -- the operation and its form ----------------------------------------------------------------------------

  async function openOperation(id) {
    const { status, data } = await api("GET", "/api/operations/" + encodeURIComponent(id));
    if (status !== 200) {
      $("welcome").hidden = false;
      $("welcome").replaceChildren(el("p", { class: "error-text", text: data.error }));
      return;
    }
    state.op = data;
    const ref = data.reference;
    for (const item of document.querySelectorAll(".result-item")) item.classList.toggle("selected", item.dataset.id === id);
    showTab("task");
    $("welcome").hidden = true;
    $("operation").hidden = false;
    $("op-title").textContent = ref.summary || ref.operation_id;
    $("op-method").textContent = ref.method;
    $("op-method").className = "method method-" + ref.method.toLowerCase();
    $("op-path").textContent = ref.path;
    $("op-api").textContent = ref.api_name;
    $("op-id").textContent = ref.id;
    // Rendered server-side from templates/reference.html.j2 with autoescaping: no spec text is HTML here.
    $("reference").innerHTML = data.reference_html;
    $("result").replaceChildren();
    // Sample values for every {{ input.NAME }}, so the first Test request goes through as it is.
    $("input").value = JSON.stringify(data.sample_input, null, 2);
    $("input").rows = Math.min(12, Math.max(3, $("input").value.split("\n").length));
    buildForm(data);
    if (decodeURIComponent(location.hash.slice(4)) !== id) history.replaceState(null, "", "#op=" + encodeURIComponent(id));
    scheduleTask(0);
  }

  const SECTIONS = [
    ["server", "Server", "Variables of the server URL."],
    ["path", "Path parameters", ""],
    ["query", "Query parameters", ""],
    ["headers", "Headers", ""],
    ["body", "Body", ""],
  ];

  function buildForm(data) {
    const container = $("fields");
    container.replaceChildren();
    const schema = data.request_schema;
    const props = schema.properties || {};
    container.append(credentialsFieldset(data.skeleton.credentials));
    for (const [key, title, help] of SECTIONS) {
      if (!props[key]) continue;
      const required = new Set(props[key].required || (key === "server" ? Object.keys(props[key].properties || {}) : []));
      const set = el("fieldset", { class: "section section-" + key }, el("legend", { text: title }));
      if (help) set.append(el("p", { class: "muted small", text: help }));
      if (key === "body" && data.reference.body) set.append(el("p", { class: "muted small" }, "Sent as ", el("code", { text: data.reference.body.content_type })));
      addProperties(set, props[key], "$." + key, key === "body" ? "body." : "", required);
      if (key !== "body") foldOptional(set);
      container.append(set);
    }
    prefill(data.skeleton);
  }

  // The skeleton's literal values (server variables, fixed headers) start in the form; its
  // `{{ input.NAME }}` placeholders show as hints instead, since an empty field keeps them in the task.
  function prefill(skeleton) {
    const literal = (value) => typeof value !== "string" || !value.includes("{{");
    const put = (key, value) => {
      const input = [...$("fields").querySelectorAll("[data-key]")].find((node) => node.dataset.key.toLowerCase() === key.toLowerCase());
      if (!input) return;
      if (!literal(value)) { input.placeholder = value; return; }
      input.value = input.tagName === "SELECT" ? JSON.stringify(value) : String(value);
    };
    for (const [name, value] of Object.entries(skeleton.server || {})) put(name, value);
    const request = skeleton.request || {};
    for (const section of ["path", "query", "headers"]) for (const [name, value] of Object.entries(request[section] || {})) put(name, value);
    const walk = (object, prefix) => {
      for (const [name, value] of Object.entries(object || {})) {
        if (value && typeof value === "object" && !Array.isArray(value)) walk(value, prefix + name + ".");
        else put(prefix + name, value);
      }
    };
    walk(request.body, "body.");
  }

  // Optional parameters and headers fold away so the required fields and the body stay in view.
  function foldOptional(set) {
    const optional = [...set.querySelectorAll(":scope > .field:not(.required)")];
    if (!optional.length) return;
    const details = el("details", { class: "optional" }, el("summary", { text: `${optional.length} optional` }));
    details.append(...optional);
    set.append(details);
  }

  function credentialsFieldset(credentials) {
    const set = el("fieldset", { class: "section section-credentials" }, el("legend", { text: "Credentials" }),
      el("p", { class: "muted small", text: "The name of a secret on the server (HTTPTASK_SECRET_<NAME> or its secrets file), never the secret itself." }));
    if (!credentials) {
      set.append(el("p", { class: "muted small", text: "This operation needs no credentials." }));
      return set;
    }
    const entries = typeof credentials === "string" ? [["", credentials]] : Object.entries(credentials);
    for (const [scheme, name] of entries) {
      const id = "cred-" + (scheme || "name");
      const input = el("input", { id, type: "text", value: name, "data-credential": scheme, spellcheck: "false" });
      set.append(el("div", { class: "field" }, el("label", { for: id, text: scheme ? `Secret name for ${scheme}` : "Secret name" }), input));
    }
    return set;
  }

  function addProperties(parent, schema, path, prefix, required) {
    for (const [name, child] of Object.entries(schema.properties || {})) {
      const childPath = path + "." + name;
      const key = prefix ? prefix + name : name;
      if (child && child.type === "object" && child.properties) {
        const set = el("fieldset", { class: "group", "data-path": childPath },
          el("legend", {}, name, required.has(name) ? el("span", { class: "req", title: "required", text: " *" }) : null));
        if (child.description) set.append(el("p", { class: "muted small help", text: shortText(child.description) }));
        addProperties(set, child, childPath, key + ".", new Set(child.required || []));
        parent.append(set);
      } else {
        parent.append(fieldFor(name, child || {}, childPath, key, required.has(name)));
      }
    }
  }

  function kindOf(schema) {
    const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
    if (schema.enum) return "enum";
    if (type === "boolean") return "boolean";
    if (type === "integer" || type === "number") return "number";
    if (type === "array") {
      const items = schema.items || {};
      return items.type === "object" || items.properties ? "json" : "list";
    }
    if (type === "object") return "json";
    return "text";
  }

  function fieldFor(name, schema, path, key, isRequired) {
    const id = "f-" + path.replace(/[^A-Za-z0-9_-]/g, "_");
    const kind = kindOf(schema);
    const label = el("label", { for: id }, el("span", { class: "field-name", text: name }),
      isRequired ? el("span", { class: "req", title: "required", text: " *" }) : null,
      el("span", { class: "field-type", text: typeText(schema) }));
    let input;
    const common = { id, "data-key": key, "data-kind": kind, "data-path": path, "aria-required": isRequired ? "true" : null, spellcheck: "false" };
    if (kind === "enum" || kind === "boolean") {
      const options = kind === "enum" ? schema.enum : [true, false];
      input = el("select", common, el("option", { value: "", text: "—" }));
      for (const option of options) input.append(el("option", { value: JSON.stringify(option), text: String(option) }));
      if (schema.default !== undefined) input.value = JSON.stringify(schema.default);
    } else if (kind === "json") {
      input = el("textarea", { ...common, rows: 3, placeholder: kind === "json" && schema.type === "array" ? "[ … ] as JSON" : "{ … } as JSON" });
      if (schema.default !== undefined) input.value = JSON.stringify(schema.default);
    } else {
      const hint = kind === "list" ? "comma-separated" : (schema.format === "unix-time" ? "Unix time, e.g. 1517467200" : (schema.format || ""));
      input = el("input", { ...common, type: "text", placeholder: hint, inputMode: kind === "number" ? "decimal" : null });
      if (schema.default !== undefined) input.value = Array.isArray(schema.default) ? schema.default.join(", ") : String(schema.default);
    }
    const field = el("div", { class: "field" + (isRequired ? " required" : ""), "data-path": path }, label, input);
    if (schema.description) field.append(el("p", { class: "help", title: schema.description, text: shortText(schema.description) }));
    field.append(el("p", { class: "field-error", role: "alert", hidden: true }));
    return field;
  }

  function typeText(schema) {
    const type = Array.isArray(schema.type) ? schema.type.join(" | ") : (schema.type || "any");
    return schema.format ? `${type} (${schema.format})` : type;
  }

  function shortText(text) {
    const plain = String(text).replace(/\s+/g, " ").trim();
    return plain.length > 160 ? plain.slice(0, 157) + "…" : plain;
  }

  // -- values, the task and its YAML --------------------------------------------------------------------------

  function numberOrText(text) {
    return /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
  }

  function formValues() {
    const values = {};
    const problems = [];
    for (const input of $("fields").querySelectorAll("[data-key]")) {
      const raw = input.value.trim();
      if (raw === "") continue;
      const kind = input.dataset.kind;
      if (kind === "enum" || kind === "boolean") values[input.dataset.key] = JSON.parse(raw);
      else if (kind === "number") values[input.dataset.key] = numberOrText(raw);
      else if (kind === "list") values[input.dataset.key] = raw.split(",").map((s) => numberOrText(s.trim())).filter((s) => s !== "");
      else if (kind === "json") {
        try { values[input.dataset.key] = JSON.parse(raw); } catch (err) { problems.push({ path: input.dataset.path, message: "is not valid JSON: " + err.message }); }
      } else values[input.dataset.key] = raw;
    }
    return { values, problems };
  }

  function credentials() {
    const inputs = [...$("fields").querySelectorAll("[data-credential]")];
    if (!inputs.length) return null;
    if (inputs.length === 1 && inputs[0].dataset.credential === "") return inputs[0].value.trim() || null;
    const names = {};
    for (const input of inputs) if (input.value.trim()) names[input.dataset.credential] = input.value.trim();
    return names;
  }

  function scheduleTask(delay) {
    clearTimeout(state.taskTimer);
    state.taskTimer = setTimeout(updateTask, delay);
  }

  async function updateTask() {
    if (!state.op) return null;
    const { values, problems } = formValues();
    showFieldErrors(problems);
    if (problems.length) return null;
    const seq = ++state.taskSeq;
    const body = { operation: state.op.reference.id, values };
    const creds = credentials();
    if (creds) body.credentials = creds;
    const { status, data } = await api("POST", "/api/tasks", body);
    if (seq !== state.taskSeq) return state.task;
    const error = $("task-error");
    if (status !== 200) {
      error.textContent = data.error;
      error.hidden = false;
      showFieldErrors(data.issues || []);
      state.task = null;
      return null;
    }
    error.hidden = true;
    $("yaml").textContent = data.yaml;
    state.task = data.task;
    return data.task;
  }

  async function copyYaml() {
    const text = $("yaml").textContent;
    const button = $("copy");
    try {
      await navigator.clipboard.writeText(text);
    } catch (err) {
      const range = document.createRange();
      range.selectNodeContents($("yaml"));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      document.execCommand("copy");
    }
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  }

  // -- Test request --------------------------------------------------------------------------------------------

  async function sendTest() {
    const button = $("send");
    const result = $("result");
    let input;
    try { input = JSON.parse($("input").value || "{}"); } catch (err) {
      result.replaceChildren(errorBox("The input is not valid JSON: " + err.message + ".", []));
      return;
    }
    clearTimeout(state.taskTimer);
    const task = await updateTask();
    if (!task) {
      result.replaceChildren(errorBox("The task cannot be built yet; fix the marked fields.", []));
      return;
    }
    button.disabled = true;
    button.textContent = "Sending…";
    result.replaceChildren(el("p", { class: "muted", text: "Sending…" }));
    const { status, data } = await api("POST", "/api/test-request", { task, input });
    button.disabled = false;
    button.textContent = "Test request";
    if (status === 200) {
      showFieldErrors([]);
      result.replaceChildren(...exchangeView(data));
    } else {
      showFieldErrors(data.issues || []);
      const nodes = [errorBox(data.error, data.issues || [])];
      if (data.request) nodes.push(requestView(data.request, false));
      result.replaceChildren(...nodes);
    }
  }

  function statusClass(code) {
    return code >= 500 ? "status-5xx" : code >= 400 ? "status-4xx" : code >= 300 ? "status-3xx" : "status-2xx";
  }

  function exchangeView(data) {
    const response = data.response;
    const attempts = `${data.attempts} attempt${data.attempts === 1 ? "" : "s"}`;
    const summary = el("div", { class: "status-line" },
      el("span", { class: "status " + statusClass(response.status), text: `${response.status} ${response.reason || ""}`.trim() }),
      el("span", { class: "muted", text: `${data.timings.total_ms.toFixed(0)} ms · ${attempts}${data.sandbox ? " · sandbox" : ""}` }));
    const headers = el("table", { class: "headers" });
    for (const [name, value] of Object.entries(response.headers)) headers.append(el("tr", {}, el("th", { text: name }), el("td", { text: value })));
    const body = typeof response.body === "string" ? response.body : JSON.stringify(response.body, null, 2);
    return [
      summary,
      el("details", { class: "sub" }, el("summary", { text: `Response headers (${Object.keys(response.headers).length})` }), headers),
      ...(response.body_truncated ? [el("p", { class: "muted", id: "response-truncated", text: `The body is ${response.body_bytes.toLocaleString("en")} bytes; the editor shows its first ${body.length.toLocaleString("en")} characters.` })] : []),
      el("pre", { class: "code body", id: "response-body", tabindex: "0", "aria-label": "Response body", text: body }),
      ...(data.response_issues.length ? [responseIssuesView(data.response_issues, data.strict_responses)] : []),
      requestView(data.request, true),
    ];
  }

  // Where the response breaks the operation's spec: a warning, or the task's failure under strictResponses.
  function responseIssuesView(issues, strict) {
    const message = strict
      ? "The response does not fit the spec, and the task has strictResponses: true, so the task failed. The request was answered: it is not sent again."
      : "Warning: the response does not fit the spec.";
    const box = el("div", { class: strict ? "error-box" : "warning-box", role: strict ? "alert" : "status", id: "response-issues" }, el("p", { text: message }));
    box.append(issueList(issues));
    return box;
  }

  function requestView(request, collapsed) {
    const lines = [`${request.method} ${request.url}`, ...Object.entries(request.headers).map(([k, v]) => `${k}: ${v}`)];
    if (request.body) lines.push("", request.body);
    return el("details", { class: "sub", open: !collapsed }, el("summary", { text: "Request sent (secrets masked)" }), el("pre", { class: "code", tabindex: "0", "aria-label": "Request sent", text: lines.join("\n") }));
  }

  function errorBox(message, issues) {
    const box = el("div", { class: "error-box", role: "alert" }, el("p", { text: message }));
    if (issues.length) box.append(issueList(issues));
    return box;
  }

  function issueList(issues) {
    const list = el("ul");
    for (const issue of issues) list.append(el("li", {}, el("code", { text: issue.path }), " " + issue.message));
    return list;
  }

  // Issue paths name the request (`$.body.memo`) or the task (`$.request.body.memo`); both find the field,
  // or the nearest enclosing one for array items and unknown children.
  function fieldForPath(path) {
    let p = path.replace(/^\$\.request\./, "$.");
    while (p && p !== "$") {
      const match = [...$("fields").querySelectorAll(".field[data-path], fieldset.group[data-path]")].find((node) => node.dataset.path.toLowerCase() === p.toLowerCase());
      if (match) return match;
      const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      if (cut <= 1) break;
      p = p.slice(0, cut);
    }
    return null;
  }

  function showFieldErrors(issues) {
    for (const node of $("fields").querySelectorAll(".has-error")) node.classList.remove("has-error");
    for (const node of $("fields").querySelectorAll(".field-error")) { node.hidden = true; node.textContent = ""; }
    for (const node of $("fields").querySelectorAll(".group-error")) node.remove();
    for (const issue of issues) {
      const target = fieldForPath(issue.path);
      if (!target) continue;
      target.classList.add("has-error");
      let slot = target.querySelector(":scope > .field-error");
      if (!slot) {
        slot = el("p", { class: "field-error group-error", role: "alert" });
        target.append(slot);
      }
      const hint = /'input' has no attribute/.test(issue.message) ? " (fill this field, or give it in the input JSON)" : "";
      const text = issue.message + hint;
      slot.textContent = slot.textContent ? slot.textContent + "; " + text : text;
      slot.hidden = false;
      const folded = target.closest("details.optional");
      if (folded) folded.open = true;
    }
    const first = $("fields").querySelector(".has-error");
    if (first) first.scrollIntoView({ block: "center" });
  }

  // -- tabs and the keyboard -------------------------------------------------------------------------------

  const TABS = ["task", "workflow"];

  function showTab(name) {
    for (const tab of TABS) {
      const selected = tab === name;
      $("tab-" + tab).setAttribute("aria-selected", String(selected));
      $("tab-" + tab).tabIndex = selected ? 0 : -1;
      $("view-" + tab).hidden = !selected;
    }
    document.body.dataset.view = name;
  }

  function onTabKey(event) {
    const index = TABS.indexOf(event.currentTarget.id.slice(4));
    const next = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: TABS.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    const name = TABS[(next + TABS.length) % TABS.length];
    showTab(name);
    $("tab-" + name).focus();
  }

  // "/" goes to the search from anywhere but a field being typed in.
  function onPageKey(event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
    event.preventDefault();
    $("search").focus();
    $("search").select();
  }

  async function insertIntoWorkflow() {
    clearTimeout(state.taskTimer);
    const task = await updateTask();
    if (!task) return;
    await window.httptask.insertTask(task);
  }

  window.httptask = { api, el, errorBox, showTab, insertTask: null };

  // -- start -----------------------------------------------------------------------------------------------

  function start() {
    takeToken();
    $("search").addEventListener("input", () => {
      clearTimeout(state.searchTimer);
      state.searchTimer = setTimeout(search, 150);
    });
    $("search").addEventListener("keydown", onSearchKey);
    document.addEventListener("keydown", onPageKey);
    for (const tab of TABS) {
      $("tab-" + tab).addEventListener("click", () => showTab(tab));
      $("tab-" + tab).addEventListener("keydown", onTabKey);
    }
    $("insert").addEventListener("click", insertIntoWorkflow);
    $("form").addEventListener("submit", (event) => event.preventDefault());
    $("fields").addEventListener("input", () => scheduleTask(250));
    $("fields").addEventListener("change", () => scheduleTask(0));
    $("copy").addEventListener("click", copyYaml);
    $("send").addEventListener("click", sendTest);
    search();
    showTab(location.hash === "#workflow" ? "workflow" : "task");
    const chosen = location.hash.startsWith("#op=") ? decodeURIComponent(location.hash.slice(4)) : "";
    if (chosen) openOperation(chosen);
    $("search").focus();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
