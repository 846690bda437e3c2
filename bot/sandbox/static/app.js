// The sandbox page: draws what /api/view returns and sends what a person does to /api/*.
// Plain JavaScript on purpose: no build step, nothing fetched from the internet.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  world: null,
  texts: {},
  person: null,
  chat: null,
  thread: null,
  view: null,
  reply: null, // {id, from, text}
  edit: null, // {id}
  files: [],
  seen: {}, // "person:chat:thread" -> last message id seen
  met: new Set(), // people whose chats the page has shown at least once
  rendered: new Map(), // message id -> {key, el}
  stick: true, // the conversation is scrolled to its end and should stay there
  loading: false,
  dirty: false,
  // The mail pane of a person who writes by e-mail.
  mail: { folder: "INBOX", uid: null, box: null, open: null, reply: null },
};

const t = (key) => state.texts[key] || key;
// Each language by its own name, as language pickers do.
const LANGUAGE_NAMES = { ru: "Русский", en: "English" };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "html") node.innerHTML = value; // only server-escaped HTML comes here
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options = {}) {
  // The server refuses a change without this header: a page of another site cannot send it.
  const headers = { ...(options.headers || {}), "X-Sandbox": "1" };
  const response = await fetch(path, { ...options, headers });
  let body = {};
  try {
    body = await response.json();
  } catch (error) {
    body = {};
  }
  if (!response.ok) {
    const message = body.error || response.statusText;
    toast(`${t("error")}: ${message}`, true);
    throw new Error(message);
  }
  return body;
}

const postJson = (path, body) =>
  api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

function toast(text, error = false) {
  const node = el("div", { class: error ? "toast error" : "toast" }, text);
  $("toasts").append(node);
  // Long enough to be read: an answer to a press may run to 200 characters on two lines.
  const shown = Math.min(12000, (error ? 6000 : 3500) + 40 * text.length);
  setTimeout(() => node.remove(), shown);
}

function alertBox(text) {
  $("alert-text").textContent = text;
  $("alert").showModal();
}

// ------------------------------------------------------------------ world and language

async function loadWorld(lang) {
  const query = lang ? `?lang=${encodeURIComponent(lang)}` : "";
  state.world = await api(`/api/world${query}`);
  state.texts = state.world.texts;
  document.documentElement.lang = state.world.lang;
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-text]")) node.textContent = t(node.dataset.text);
  for (const node of document.querySelectorAll("[data-label]")) node.setAttribute("aria-label", t(node.dataset.label));
  for (const node of document.querySelectorAll("[data-label]")) node.title = t(node.dataset.label);
  for (const node of document.querySelectorAll("[data-title]")) node.title = t(node.dataset.title);
  for (const node of document.querySelectorAll("[data-placeholder]")) node.placeholder = t(node.dataset.placeholder);
  const people = $("person");
  people.replaceChildren(
    ...state.world.people.map((p) =>
      el(
        "option",
        { value: p.id },
        p.mail
          ? `${p.name} — ${t("role_" + p.role)}, ✉️ ${t("by_mail")} (${p.language})`
          : `${p.name} — ${t("role_" + p.role)} (${p.language})` +
            (p.account ? ` · ${t("account")} ${p.account}` : "")
      )
    )
  );
  const langs = $("lang");
  langs.replaceChildren(
    ...state.world.locales.map((code) => el("option", { value: code }, LANGUAGE_NAMES[code] || code))
  );
  langs.value = state.world.lang;
  drawClock(state.world.clock);
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const ids = state.world.people.map((p) => p.id);
  const person = Number(params.get("person"));
  state.person = ids.includes(person) ? person : ids[0];
  state.chat = params.has("chat") ? Number(params.get("chat")) : null;
  state.thread = params.get("thread") ? Number(params.get("thread")) : null;
  state.mail.folder = params.get("folder") === "Sent" ? "Sent" : "INBOX";
  state.mail.uid = params.get("uid") ? Number(params.get("uid")) : null;
  $("person").value = state.person;
}

