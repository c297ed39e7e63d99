// System1 playground: a Mojodex-protocol client in plain JavaScript.
// REST with fetch (same origin), Socket.IO with the vendored socket.io client.
// Protocol: the Mojodex client protocol (see GET /openapi.json and docs/socketio.md).
"use strict";

(() => {
  const CLIENT_VERSION = "playground-1";
  const PAGE_SIZE = 50;
  const STORAGE = { token: "system1.playground.token", name: "system1.playground.name" };

  const $ = (selector) => document.querySelector(selector);

  /** A new element: h("li", {className: "x", dataset: {a: 1}}, child, "text"). */
  function h(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null) continue;
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key in node) node[key] = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  /** A client message id: 128 random bits (crypto.randomUUID needs a secure context). */
  function newMessageId() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function timeOf(iso) {
    const date = iso ? new Date(iso) : new Date();
    return Number.isNaN(date.getTime())
      ? ""
      : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function dayOf(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime())
      ? ""
      : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  // ------------------------------------------------------------------ state

  const state = {
    token: localStorage.getItem(STORAGE.token),
    name: localStorage.getItem(STORAGE.name),
    socket: null,
    // The open conversation: {kind: "chat" | "task", sessionId, executionPk?, title}
    view: null,
    // message_pk -> <li> of the open conversation (drops resent copies).
    rendered: new Map(),
    // The assistant answer being streamed (an <li>), if any.
    streaming: null,
    // The user's messages sent from this page, waiting for their user_message_reception.
    awaitingReception: [],
    // The open task's draft: {producedTextPk, versions: [{index, pk, title, text, author,
    // acked}], selected (a version index), streaming: {title, text} | null}
    draft: null,
    editing: false,
    userTasks: [],
    executionSessions: new Set(),
    loadToken: 0,
  };

  // ------------------------------------------------------------------ REST

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, fields) {
    const options = { method, headers: {} };
    let url = path;
    if (state.token) options.headers.Authorization = state.token;
    if (fields && method === "GET") {
      url += "?" + new URLSearchParams(fields).toString();
    } else if (fields) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(fields);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      throw new ApiError("The server cannot be reached. Is it running?", 0);
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      if (response.status === 401 && state.token) {
        logout("Your login has expired: please log in again.");
      }
      throw new ApiError(body.error || `The server answered ${response.status}.`, response.status);
    }
    return body;
  }

  // ------------------------------------------------------------------ log in / register

  function showAuthTab(which) {
    const login = which === "login";
    $("#tab-login").setAttribute("aria-selected", String(login));
    $("#tab-register").setAttribute("aria-selected", String(!login));
    $("#login-form").hidden = !login;
    $("#register-form").hidden = login;
    $("#auth-error").textContent = "";
  }

  async function submitAuth(event, method) {
    event.preventDefault();
    const form = event.currentTarget;
    const data = Object.fromEntries(new FormData(form));
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    $("#auth-error").textContent = "";
    try {
      const fields =
        method === "POST"
          ? { email: data.email, password: data.password, login_method: "email_password" }
          : { email: data.email, password: data.password, name: data.name };
      const user = await api(method, "/user", fields);
      state.token = user.token;
      state.name = user.name;
      localStorage.setItem(STORAGE.token, user.token);
      localStorage.setItem(STORAGE.name, user.name || "");
      form.reset();
      enterApp();
    } catch (error) {
      $("#auth-error").textContent = error.message;
    } finally {
      button.disabled = false;
    }
  }

  function logout(reason) {
    if (state.socket) {
      state.socket.removeAllListeners();
      state.socket.disconnect();
      state.socket = null;
    }
    state.token = null;
    state.name = null;
    localStorage.removeItem(STORAGE.token);
    localStorage.removeItem(STORAGE.name);
    closeConversation();
    $("#app-view").hidden = true;
    $("#auth-view").hidden = false;
    $("#logout").hidden = true;
    $("#whoami").hidden = true;
    $("#connection").hidden = true;
    showAuthTab("login");
    if (reason) $("#auth-error").textContent = reason;
  }

  function enterApp() {
    $("#auth-view").hidden = true;
    $("#app-view").hidden = false;
    $("#logout").hidden = false;
    $("#whoami").hidden = false;
    $("#whoami").textContent = state.name ? `Signed in as ${state.name}` : "";
    connectSocket();
    closeConversation();
    refreshLists();
    $("#composer-text").focus();
  }

  // ------------------------------------------------------------------ Socket.IO

  function setConnection(online, detail) {
    const pill = $("#connection");
    pill.hidden = false;
    pill.dataset.state = online ? "online" : "offline";
    pill.textContent = online ? "live" : "offline";
    pill.title = detail || (online ? "Socket.IO connected" : "Socket.IO disconnected");
  }

  function connectSocket() {
    if (typeof io !== "function") {
      showError("The socket.io client did not load.");
      return;
    }
    const socket = io({ auth: { token: state.token }, transports: ["websocket"] });
    state.socket = socket;
    socket.on("connect", () => {
      setConnection(true);
      if (state.view) joinSession(state.view.sessionId);
    });
    socket.on("disconnect", () => setConnection(false));
    socket.on("connect_error", (error) => {
      setConnection(false, error.message);
      // A refusal by the server (bad or expired token) is not retried by the client.
      if (!socket.active) logout("Your login has expired: please log in again.");
    });
    socket.on("user_message_reception", (data) => {
      if (isOpen(data)) markUserMessagesReceived();
    });
    socket.on("user_task_execution_start", (data) => {
      if (isOpen(data)) setMeta(`Task started ${timeOf(data.start_date)}`);
    });
    socket.on("mojo_token", (data) => {
      if (isOpen(data)) streamAnswer(data.text);
    });
    socket.on("draft_token", (data) => {
      if (isOpen(data)) streamDraft(data.produced_text_title, data.produced_text);
    });
    socket.on("mojo_message", (data, ack) => {
      // Acknowledge what this page shows; other sessions' messages are replayed
      // by the server when they are opened (start_session).
      if (!isOpen(data)) return;
      const item = finishAnswer(data);
      acknowledge(ack, { session_id: data.session_id, message_pk: data.message_pk }, item);
      refreshLists();
    });
    socket.on("draft_message", (data, ack) => {
      if (!isOpen(data)) return;
      const version = addDraftVersion(data);
      const item = finishAnswer(data, version && version.index);
      acknowledge(
        ack,
        { session_id: data.session_id, produced_text_version_pk: data.produced_text_version_pk },
        item,
        data.produced_text_version_pk,
      );
      refreshLists();
    });
    socket.on("user_task_execution_title", (data) => {
      if (!isOpen(data)) return;
      setTitle(data.title);
      refreshLists();
    });
    socket.on("error", (data) => {
      if (isOpen(data)) failAnswer(data.error || "The assistant could not answer.");
    });
  }

  function isOpen(data) {
    return Boolean(state.view && data && data.session_id === state.view.sessionId);
  }

  /** Join the session's room; resolves with the server's answer. */
  function joinSession(sessionId) {
    return new Promise((resolve) => {
      if (!state.socket) return resolve(null);
      state.socket
        .timeout(10000)
        .emit("start_session", { session_id: sessionId, version: CLIENT_VERSION }, (err, answer) => {
          if (err || !answer || answer.error) {
            showError((answer && answer.error) || "Could not join the session's live updates.");
            return resolve(null);
          }
          resolve(answer);
        });
    });
  }

  /** Ack an event the Mojodex way, then show it on the message (and the draft version). */
  function acknowledge(ack, answer, item, versionPk) {
    if (typeof ack === "function") ack(answer);
    if (item) setStatus(item, "acknowledged ✓", "acked");
    if (versionPk !== undefined && state.draft) {
      const version = state.draft.versions.find((v) => v.pk === versionPk);
      if (version) version.acked = true;
      renderDraft();
    }
  }

  // ------------------------------------------------------------------ lists

  async function refreshLists() {
    if (!state.token) return;
    try {
      const [tasks, executions, sessions] = await Promise.all([
        state.userTasks.length
          ? Promise.resolve({ user_tasks: state.userTasks })
          : api("GET", "/user_task", { n_user_tasks: PAGE_SIZE }),
        api("GET", "/user_task_execution", { n_user_task_executions: 20 }),
        api("GET", "/session", { n_sessions: 20 }),
      ]);
      state.userTasks = tasks.user_tasks.filter((t) => t.enabled);
      state.executionSessions = new Set(executions.user_task_executions.map((e) => e.session_id));
      renderTaskList();
      renderExecutionList(executions.user_task_executions);
      renderSessionList(sessions.sessions.filter((s) => !state.executionSessions.has(s.session_id)));
    } catch (error) {
      if (state.token) showError(error.message);
    }
  }

  function listItem(title, subtitle, current, onclick, dataset) {
    return h(
      "li",
      {},
      h(
        "button",
        { type: "button", onclick, dataset, "aria-current": current ? "true" : "false" },
        h("span", { className: "item-title" }, title),
        subtitle ? h("span", { className: "item-sub" }, subtitle) : null,
      ),
    );
  }

  function renderTaskList() {
    const list = $("#task-list");
    list.replaceChildren(
      ...state.userTasks.map((task) =>
        listItem(`${task.task_icon || "•"} ${task.task_name}`, task.task_description, false, () =>
          startTask(task), { userTaskPk: task.user_task_pk }),
      ),
    );
    if (!state.userTasks.length) list.append(h("li", { className: "empty-item" }, "No task."));
  }

  function renderSessionList(sessions) {
    const list = $("#session-list");
    list.replaceChildren(
      ...sessions.map((s) =>
        listItem(
          s.title || "Untitled chat",
          dayOf(s.last_message_date || s.creation_date),
          state.view && state.view.sessionId === s.session_id,
          () => openChat(s.session_id, s.title),
          { sessionId: s.session_id },
        ),
      ),
    );
    if (!sessions.length) list.append(h("li", { className: "empty-item" }, "No chat yet."));
  }

  function renderExecutionList(executions) {
    const list = $("#execution-list");
    list.replaceChildren(
      ...executions.map((e) => {
        const status = !e.start_date
          ? "not started"
          : e.produced_text_version_index
            ? `draft v${e.produced_text_version_index}`
            : "in progress";
        return listItem(
          `${e.icon || "•"} ${e.title || e.task_name}`,
          `${status} · ${dayOf(e.start_date) || "new"}`,
          state.view && state.view.executionPk === e.user_task_execution_pk,
          () => openExecution(e.user_task_execution_pk),
          { executionPk: e.user_task_execution_pk },
        );
      }),
    );
    if (!executions.length) list.append(h("li", { className: "empty-item" }, "No task run yet."));
  }

  function markCurrentInLists() {
    for (const button of document.querySelectorAll(".list button")) {
      const { sessionId, executionPk } = button.dataset;
      const current =
        state.view &&
        ((sessionId && sessionId === state.view.sessionId) ||
          (executionPk && Number(executionPk) === state.view.executionPk));
      button.setAttribute("aria-current", current ? "true" : "false");
    }
  }

  // ------------------------------------------------------------------ conversations

  function closeConversation() {
    state.view = null;
    state.rendered.clear();
    state.streaming = null;
    state.awaitingReception = [];
    state.draft = null;
    state.editing = false;
    state.loadToken += 1;
    showStop(false);
    $("#messages").replaceChildren();
    $("#task-form").hidden = true;
    $("#empty-hint").hidden = false;
    $("#conversation-error").hidden = true;
    setTitle("Pick a chat or start one");
    setMeta("");
    renderDraft();
  }

  function openConversation(view) {
    closeConversation();
    state.view = view;
    setTitle(view.title);
    if (view.kind === "task") {
      state.draft = { producedTextPk: null, versions: [], selected: null, streaming: null };
    }
    renderDraft();
    markCurrentInLists();
    return state.loadToken;
  }

  async function newChat() {
    try {
      const created = await api("PUT", "/session", { platform: "webapp" });
      openConversation({ kind: "chat", sessionId: created.session_id, title: "New chat" });
      setMeta("Say something to start.");
      await joinSession(created.session_id);
      $("#composer-text").focus();
      return created.session_id;
    } catch (error) {
      showError(error.message);
      return null;
    }
  }

  async function openChat(sessionId, title) {
    const token = openConversation({ kind: "chat", sessionId, title: title || "Untitled chat" });
    await loadHistory(sessionId, token);
    await joinSession(sessionId);
    $("#composer-text").focus();
  }

  async function loadHistory(sessionId, token) {
    try {
      const fields = { session_id: sessionId, n_messages: PAGE_SIZE };
      const page = await api("GET", "/message", fields);
      if (token !== state.loadToken) return;
      for (const message of page.messages.slice().reverse()) renderStored(message);
      scrollToEnd(true);
    } catch (error) {
      showError(error.message);
    }
  }

  function renderStored(stored) {
    const body = stored.message || {};
    if (stored.sender === "user") {
      addMessage("user", body.text, { messagePk: stored.message_pk, time: stored.message_date });
    } else if (stored.sender === "system") {
      addMessage("system", body.text, { messagePk: stored.message_pk, time: stored.message_date });
    } else if (stored.in_error_state) {
      addMessage("mojo error", "The assistant could not answer this message.", {
        messagePk: stored.message_pk,
        time: stored.message_date,
      });
    } else {
      const item = addMessage("mojo", body.text, {
        messagePk: stored.message_pk,
        time: stored.message_date,
      });
      if (body.produced_text_version_pk) {
        const version = addDraftVersion(body, true);
        attachDraftChip(item, version ? version.index : body.produced_text_version_index);
      }
      if (body.stopped) markStopped(item);
    }
  }

  /** Append a message <li>; kind is "user", "mojo", "system" or "mojo error". */
  function addMessage(kind, text, { messagePk, time, status, state: itemState } = {}) {
    const who = { user: "You", mojo: "Assistant", system: "Task" }[kind.split(" ")[0]];
    const item = h(
      "li",
      { className: `message ${kind}`, dataset: { state: itemState || "final" } },
      h(
        "div",
        { className: "meta" },
        h("span", { className: "who" }, who),
        h("time", {}, timeOf(time)),
        h("span", { className: "status" }, status || ""),
      ),
      h("div", { className: "bubble" }, text || ""),
    );
    if (messagePk !== undefined && messagePk !== null) {
      item.dataset.messagePk = String(messagePk);
      state.rendered.set(messagePk, item);
    }
    $("#messages").append(item);
    $("#empty-hint").hidden = true;
    scrollToEnd(kind === "user");
    return item;
  }

  function setStatus(item, text, kind) {
    const status = item.querySelector(".status");
    status.textContent = text;
    status.className = `status ${kind || ""}`;
  }

  function attachDraftChip(item, versionIndex) {
    if (!item || item.querySelector(".draft-chip")) return;
    const label = versionIndex ? `Draft v${versionIndex} →` : "Draft →";
    item.append(
      h(
        "button",
        {
          type: "button",
          className: "draft-chip",
          onclick: () => {
            if (state.draft && versionIndex) state.draft.selected = versionIndex;
            renderDraft();
            $("#draft-text").focus();
          },
        },
        label,
      ),
    );
  }

  function scrollToEnd(force) {
    const scroller = $("#message-scroller");
    const nearEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 160;
    if (force || nearEnd) scroller.scrollTop = scroller.scrollHeight;
  }

  /** The Stop button: shown from a message sent until its answer ends. */
  function showStop(visible) {
    const button = $("#stop");
    button.hidden = !visible;
    button.disabled = false;
  }

  /** Stop the answer of the open conversation (POST /assistant_turn_stop): the server
   * ends it with the text streamed so far, as a mojo_message marked stopped. */
  async function stopAnswer() {
    const sessionId = state.view && state.view.sessionId;
    if (!sessionId) return;
    $("#stop").disabled = true;
    try {
      await api("POST", "/assistant_turn_stop", { session_id: sessionId });
    } catch (error) {
      showStop(false);
      // 409: the answer ended on its own meanwhile.
      if (error.status !== 409) showError(error.message);
    }
  }

  function streamAnswer(text) {
    showStop(true);
    if (!state.streaming) {
      state.streaming = addMessage("mojo", "", { state: "streaming", status: "writing…" });
    }
    state.streaming.querySelector(".bubble").textContent = text;
    scrollToEnd(false);
  }

  /** The finished answer (mojo_message or draft_message): its <li>, once per message_pk. */
  function finishAnswer(data, versionIndex) {
    const known = state.rendered.get(data.message_pk);
    if (known) return known;  // a resent copy
    let item = state.streaming;
    state.streaming = null;
    if (!item) item = addMessage("mojo", "", {});
    item.dataset.state = "final";
    item.dataset.messagePk = String(data.message_pk);
    state.rendered.set(data.message_pk, item);
    item.querySelector(".bubble").textContent = data.text || "";
    item.querySelector("time").textContent = timeOf();
    setStatus(item, "received", "");
    showStop(false);
    if (data.stopped) markStopped(item);
    if (data.produced_text_version_pk) {
      attachDraftChip(item, versionIndex || data.produced_text_version_index);
    }
    scrollToEnd(false);
    return item;
  }

  /** A stopped answer says so beside its text (its status then shows the ack). */
  function markStopped(item) {
    item.dataset.stopped = "true";
    if (item.querySelector(".stopped")) return;
    item.querySelector(".meta").append(h("span", { className: "stopped" }, "stopped"));
    if (state.draft && state.draft.streaming) {
      state.draft.streaming = null;  // a stopped draft is not a version
      renderDraft();
    }
  }

  function failAnswer(message) {
    showStop(false);
    let item = state.streaming;
    state.streaming = null;
    if (!item) item = addMessage("mojo", "", {});
    item.className = "message mojo error";
    item.dataset.state = "final";
    item.querySelector(".bubble").textContent = message;
    setStatus(item, "failed", "failed");
    if (state.draft && state.draft.streaming) {
      state.draft.streaming = null;
      renderDraft();
    }
  }

  /** user_message_reception: the oldest message of this page still waiting for it is stored. */
  function markUserMessagesReceived() {
    const item = state.awaitingReception.shift();
    if (!item) return;
    item.dataset.state = "final";
    setStatus(item, "received ✓", "acked");
  }

  async function sendMessage(event) {
    event.preventDefault();
    const box = $("#composer-text");
    const text = box.value.trim();
    if (!text) return;
    let sessionId = state.view && state.view.sessionId;
    if (!sessionId) sessionId = await newChat();
    if (!sessionId) return;
    if (state.view.kind === "chat" && $("#conversation-title").textContent === "New chat") {
      setTitle(text.slice(0, 60));
    }
    box.value = "";
    $("#task-form").hidden = true;
    const item = addMessage("user", text, { state: "sending", status: "sending…" });
    state.awaitingReception.push(item);
    try {
      const stored = await api("PUT", "/user_message", {
        session_id: sessionId,
        message_id: newMessageId(),
        text,
      });
      if (stored.message_pk !== undefined) {
        item.dataset.messagePk = String(stored.message_pk);
        state.rendered.set(stored.message_pk, item);
      }
      if (item.dataset.state === "sending") {
        item.dataset.state = "sent";
        setStatus(item, "sent", "");
      }
      // Stop is offered while the answer is queued too (unless it came already).
      if (!item.nextElementSibling) showStop(true);
    } catch (error) {
      state.awaitingReception = state.awaitingReception.filter((waiting) => waiting !== item);
      item.dataset.state = "failed";
      setStatus(item, `not sent: ${error.message}`, "failed");
      box.value = box.value || text;
    }
  }

  // ------------------------------------------------------------------ tasks

  async function startTask(task) {
    try {
      const execution = await api("PUT", "/user_task_execution", {
        user_task_pk: task.user_task_pk,
      });
      const token = openConversation({
        kind: "task",
        sessionId: execution.session_id,
        executionPk: execution.user_task_execution_pk,
        title: task.task_name,
      });
      showTaskForm(task.task_name, task.task_description, execution.json_input);
      await joinSession(execution.session_id);
      if (token === state.loadToken) focusTaskForm();
      refreshLists();
    } catch (error) {
      showError(error.message);
    }
  }

  async function openExecution(executionPk) {
    try {
      const execution = await api("GET", "/user_task_execution", {
        user_task_execution_pk: executionPk,
      });
      const token = openConversation({
        kind: "task",
        sessionId: execution.session_id,
        executionPk,
        title: execution.title || execution.task_name,
      });
      if (!execution.start_date) {
        const task = state.userTasks.find((t) => t.user_task_pk === execution.user_task_pk);
        showTaskForm(
          execution.task_name,
          task ? task.task_description : "",
          execution.json_inputs_values || [],
        );
      } else {
        setMeta(`Started ${dayOf(execution.start_date)}`);
        await loadHistory(execution.session_id, token);
        if (token !== state.loadToken) return;
        if (execution.produced_text_pk) {
          state.draft.producedTextPk = execution.produced_text_pk;
          if (!state.draft.versions.some((v) => v.pk === execution.produced_text_version_pk)) {
            addVersion({
              index: execution.produced_text_version_index,
              pk: execution.produced_text_version_pk,
              title: execution.produced_text_title,
              text: execution.produced_text_production,
              author: "unknown",
              acked: false,
            });
          }
          state.draft.selected = execution.produced_text_version_index;
          renderDraft();
        }
      }
      await joinSession(execution.session_id);
    } catch (error) {
      showError(error.message);
    }
  }

  function showTaskForm(name, description, inputs) {
    $("#task-form-title").textContent = name;
    $("#task-form-description").textContent = description || "";
    const fields = inputs.map((input, position) => {
      const id = `task-input-${position}`;
      const multiline = input.type !== "text";
      return h(
        "div",
        { className: "stack" },
        h("label", { htmlFor: id }, input.description_for_user || input.input_name),
        h(multiline ? "textarea" : "input", {
          id,
          name: input.input_name,
          placeholder: input.placeholder || "",
          value: input.value || "",
          rows: multiline ? 2 : undefined,
          maxLength: 20000,
          dataset: { inputName: input.input_name },
        }),
      );
    });
    $("#task-inputs").replaceChildren(...fields);
    $("#task-form").hidden = false;
    $("#empty-hint").hidden = true;
    setMeta("Fill in the form to start.");
  }

  function focusTaskForm() {
    const first = $("#task-inputs [data-input-name]");
    if (first) first.focus();
  }

  async function runTask(event) {
    event.preventDefault();
    if (!state.view || state.view.kind !== "task") return;
    const form = event.currentTarget;
    const inputs = Array.from(form.querySelectorAll("[data-input-name]"), (field) => ({
      input_name: field.dataset.inputName,
      value: field.value.trim(),
    }));
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", "/user_task_execution_run", {
        user_task_execution_pk: state.view.executionPk,
        inputs,
      });
      form.hidden = true;
      const summary = inputs.map((i) => `- ${i.input_name}: ${i.value}`).join("\n");
      addMessage("system", `Task inputs:\n${summary}`, {});
      setMeta("Task started");
      $("#composer-text").focus();
    } catch (error) {
      showError(error.message);
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ the draft

  function addVersion(version) {
    const draft = state.draft;
    const existing = draft.versions.find((v) => v.pk === version.pk);
    if (existing) return existing;
    draft.versions.push(version);
    draft.versions.sort((a, b) => a.index - b.index);
    return version;
  }

  /** A draft from a draft_message (or a stored one): a new version, shown.
   * draft_message does not carry the version's index: it follows the newest known. */
  function addDraftVersion(data, fromHistory) {
    if (!state.draft) return null;
    const draft = state.draft;
    draft.producedTextPk = data.produced_text_pk || draft.producedTextPk;
    draft.streaming = null;
    const newest = draft.versions.reduce((top, v) => Math.max(top, v.index), 0);
    const version = addVersion({
      index: data.produced_text_version_index || newest + 1,
      pk: data.produced_text_version_pk,
      title: data.produced_text_title,
      text: data.produced_text,
      author: "assistant",
      acked: false,
    });
    if (!state.editing) draft.selected = version.index;
    if (!fromHistory) renderDraft();
    return version;
  }

  function streamDraft(title, text) {
    if (!state.draft) return;
    showStop(true);
    state.draft.streaming = { title, text };
    renderDraft();
  }

  function renderDraft() {
    const panel = $("#draft-panel");
    const layout = $("#app-view");
    const draft = state.draft;
    const visible = Boolean(state.view && state.view.kind === "task" && draft);
    panel.hidden = !visible;
    layout.dataset.draft = visible ? "on" : "off";
    if (!visible) return;

    const versions = draft.versions.map((v) =>
      h(
        "button",
        {
          type: "button",
          "aria-pressed": String(!draft.streaming && v.index === draft.selected),
          title: { you: "Your edit", assistant: "Written by the assistant" }[v.author] ||
            "The latest version",
          dataset: { versionIndex: v.index },
          onclick: () => {
            draft.selected = v.index;
            renderDraft();
          },
        },
        `v${v.index}${v.author === "you" ? " · you" : ""}`,
      ),
    );
    if (draft.streaming) {
      versions.push(
        h("button", { type: "button", "aria-pressed": "true", disabled: true }, "writing…"),
      );
    }
    $("#draft-versions").replaceChildren(...versions);

    const shown = draft.streaming || draft.versions.find((v) => v.index === draft.selected);
    const text = $("#draft-text");
    const status = $("#draft-status");
    if (!shown) {
      $("#draft-title").textContent = "";
      text.textContent = "The draft appears here as the assistant writes it.";
      text.classList.add("placeholder");
      status.textContent = "";
    } else {
      $("#draft-title").textContent = shown.title || "Untitled";
      text.textContent = shown.text || "";
      text.classList.remove("placeholder");
      if (draft.streaming) {
        status.dataset.state = "writing";
        status.textContent = "writing…";
      } else if (shown.author === "you") {
        status.dataset.state = "saved";
        status.textContent = `v${shown.index} saved ✓`;
      } else if (shown.acked) {
        status.dataset.state = "acked";
        status.textContent = `v${shown.index} acknowledged ✓`;
      } else {
        status.dataset.state = "";
        status.textContent = `v${shown.index}`;
      }
    }
    text.hidden = state.editing;
    $("#draft-editor").hidden = !state.editing;
    $("#draft-edit").hidden = state.editing;
    $("#draft-edit").disabled = !shown || Boolean(draft.streaming) || !draft.producedTextPk;
  }

  function editDraft() {
    const draft = state.draft;
    const shown = draft && draft.versions.find((v) => v.index === draft.selected);
    if (!shown) return;
    state.editing = true;
    $("#draft-edit-title").value = shown.title || "";
    $("#draft-edit-text").value = shown.text || "";
    renderDraft();
    $("#draft-edit-text").focus();
  }

  async function saveDraft(event) {
    event.preventDefault();
    const draft = state.draft;
    if (!draft || !draft.producedTextPk) return;
    const production = $("#draft-edit-text").value;
    const title = $("#draft-edit-title").value.trim();
    const button = event.currentTarget.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const saved = await api("POST", "/produced_text", {
        produced_text_pk: draft.producedTextPk,
        production,
        title: title || null,
      });
      const version = addVersion({
        index: saved.produced_text_version_index,
        pk: saved.produced_text_version_pk,
        title: title || (draft.versions.at(-1) || {}).title,
        text: production,
        author: "you",
        acked: false,
      });
      draft.selected = version.index;
      state.editing = false;
      renderDraft();
      refreshLists();
    } catch (error) {
      showError(error.message);
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ small things

  function setTitle(text) {
    $("#conversation-title").textContent = text;
    if (state.view) state.view.title = text;
  }

  function setMeta(text) {
    $("#conversation-meta").textContent = text;
  }

  let errorTimer = null;
  function showError(message) {
    const banner = $("#conversation-error");
    banner.textContent = message;
    banner.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => {
      banner.hidden = true;
    }, 8000);
  }

  function init() {
    $("#tab-login").addEventListener("click", () => showAuthTab("login"));
    $("#tab-register").addEventListener("click", () => showAuthTab("register"));
    $("#login-form").addEventListener("submit", (e) => submitAuth(e, "POST"));
    $("#register-form").addEventListener("submit", (e) => submitAuth(e, "PUT"));
    $("#logout").addEventListener("click", () => logout());
    $("#new-chat").addEventListener("click", () => newChat());
    $("#composer").addEventListener("submit", sendMessage);
    $("#stop").addEventListener("click", stopAnswer);
    $("#composer-text").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("#composer").requestSubmit();
      }
    });
    $("#task-form").addEventListener("submit", runTask);
    $("#draft-edit").addEventListener("click", editDraft);
    $("#draft-cancel").addEventListener("click", () => {
      state.editing = false;
      renderDraft();
    });
    $("#draft-editor").addEventListener("submit", saveDraft);
    if (state.token) enterApp();
    else showAuthTab("login");
  }

  init();
})();
