// The Workflow tab: open an example or paste YAML, see each problem next to its line (the checks of
// `httptask validate`, run by the server as you type), insert tasks from the task builder, and run the
// workflow on the sandbox with each task's state shown live from the server's event stream.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const state = { timer: null, seq: 0, exampleSeq: 0, inputTouched: false, problems: [], modeline: "", running: false };

  function shared() {
    return window.httptask;
  }

  // -- the text, its gutter and the problems beside their lines --------------------------------------------

  function scheduleCheck(delay) {
    clearTimeout(state.timer);
    state.timer = setTimeout(check, delay);
  }

  async function check() {
    const text = $("wf-text").value;
    const seq = ++state.seq;
    if (!text.trim()) {
      state.problems = [];
      render();
      $("wf-status").textContent = "Open an example, paste a workflow, or insert a task from the task builder.";
      return;
    }
    const { status, data } = await shared().api("POST", "/api/validate", { workflow: text });
    if (seq !== state.seq) return;
    if (status !== 200) {
      state.problems = [{ path: "$", message: data.error, line: null }];
    } else {
      state.problems = data.errors;
      if (!state.inputTouched && data.sample_input) $("wf-input").value = JSON.stringify(data.sample_input, null, 2);
    }
    render();
    const count = state.problems.length;
    $("wf-status").textContent = count ? `${count} problem${count === 1 ? "" : "s"}; nothing can run until they are fixed.` : "No problems: the workflow is valid.";
    $("wf-status").classList.toggle("error-text", count > 0);
  }

  function byLine() {
    const lines = new Map();
    for (const problem of state.problems) {
      const line = problem.line || 1;
      if (!lines.has(line)) lines.set(line, []);
      lines.get(line).push(problem);
    }
    return lines;
  }

  function render() {
    const el = shared().el;
    const lines = $("wf-text").value.split("\n");
    const marked = byLine();
    const gutter = [];
    const backdrop = [];
    lines.forEach((text, index) => {
      const number = index + 1;
      const problems = marked.get(number);
      gutter.push(el("div", { class: problems ? "gl problem" : "gl", text: problems ? "⚠ " + number : String(number) }));
      const row = el("div", { class: problems ? "bl problem" : "bl" }, el("span", { class: "bl-text", text: text || " " }));
      if (problems) row.append(el("span", { class: "bl-note", "data-line": String(number), text: problems.map(note).join("; ") }));
      backdrop.push(row);
    });
    $("wf-gutter").replaceChildren(...gutter);
    $("wf-backdrop").replaceChildren(...backdrop);
    const list = state.problems.map((problem) => el("li", { class: "wf-problem" },
      el("button", { type: "button", class: "line-link", "data-line": String(problem.line || 1), text: problem.line ? `line ${problem.line}` : "file" }),
      " ", el("code", { text: problem.path }), " " + problem.message));
    $("wf-problems").replaceChildren(...list);
    syncScroll();
  }

  function note(problem) {
    return problem.path === "$" ? problem.message : `${problem.path}: ${problem.message}`;
  }

  function syncScroll() {
    const text = $("wf-text");
    $("wf-backdrop").scrollTop = text.scrollTop;
    $("wf-backdrop").scrollLeft = text.scrollLeft;
    $("wf-gutter").scrollTop = text.scrollTop;
  }

  function goToLine(number) {
    const text = $("wf-text");
    const lines = text.value.split("\n");
    const start = lines.slice(0, number - 1).reduce((sum, line) => sum + line.length + 1, 0);
    text.focus();
    text.setSelectionRange(start, start + (lines[number - 1] || "").length);
    const lineHeight = parseFloat(getComputedStyle(text).lineHeight) || 19;
    text.scrollTop = Math.max(0, (number - 4) * lineHeight);
    syncScroll();
  }

  // -- examples, insertion and download --------------------------------------------------------------------

  async function loadExamples() {
    const { status, data } = await shared().api("GET", "/api/examples");
    if (status !== 200) return;
    const el = shared().el;
    for (const example of data.examples) {
      $("example").append(el("option", { value: example.name, text: example.name, title: example.description }));
    }
  }

  async function openExample() {
    const name = $("example").value;
    if (!name) return;
    const seq = ++state.exampleSeq;
    const { status, data } = await shared().api("GET", "/api/examples/" + encodeURIComponent(name));
    if (seq !== state.exampleSeq) return;
    if (status !== 200) {
      $("wf-status").textContent = data.error;
      return;
    }
    setText(data.workflow);
    $("wf-input").value = JSON.stringify(data.input, null, 2);
    state.inputTouched = true;
    clearRun();
  }

  function setText(text) {
    $("wf-text").value = text;
    render();
    scheduleCheck(0);
  }

  async function insertTask(task) {
    const { status, data } = await shared().api("POST", "/api/workflows/insert-task", { workflow: $("wf-text").value, task });
    shared().showTab("workflow");
    if (status !== 200) {
      $("wf-status").textContent = data.error;
      $("wf-status").classList.add("error-text");
      return;
    }
    $("example").value = "";
    setText(data.workflow);
    const declared = data.declared.length ? `; declared the input${data.declared.length === 1 ? "" : "s"} ${data.declared.join(", ")}` : "";
    $("wf-inserted").textContent = `Inserted the task ${data.task_id}${declared}.`;
    const line = data.workflow.split("\n").findIndex((text) => new RegExp(`^\\s*- id: ['"]?${data.task_id}['"]?$`).test(text));
    if (line >= 0) goToLine(line + 1);
  }

  function download() {
    let text = $("wf-text").value;
    if (!text.startsWith("# yaml-language-server:")) text = state.modeline + "\n" + text;
    const name = (/^name:\s*['"]?([\w.-]+)/m.exec(text) || [null, "workflow"])[1];
    const link = shared().el("a", { href: URL.createObjectURL(new Blob([text], { type: "application/yaml" })), download: name + ".yaml" });
    document.body.append(link);
    link.click();
    link.remove();
  }

  // -- Run on sandbox ----------------------------------------------------------------------------------------

  function clearRun() {
    $("wf-tasks").hidden = true;
    $("wf-tasks").tBodies[0].replaceChildren();
    $("wf-outputs-box").hidden = true;
    $("wf-run-status").textContent = "";
    $("wf-run-error").replaceChildren();
  }

  async function run() {
    if (state.running) return;
    clearRun();
    let input;
    try { input = JSON.parse($("wf-input").value || "{}"); } catch (err) {
      $("wf-run-error").replaceChildren(shared().errorBox("The inputs are not valid JSON: " + err.message + ".", []));
      return;
    }
    state.running = true;
    $("wf-run").disabled = true;
    $("wf-run").textContent = "Running…";
    try {
      const { status, data } = await shared().api("POST", "/api/runs", { workflow: $("wf-text").value, input });
      if (status !== 202) {
        $("wf-run-error").replaceChildren(shared().errorBox(data.error, data.issues || []));
        return;
      }
      $("wf-run-status").textContent = `Run ${data.run_id} started.`;
      for (const task of data.tasks) showTask(task);
      $("wf-tasks").hidden = false;
      await follow(data.run_id);
    } finally {
      state.running = false;
      $("wf-run").disabled = false;
      $("wf-run").textContent = "Run on sandbox";
    }
  }

  // The events arrive as server-sent events read through fetch, which, unlike EventSource, can carry the
  // editor's token in the Authorization header.
  async function follow(runId) {
    const headers = { "Accept": "text/event-stream" };
    const token = sessionStorage.getItem("httptask-token");
    if (token) headers["Authorization"] = "Bearer " + token;
    let response;
    try {
      response = await fetch("/api/runs/" + encodeURIComponent(runId) + "/events", { headers });
    } catch (err) {
      $("wf-run-status").textContent = "The editor server did not answer; is 'httptask serve' still running?";
      return;
    }
    if (!response.ok || !response.body) {
      $("wf-run-status").textContent = `The run's events could not be read (HTTP ${response.status}).`;
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        handle(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
    }
  }

  function handle(block) {
    let kind = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) kind = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (!data.length) return;
    const payload = JSON.parse(data.join("\n"));
    if (kind === "task") showTask(payload);
    else if (kind === "run") showRun(payload);
  }

  function showTask(task) {
    const el = shared().el;
    const body = $("wf-tasks").tBodies[0];
    let row = body.querySelector(`tr[data-task="${CSS.escape(task.task)}"]`);
    if (!row) {
      row = el("tr", { "data-task": task.task });
      body.append(row);
    }
    const items = task.items ? Object.entries(task.items).map(([name, count]) => `${count} ${name}`).join(", ") : "";
    row.replaceChildren(
      el("th", { scope: "row" }, el("code", { text: task.task })),
      el("td", {}, el("span", { class: "state state-" + task.state, text: task.state })),
      el("td", { text: task.http_status ? String(task.http_status) : "" }),
      el("td", { text: items }),
      offSpecCell(task));
    row.title = task.error || "";
  }

  // How many responses break the operation's spec, and the first one's first issue, path and message, with
  // how many more it has; its every issue in the cell's title.
  function offSpecCell(task) {
    const el = shared().el;
    const count = task.responses_off_spec || 0;
    if (!count) return el("td", { text: "" });
    const first = task.first_off_spec;
    const issues = (first && first.issues) || [];
    const where = first && task.for_each ? `item ${first.item}: ` : "";
    const lines = issues.map((issue) => `${issue.path} ${issue.message}`);
    const more = lines.length > 1 ? ` (and ${lines.length - 1} more)` : "";
    const detail = lines.length ? where + lines[0] + more : "";
    return el("td", { class: "warn-text", title: lines.length ? where + lines.join("\n") : "" },
      el("span", { text: `${count} response${count === 1 ? "" : "s"}` }),
      detail ? el("div", { class: "small", text: detail }) : null);
  }

  function showRun(result) {
    for (const task of result.tasks) showTask(task);
    const failed = result.status !== "succeeded";
    $("wf-run-status").textContent = `Run ${result.run_id} ${result.status}.` + (result.run_id ? ` See it with 'httptask runs show ${result.run_id}'.` : "");
    $("wf-run-status").classList.toggle("error-text", failed);
    if (result.errors && result.errors.length) {
      const issues = result.errors.map((error) => ({ path: error.task ? error.task + (error.item === null || error.item === undefined ? "" : `[${error.item}]`) : "outputs", message: error.message }));
      $("wf-run-error").replaceChildren(shared().errorBox(`The run ${result.status}.`, issues));
    }
    if (result.outputs) {
      $("wf-outputs").textContent = JSON.stringify(result.outputs, null, 2);
      $("wf-outputs-box").hidden = false;
    }
  }

  // -- start -----------------------------------------------------------------------------------------------

  function start() {
    state.modeline = document.body.dataset.workflowModeline || "";
    shared().insertTask = insertTask;
    const text = $("wf-text");
    text.addEventListener("input", () => { render(); scheduleCheck(300); });
    text.addEventListener("scroll", syncScroll);
    $("wf-problems").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-line]");
      if (button) goToLine(Number(button.dataset.line));
    });
    $("wf-input").addEventListener("input", () => { state.inputTouched = true; });
    $("example").addEventListener("change", openExample);
    $("wf-download").addEventListener("click", download);
    $("wf-run").addEventListener("click", run);
    loadExamples();
    render();
    check();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