function writeHash() {
  if (mailPerson()) {
    const params = new URLSearchParams({ person: state.person, folder: state.mail.folder });
    if (state.mail.uid !== null) params.set("uid", state.mail.uid);
    history.replaceState(null, "", `#${params}`);
    return;
  }
  const params = new URLSearchParams({ person: state.person, chat: state.chat ?? "" });
  if (state.thread !== null) params.set("thread", state.thread);
  history.replaceState(null, "", `#${params}`);
}

// The person shown, when they write by e-mail (then the page shows their mailbox).
function mailPerson() {
  const me = state.world && state.world.people.find((p) => p.id === state.person);
  return me && me.mail ? me : null;
}

function defaultChat() {
  const me = state.world.people.find((p) => p.id === state.person);
  if (me && me.role === "staff" && state.view) {
    const general = state.view.chats.find((c) => c.kind === "general" || c.kind === "group");
    if (general) return [general.chat, general.thread];
  }
  return [state.person, null];
}

// ------------------------------------------------------------------ drawing

async function refresh() {
  if (state.loading) {
    state.dirty = true;
    return;
  }
  state.loading = true;
  try {
    do {
      state.dirty = false;
      showMailPane(Boolean(mailPerson()));
      if (mailPerson()) {
        await refreshMail();
        continue;
      }
      const params = new URLSearchParams({ person: state.person });
      if (state.chat !== null) params.set("chat", state.chat);
      if (state.thread !== null) params.set("thread", state.thread);
      const view = await api(`/api/view?${params}`);
      const firstLook = state.chat === null;
      state.view = view;
      if (firstLook) {
        [state.chat, state.thread] = defaultChat();
        if (state.chat !== view.chat || state.thread !== view.thread) {
          state.dirty = true;
          continue;
        }
      }
      state.chat = view.chat;
      state.thread = view.thread;
      writeHash();
      draw(view);
    } while (state.dirty);
  } catch (error) {
    console.error(error);
  } finally {
    state.loading = false;
  }
}

const seenKey = (chat, thread) => `${state.person}:${chat}:${thread ?? ""}`;

function draw(view) {
  drawClock(view.clock);
  const current = view.chats.find((c) => c.chat === view.chat && c.thread === view.thread);
  if (!state.met.has(state.person)) {
    // What was there before this person first looked is not news to them.
    state.met.add(state.person);
    for (const c of view.chats) state.seen[seenKey(c.chat, c.thread)] = c.last_id;
  }
  if (current) state.seen[seenKey(current.chat, current.thread)] = current.last_id;
  const list = $("chat-list");
  list.replaceChildren(
    ...view.chats.map((c) => {
      const isCurrent = c === current;
      const unseen = c.last_id > (state.seen[seenKey(c.chat, c.thread)] ?? 0);
      const kind = c.kind === "private" ? t("private") : c.kind === "topic" ? (c.closed ? "🔒 " + t("topic_closed") : "# " + t("topic")) : c.kind === "general" ? "# " + t("general") : "";
      return el(
        "li",
        {},
        el(
          "button",
          {
            class: "chat " + c.kind,
            type: "button",
            "aria-current": isCurrent ? "true" : "false",
            "data-chat": c.chat,
            "data-thread": c.thread ?? "",
            onclick: () => openChat(c.chat, c.thread),
          },
          el("span", { class: "title" }, c.title, " ", el("span", { class: "kind" }, kind)),
          el("span", { class: "preview" }, c.preview),
          unseen && !isCurrent ? el("span", { class: "badge", role: "img", "aria-label": t("unread") }) : null
        )
      );
    })
  );
  if (current) {
    $("chat-title").textContent = current.title;
    $("chat-sub").textContent =
      current.kind === "private" ? t("private") : current.kind === "topic" ? `# ${t("topic")}` : current.kind === "general" ? `# ${t("general")}` : "";
  }
  drawMessages(view);
}

function drawMessages(view) {
  const box = $("messages");
  const nearBottom = state.stick;
  const keep = new Map();
  const nodes = [];
  let newMine = false;
  for (const message of view.messages) {
    const key = JSON.stringify(message);
    const old = state.rendered.get(message.id);
    if (old && old.key === key) {
      keep.set(message.id, old);
      nodes.push(old.el);
      continue;
    }
    const node = bubble(message);
    if (!old && message.mine) newMine = true;
    keep.set(message.id, { key, el: node });
    nodes.push(node);
  }
  state.rendered = keep;
  if (!nodes.length) {
    const privateChat = view.chat === view.person;
    nodes.push(el("p", { class: "empty" }, privateChat ? t("empty_chat") : t("empty_topic")));
  }
  // Only touch the DOM where something changed, so focus and scroll stay where they were.
  const same = nodes.length === box.children.length && nodes.every((n, i) => box.children[i] === n);
  if (!same) box.replaceChildren(...nodes);
  if (nearBottom || newMine) {
    box.scrollTop = box.scrollHeight;
    state.stick = true;
  }
}

function keepAtEnd() {
  // Images arrive after the text: stay at the end if that is where the reader was.
  if (state.stick) $("messages").scrollTop = $("messages").scrollHeight;
}

function bubble(m) {
  if (m.service) return el("div", { class: "msg service", id: `m-${m.id}` }, m.service);
  const classes = ["msg", m.mine ? "mine" : "", m.by_bot ? "bot" : ""].join(" ");
  const node = el("article", { class: classes, id: `m-${m.id}`, "data-id": m.id });
  if (!m.mine) node.append(el("div", { class: "from" }, m.from));
  if (m.reply) {
    node.append(
      el(
        "button",
        { class: "quote", type: "button", onclick: () => jumpTo(m.reply.id) },
        el("b", {}, m.reply.from),
        m.reply.text
      )
    );
  }
  if (m.photo) node.append(el("img", { class: "photo", src: m.photo, alt: m.html ? "" : "🖼", onload: keepAtEnd }));
  if (m.document) {
    if (m.document.image) node.append(el("img", { class: "photo", src: m.document.url, alt: m.document.name, onload: keepAtEnd }));
    node.append(el("a", { class: "doc", href: m.document.url, target: "_blank", rel: "noopener" }, `📄 ${m.document.name}`));
  }
  if (m.sticker) node.append(el("div", { class: "sticker", role: "img", "aria-label": m.sticker }, m.sticker));
  if (m.voice !== undefined) {
    const s = m.voice;
    node.append(el("div", { class: "voice" }, `🎤 ${t("voice_note")} ${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`));
  }
  if (m.html) node.append(el("div", { class: "text", html: m.html }));
  const foot = el(
    "div",
    { class: "foot" },
    el("button", { type: "button", class: "reply-action", onclick: () => startReply(m) }, t("reply")),
    m.editable ? el("button", { type: "button", class: "edit-action", onclick: () => startEdit(m) }, t("edit")) : null,
    m.reactions ? el("span", { class: "reactions" }, m.reactions.join(" ")) : null,
    m.edited ? el("span", { class: "edited" }, t("edited")) : null,
    el("time", {}, m.time)
  );
  node.append(foot);
  if (m.keyboard) {
    node.append(
      el(
        "div",
        { class: "keyboard" },
        m.keyboard.map((row) =>
          el(
            "div",
            { class: "krow" },
            row.map((b) =>
              b.url
                ? el("a", { href: b.url, target: "_blank", rel: "noopener noreferrer" }, b.text + " ↗")
                : el("button", { type: "button", onclick: (event) => press(m, b, event.currentTarget) }, b.text)
            )
          )
        )
      )
    );
  }
  for (const spoiler of node.querySelectorAll(".spoiler")) {
    spoiler.addEventListener("click", () => spoiler.classList.add("shown"));
  }
  return node;
}

function jumpTo(id) {
  const node = $(`m-${id}`);
  if (!node) return;
  node.scrollIntoView({ block: "center", behavior: "smooth" });
  node.classList.remove("flash");
  void node.offsetWidth;
  node.classList.add("flash");
}

function drawClock(clock) {
  let now = clock.now;
  try {
    // The bot's time in the service's zone, written the way the page's language writes dates.
    now = new Intl.DateTimeFormat(state.world ? state.world.lang : undefined, {
      weekday: "short", day: "numeric", month: "short", year: "numeric",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: clock.zone,
    }).format(new Date(clock.iso));
  } catch (error) {
    // A browser without that zone keeps the server's own wording.
  }
  $("clock-now").textContent = `${now} (${clock.zone})`;
  $("clock-now").title = clock.iso;
  const pill = $("clock-state");
  pill.textContent = `${clock.open ? t("open") : t("closed")} ${clock.hours}`;
  pill.classList.toggle("off", !clock.open);
  $("clock-shift").textContent = clock.shifted ? `${t("shifted")} ${clock.shifted}` : "";
}

// ------------------------------------------------------------------ the mail pane

function showMailPane(on) {
  $("mail-pane").hidden = !on;
  $("chats").hidden = on;
  $("conversation").hidden = on;
}

async function refreshMail() {
  const person = state.person;
  const box = await api(`/api/mail?person=${encodeURIComponent(person)}`);
  if (person !== state.person) return; // someone else was chosen meanwhile
  state.mail.box = box;
  drawClock(box.clock);
  drawMailbox(box);
  const open = state.mail.open;
  if (state.mail.uid !== null && !(open && open.uid === state.mail.uid && open.folder === state.mail.folder)) {
    await openMail(state.mail.folder, state.mail.uid);
  }
  writeHash();
}

function drawMailbox(box) {
  $("mail-address").textContent = `${box.name} <${box.address}>`;
  $("mail-hint").textContent = t("mail_hint").replace("{name}", box.name).replace("{support}", box.support);
  $("mail-to").textContent = box.support;
  const unread = box.folders.INBOX.filter((m) => !m.seen).length;
  for (const tab of document.querySelectorAll("#mail-pane [data-folder]")) {
    const current = tab.dataset.folder === state.mail.folder;
    tab.setAttribute("aria-selected", current ? "true" : "false");
    const count = tab.querySelector(".count");
    if (count) count.textContent = unread ? String(unread) : "";
  }
  const mails = box.folders[state.mail.folder] || [];
  const list = $("mail-list");
  if (!mails.length) {
    list.replaceChildren(el("li", { class: "empty" }, t("mail_empty")));
    return;
  }
  list.replaceChildren(
    ...mails.map((m) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: m.seen ? "mail" : "mail unseen",
            "data-uid": m.uid,
            "aria-current": m.uid === state.mail.uid ? "true" : "false",
            onclick: () => openMail(state.mail.folder, m.uid),
          },
          el(
            "span",
            { class: "line" },
            el("span", { class: "who" }, m.folder === "Sent" ? `${t("mail_to")}: ${m.to}` : m.from),
            el("time", { datetime: m.iso }, m.date)
          ),
          el("span", { class: "subject" }, (m.files ? "📎 " : "") + (m.subject || t("no_subject"))),
          el("span", { class: "preview" }, m.preview),
          m.seen ? null : el("span", { class: "badge", role: "img", "aria-label": t("unread") })
        )
      )
    )
  );
}

function chooseFolder(folder) {
  state.mail.folder = folder;
  state.mail.uid = null;
  state.mail.open = null;
  $("mail-reader").hidden = true;
  $("mail-none").hidden = !$("mail-compose").hidden;
  if (state.mail.box) drawMailbox(state.mail.box);
  writeHash();
}

// Text with its web addresses as links (built as nodes: nothing in a mail becomes HTML).
function linkified(text) {
  const nodes = [];
  let last = 0;
  for (const found of text.matchAll(/https?:\/\/[^\s<>"']+/g)) {
    const url = found[0].replace(/[.,;:!?)\]]+$/, "");
    nodes.push(text.slice(last, found.index));
    nodes.push(el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, url));
    last = found.index + url.length;
  }
  nodes.push(text.slice(last));
  return nodes;
}

async function openMail(folder, uid) {
  const person = state.person;
  const params = new URLSearchParams({ person, folder, uid });
  let m;
  try {
    m = await api(`/api/mail/message?${params}`);
  } catch (error) {
    state.mail.uid = null; // gone (another world came back): show the list only
    return;
  }
  if (person !== state.person) return;
  state.mail.folder = folder;
  state.mail.uid = uid;
  state.mail.open = m;
  drawReader(m);
  if (state.mail.box) drawMailbox(state.mail.box);
  writeHash();
  // Opened is read, as in a mail client; the change redraws the list.
  if (!m.seen) await postJson("/api/mail/seen", { person, folder, uid });
}

function drawReader(m) {
  const reader = $("mail-reader");
  const named = (name, address) => (address && address !== name ? `${name} <${address}>` : name);
  const head = el(
    "dl",
    { class: "headers" },
    el("dt", {}, t("mail_from")),
    el("dd", {}, named(m.from, m.from_address)),
    el("dt", {}, t("mail_to")),
    el("dd", {}, named(m.to, m.to_address)),
    el("dt", {}, t("mail_date")),
    el("dd", {}, el("time", { datetime: m.iso }, m.date))
  );
  const parts = [
    el("h3", { class: "subject" }, m.subject || t("no_subject")),
    head,
    el("div", { class: "mail-text" }, linkified(m.text)),
  ];
  if (m.links.length) {
    parts.push(
      el(
        "section",
        { class: "mail-links" },
        el("h4", {}, t("mail_links")),
        el(
          "div",
          { class: "keyboard" },
          m.links.map((link) =>
            el("a", { href: link.url, target: "_blank", rel: "noopener noreferrer", title: link.url }, `${link.text} ↗`)
          )
        ),
        el("p", { class: "hint" }, t("mail_links_hint"))
      )
    );
  }
  if (m.attachments.length) {
    parts.push(
      el(
        "section",
        { class: "mail-files" },
        el("h4", {}, t("mail_files")),
        m.attachments.map((file) =>
          el(
            "div",
            { class: "file" },
            file.image ? el("img", { class: "photo", src: file.url, alt: file.name }) : null,
            el("a", { class: "doc", href: file.url, target: "_blank", rel: "noopener" }, `📎 ${file.name} (${kilobytes(file.size)})`)
          )
        )
      )
    );
  }
  parts.push(el("button", { type: "button", id: "mail-reply", onclick: () => startCompose(m) }, t("reply")));
  reader.replaceChildren(...parts);
  reader.hidden = false;
  $("mail-none").hidden = true;
  $("mail-main").scrollTop = 0;
}

const kilobytes = (size) => (size < 1024 ? `${size} B` : `${Math.ceil(size / 1024)} KB`);

function startCompose(reply) {
  state.mail.reply = reply ? { folder: reply.folder, uid: reply.uid } : null;
  const form = $("mail-compose");
  form.hidden = false;
  $("mail-none").hidden = true;
  $("mail-file").value = "";
  $("mail-files-text").textContent = "";
  if (reply) {
    const subject = reply.subject || "";
    $("mail-subject").value = /^re:/i.test(subject) ? subject : `Re: ${subject}`;
    // Quoted below, as mail clients do: the desk keeps only the new words.
    const who = reply.from_address ? `${reply.from} <${reply.from_address}>` : reply.from;
    const header = t("quote_header").replace("{date}", reply.date).replace("{name}", who);
    const quoted = reply.text.split("\n").map((line) => `> ${line}`).join("\n");
    $("mail-body").value = `\n\n${header}\n${quoted}\n`;
  } else {
    state.mail.uid = null;
    state.mail.open = null;
    $("mail-reader").hidden = true;
    $("mail-subject").value = "";
    $("mail-body").value = "";
    writeHash();
  }
  form.scrollIntoView({ block: "nearest" });
  if (reply) {
    $("mail-body").focus();
    $("mail-body").setSelectionRange(0, 0);
  } else {
    $("mail-subject").focus();
  }
}

function closeCompose() {
  $("mail-compose").hidden = true;
  state.mail.reply = null;
  $("mail-subject").value = "";
  $("mail-body").value = "";
  $("mail-file").value = "";
  $("mail-files-text").textContent = "";
  $("mail-none").hidden = !$("mail-reader").hidden;
}

async function sendMail() {
  const subject = $("mail-subject").value;
  const text = $("mail-body").value;
  const files = Array.from($("mail-file").files);
  if (!subject.trim() && !text.trim() && !files.length) return;
  const form = new FormData();
  form.set("person", state.person);
  form.set("subject", subject);
  form.set("text", text);
  if (state.mail.reply) {
    form.set("reply_folder", state.mail.reply.folder);
    form.set("reply_uid", state.mail.reply.uid);
  }
  for (const file of files) form.append("file", file, file.name);
  const button = $("mail-send");
  button.disabled = true;
  try {
    await api("/api/mail/send", { method: "POST", body: form });
  } finally {
    button.disabled = false;
  }
  toast(t("mail_sent").replace("{address}", state.mail.box ? state.mail.box.support : ""));
  closeCompose();
}

// ------------------------------------------------------------------ acting

function openChat(chat, thread) {
  state.chat = chat;
  state.thread = thread;
  state.rendered = new Map();
  state.stick = true;
  cancelContext();
  refresh().then(() => $("text").focus());
}

async function press(message, button, node) {
  node.disabled = true;
  try {
    const { query_id } = await postJson("/api/press", {
      person: state.person,
      chat: state.chat,
      message_id: message.id,
      data: button.data,
    });
    const answer = await api(`/api/answer/${encodeURIComponent(query_id)}`);
    if (answer.text) answer.alert ? alertBox(answer.text) : toast(answer.text);
  } finally {
    node.disabled = false;
  }
}

function startReply(m) {
  state.edit = null;
  state.reply = m;
  $("context-text").textContent = `${t("replying_to")} ${m.mine ? "" : m.from}: ${(m.text || "").slice(0, 80)}`;
  $("context-bar").hidden = false;
  $("text").focus();
}

function startEdit(m) {
  state.reply = null;
  state.edit = m;
  $("context-text").textContent = t("editing");
  $("context-bar").hidden = false;
  $("text").value = m.text || "";
  $("send").textContent = t("save");
  $("text").focus();
}

function cancelContext() {
  state.reply = null;
  if (state.edit) $("text").value = "";
  state.edit = null;
  $("context-bar").hidden = true;
  $("send").textContent = t("send");
}

function clearFiles() {
  state.files = [];
  $("file").value = "";
  $("files-bar").hidden = true;
}

async function submit(extra = {}) {
  const text = $("text").value;
  if (state.edit) {
    if (!text.trim()) return;
    await postJson("/api/edit", { person: state.person, chat: state.chat, message_id: state.edit.id, text });
    $("text").value = "";
    cancelContext();
    return;
  }
  if (!text.trim() && !state.files.length && !extra.kind) return;
  const form = new FormData();
  form.set("person", state.person);
  form.set("chat", state.chat);
  if (state.thread !== null) form.set("thread", state.thread);
  if (state.reply) form.set("reply_to", state.reply.id);
  if (extra.kind) form.set("kind", extra.kind);
  else {
    form.set("text", text);
    for (const file of state.files) form.append("file", file, file.name);
  }
  await api("/api/send", { method: "POST", body: form });
  if (!extra.kind) {
    $("text").value = "";
    clearFiles();
  }
  cancelContext();
}

function toggleCommands(show) {
  const menu = $("command-menu");
  const commands = (state.view && state.view.commands) || [];
  const open = show ?? menu.hidden;
  if (!open || !commands.length) {
    menu.hidden = true;
    return;
  }
  menu.replaceChildren(
    ...commands.map((c) =>
      el(
        "button",
        {
          type: "button",
          onclick: async () => {
            menu.hidden = true;
            $("text").value = `/${c.command}`;
            await submit();
            $("text").focus();
          },
        },
        el("span", { class: "cmd" }, `/${c.command}`),
        c.description
      )
    )
  );
  menu.hidden = false;
  menu.querySelector("button").focus();
}

function connect() {
  const source = new EventSource("/api/events");
  source.onopen = () => {
    $("offline").hidden = true;
    refresh();
  };
  source.onmessage = () => refresh();
  source.onerror = () => {
    $("offline").hidden = false;
  };
}

function wire() {
  $("person").addEventListener("change", () => {
    state.person = Number($("person").value);
    state.chat = null;
    state.thread = null;
    state.rendered = new Map();
    cancelContext();
    state.mail = { folder: "INBOX", uid: null, box: null, open: null, reply: null };
    $("mail-reader").hidden = true;
    closeCompose();
    refresh();
  });
  $("lang").addEventListener("change", async () => {
    localStorage.setItem("sandbox-lang", $("lang").value);
    await loadWorld($("lang").value);
    $("person").value = state.person;
    state.rendered = new Map();
    refresh();
  });
  for (const button of document.querySelectorAll("[data-step]")) {
    button.addEventListener("click", async () => drawClock(await postJson("/api/clock", { step: button.dataset.step })));
  }
  $("messages").addEventListener("scroll", () => {
    const box = $("messages");
    state.stick = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape") {
      cancelContext();
      toggleCommands(false);
    }
  });
  $("context-cancel").addEventListener("click", cancelContext);
  $("files-cancel").addEventListener("click", clearFiles);
  $("file").addEventListener("change", () => {
    state.files = Array.from($("file").files);
    $("files-text").textContent = `${t("attached")}: ${state.files.map((f) => f.name).join(", ")}`;
    $("files-bar").hidden = !state.files.length;
    $("text").focus();
  });
  $("commands-button").addEventListener("click", () => toggleCommands());
  $("command-menu").addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      toggleCommands(false);
      $("commands-button").focus();
    }
  });
  $("sticker-button").addEventListener("click", () => submit({ kind: "sticker" }));
  $("mail-new").addEventListener("click", () => startCompose(null));
  $("mail-cancel").addEventListener("click", closeCompose);
  $("mail-compose").addEventListener("submit", (event) => {
    event.preventDefault();
    sendMail();
  });
  $("mail-compose").addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeCompose();
  });
  $("mail-file").addEventListener("change", () => {
    const names = Array.from($("mail-file").files).map((f) => f.name);
    $("mail-files-text").textContent = names.length ? `${t("attached")}: ${names.join(", ")}` : "";
  });
  for (const tab of document.querySelectorAll("#mail-pane [data-folder]")) {
    tab.addEventListener("click", () => chooseFolder(tab.dataset.folder));
  }
  $("voice-button").addEventListener("click", () => submit({ kind: "voice" }));
}

async function start() {
  // Controls answer from the first moment; what they need arrives before they can be used.
  wire();
  await loadWorld(localStorage.getItem("sandbox-lang"));
  readHash();
  await refresh();
  connect();
  document.body.dataset.ready = "true";
}

start();
