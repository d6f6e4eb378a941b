/* lexcoder review desk: plain JavaScript, no build step, nothing from a CDN.
 *
 * Keyboard first: one key per action (K keep, F flip, S skip, D flag, U undo, N note, C codebook, ? help),
 * never while typing in a text box. Every action carries an id made here, so a retry after a lost
 * connection is recorded once; the screen moves on only after the server acknowledged the commit.
 * Data from the server is put into the page with textContent, never as HTML.
 */
"use strict";
(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const CSRF = ($('meta[name="csrf"]') || {}).content || "";
  const SCREEN = document.body.dataset.screen;
  const timings = (window.__deskTimings = []);  // ms from a key press to the next item on screen

  // ---------------------------------------------------------------------------------------------------
  // talking to the desk
  // ---------------------------------------------------------------------------------------------------
  class DeskError extends Error {
    constructor(message, status) { super(message); this.status = status; }
  }

  function newId() {  // an action's id: retries of the same action reuse it
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function request(method, url, body) {
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await fetch(url, {
          method, credentials: "same-origin",
          headers: method === "POST" ? { "Content-Type": "application/json", "X-CSRF-Token": CSRF } : {},
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (err) {
        if (attempt >= 6) {
          throw new DeskError("The desk cannot be reached: is `lexcoder review` still running? Nothing was lost " +
                              "that the desk had confirmed.", 0);
        }
        flash("Connection lost — retrying…", true);
        await sleep(250 * 2 ** attempt);
        continue;
      }
      if (response.ok) return response.json();
      let message = response.statusText;
      try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
      if (response.status === 401 && /Sign in/.test(message)) {
        location.href = "/signin?next=" + encodeURIComponent(location.pathname + location.search);
      }
      if (response.status >= 500 && attempt < 6) {
        flash("Not saved yet — retrying…", true);
        await sleep(250 * 2 ** attempt);
        continue;
      }
      throw new DeskError(message, response.status);
    }
  }

  let flashTimer = null;
  function flash(message, error = false) {
    const box = $("#status");
    if (!box) return;
    box.textContent = message;
    box.classList.toggle("error", error);
    box.classList.add("show");
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => box.classList.remove("show"), error ? 6000 : 1600);
  }

  // ---------------------------------------------------------------------------------------------------
  // small DOM helpers (text only)
  // ---------------------------------------------------------------------------------------------------
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }
  const pretty = (name) => String(name || "").replace(/_/g, " ");
  const fixed = (x, digits = 2) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
  const meaning = (value) => (value === "1" ? "1 · applies" : value === "0" ? "0 · does not apply" : value);

  function typing(target) {
    return !!target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  // ---------------------------------------------------------------------------------------------------
  // keyboard: one map per screen; nothing fires while typing in a text box
  // ---------------------------------------------------------------------------------------------------
  const keymap = {};

  function openOverlay() { return $$(".overlay").find((o) => !o.hidden) || null; }
  function closeOverlays() {
    const open = openOverlay();
    if (open) open.hidden = true;
    return !!open;
  }
  function toggleOverlay(id) {
    const overlay = $("#" + id);
    if (!overlay) return;
    const show = overlay.hidden;
    closeOverlays();
    overlay.hidden = !show;
  }

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      if (closeOverlays()) { event.preventDefault(); return; }
      if (typing(event.target)) { event.target.blur(); event.preventDefault(); }
      return;
    }
    if (typing(event.target) || event.isComposing) return;  // a note is being written: no shortcut at all
    if (event.altKey || event.metaKey || (event.ctrlKey && event.key.toLowerCase() !== "z")) return;
    let key = event.key === " " ? "space" : event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (event.ctrlKey && key === "z") key = "u";
    if (key === "?") { event.preventDefault(); toggleOverlay("overlay-help"); return; }
    if (key === "c" && $("#overlay-codebook")) { event.preventDefault(); toggleOverlay("overlay-codebook"); return; }
    if (openOverlay()) return;
    const handler = keymap[key];
    if (handler) {
      event.preventDefault();
      handler(event);
    }
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    if (action === "help") toggleOverlay("overlay-help");
    else if (action === "close") closeOverlays();
    else if (action === "signout") request("POST", "/api/signout", {}).then(() => { location.href = "/signin"; });
    else if (clickActions[action]) clickActions[action](button);
    else return;
    if (button.tagName === "BUTTON") button.blur();  // a focused button would answer Space/Enter too
  });
  $$(".overlay").forEach((overlay) => overlay.addEventListener("click", (event) => {
    if (event.target === overlay) overlay.hidden = true;
  }));
  const clickActions = {};

  function focusNote() {
    const note = $("#note");
    if (note) note.focus();
  }

  // timing of key press → next item painted: the frame that draws the new item runs the animation-frame
  // callback, paints, then runs the timeout queued from it
  let pressedAt = null;
  function markPainted() {
    if (pressedAt === null) return;
    const start = pressedAt;
    pressedAt = null;
    requestAnimationFrame(() => setTimeout(() => timings.push(performance.now() - start), 0));
  }
  // a key handler that starts the press → paint timer at the key press (event.timeStamp shares
  // performance.now()'s clock), so handler delays count too
  const press = (fn) => (event) => { pressedAt = event && event.timeStamp ? event.timeStamp : performance.now(); fn(); };

  // one decision or undo of a work screen: one request at a time (a second press while one is under way is
  // ignored), acknowledged with a flash; a decision clears the note. `done` is the flash's word, `show` paints
  // the answer. Returns nothing: errors are flashed.
  async function send(state, url, body, done, show) {
    if (state.pending) return;
    state.pending = true;
    const undo = url === "/api/undo";
    try {
      const data = await request("POST", url, body);
      if (undo && !data.ack) { flash("Nothing to undo"); pressedAt = null; return; }
      if (!undo) $("#note").value = "";
      flash(done + " ✓");
      show(data);
    } catch (err) {
      pressedAt = null;
      flash(err.message, true);
    } finally {
      state.pending = false;
    }
  }

  // ---------------------------------------------------------------------------------------------------
  // shared parts of the work screens
  // ---------------------------------------------------------------------------------------------------
  function renderProgress(counts, noun) {
    if (!counts || !$("#progress-bar")) return;
    const decided = counts.total - counts.open;
    const share = counts.total ? (100 * decided) / counts.total : 0;
    $("#progress-bar span").style.width = share.toFixed(1) + "%";
    $("#progress-bar").setAttribute("aria-valuenow", share.toFixed(0));
    const waiting = counts.conflict + counts.flagged;
    $("#progress-text").textContent = `${decided} of ${counts.total} ${noun} decided` +
      (waiting ? ` · ${waiting} waiting for the adjudicator` : "");
  }

  function renderRecent(recent, page) {
    const list = $("#recent");
    if (!list) return;
    list.replaceChildren();
    if (!recent || !recent.length) {
      list.append(el("li", { class: "muted", text: "Nothing yet: your decisions appear here (and stay after a reload)." }));
      return;
    }
    for (const r of recent) {
      let what = r.action;
      if (r.action === "flip" || r.action === "change") what = `${r.action} → ${r.values[r.label]}`;
      if (r.action === "keep") what = `keep ${r.human_value}`;
      if (r.action === "code") what = "coded " + Object.entries(r.values).filter(([, v]) => v !== "0").map(([k, v]) => v === "1" ? pretty(k) : `${pretty(k)}=${v}`).join(", ");
      if (r.action === "code" && !Object.values(r.values).some((v) => v !== "0")) what = "coded: nothing applies";
      list.append(el("li", { "data-item": r.item_id },
        el("a", { href: `/${page}?item=${encodeURIComponent(r.item_id)}` },
          el("span", { class: "what " + r.action, text: what }), " ", r.label ? el("span", { class: "muted", text: pretty(r.label) }) : null,
          el("span", { class: "snippet", text: r.text }))));
    }
  }

  function doneCard(title, text) {
    return [el("div", { class: "done-card" }, el("h2", { text: title }), el("p", { class: "muted", text }))];
  }

  const reasonOf = (item) => (item.why ? item.why.reason : item.reason);

  function itemHeader(item, extra = []) {
    return el("div", { class: "meta" },
      item.label ? el("span", { class: "chip label", text: pretty(item.label) }) : null,
      ...extra,
      el("span", { class: "chip", title: "id in the data", text: item.id }));
  }

  // why an audit row is in the queue (item.why, item.copies: lexcoder.review.why): every part from the
  // data (texts, ids, n-grams) goes in as text
  function section(title, note, ...children) {
    return el("section", { class: "why-part" }, el("h3", {}, title), note ? el("p", { class: "muted small", text: note }) : null, ...children);
  }

  function textList(texts, fallback) {
    if (!texts) return el("p", { class: "why-raw", text: fallback });
    return el("ul", { class: "why-texts" }, texts.map((t) => el("li", {},
      el("span", { class: "chip", title: "id in the data", text: t.id }), " ",
      el("span", { class: "sim", title: "cosine similarity to this text", text: fixed(t.similarity) }), " ",
      el("q", { text: t.text }))));
  }

  // a conflicting-duplicate group: every copy's id with its code, copies of the same code and text on one
  // row (a group of 70 boilerplate paragraphs stays a few rows), a text that differs shown under its ids
  function copiesPart(item) {
    const byCode = (a, b) => (a.code < b.code ? 1 : a.code > b.code ? -1 : 0);
    const variants = [];
    for (const c of item.copies) {
      let v = variants.find((x) => x.code === c.human_value && x.text === c.text);
      if (!v) variants.push((v = { code: c.human_value, text: c.text, ids: [] }));
      v.ids.push(c.id);
    }
    variants.sort(byCode);
    const codes = new Map();  // (a Map keeps the order: an object would put "0" before "1")
    for (const v of variants) codes.set(v.code, (codes.get(v.code) || 0) + v.ids.length);
    const counts = Array.from(codes, ([code, k]) => `${code} in ${k}`).join(", ");
    const rows = variants.map((v) => el("tr", {},
      el("td", {}, el("span", { class: "code " + (v.code === "1" ? "one" : "zero"), text: v.code })),
      el("td", { class: "num", text: String(v.ids.length) }),
      el("td", {}, el("div", { class: "ids" }, v.ids.map((id) => el("span", { class: "chip", "data-copy": id, "data-code": v.code, text: id }))),
        v.text === item.text ? null : el("div", { class: "copy-text", text: v.text }))));
    return section(`Conflicting duplicate ${item.why.group}: ${item.copies.length} copies, coded ${counts}`,
      "Your decision codes every copy; each copy's correction goes to the ledger with its own id. A copy's text is shown where it differs from this item's.",
      el("table", { class: "copies" }, el("thead", {}, el("tr", {}, el("th", { text: "code" }), el("th", { class: "num", text: "copies" }), el("th", { text: "ids" }))),
        el("tbody", {}, rows)));
  }

  function whyPanel(item, variable) {
    const why = item.why;
    if (!why) return null;
    const parts = [];
    if (why.block || why.blocks.length) {
      parts.push(section(["Cluster of flags", why.block ? el("span", { class: "data", text: ` · ${why.block}` }) : null], null,
        ...why.blocks.map((b) => el("p", { class: "block-note", text: b }))));
    }
    if (item.copies && item.copies.length) parts.push(copiesPart(item));
    else if (item.member_of && why.group) {
      parts.push(section(`One copy of conflicting duplicate ${why.group}`, "The queue shows the group as one item: " +
        "a decision here codes this copy only.", el("p", { class: "why-raw", text: why.copies.map((c) => `${c.code}: ${c.ids.join(", ")}`).join(" · ") })));
    }
    if (why.terms && why.terms.length) {
      parts.push(section("Words that drove the model", variable
        ? "n-grams of this text pushing the model toward the class it suggests (contribution to its log-odds)"
        : "n-grams of this text with the largest part in the model's view: + toward 1 (applies), − toward 0",
        el("div", { class: "terms" }, why.terms.map((t) => el("span", { class: "term " + (t.weight >= 0 ? "pos" : "neg") },
          el("span", { text: t.term }), el("small", { text: (t.weight >= 0 ? "+" : "−") + Math.abs(t.weight).toFixed(2) }))))));
    }
    if (why.similar) {
      parts.push(section(`Similar texts confidently coded ${why.similar.code}`, "texts the model learnt from", textList(why.similar.texts)));
    }
    if (why.evidence_text) parts.push(section("Evidence", null, el("p", { class: "why-raw", text: why.evidence_text })));
    if (why.nearest_other || why.nearest_text) {
      const other = variable ? `given ${item.suggested_value}` : `coded ${1 - Number(item.human_value)}`;
      parts.push(section(`Nearest texts ${other}`, "the most similar texts coded the other way (word similarity)",
        textList(why.nearest_other, why.nearest_text)));
    }
    return parts.length ? el("div", { class: "why", id: "why" }, parts) : null;
  }

  // ---------------------------------------------------------------------------------------------------
  // screen: audit queue (one (text, label) decision per screen)
  // ---------------------------------------------------------------------------------------------------
  function reviewScreen() {
    const state = { item: null, pending: false, counts: null };
    const filters = () => {
      const form = new FormData($("#filters"));
      const number = (v) => (v === null || v === "" ? null : Number(v));
      return { label: form.get("label") || null, score_min: number(form.get("score_min")), score_max: number(form.get("score_max")) };
    };
    const query = () => {
      const f = filters();
      const params = new URLSearchParams({ kind: "audit" });
      for (const [k, v] of Object.entries(f)) if (v !== null) params.set(k, v);
      return params.toString();
    };

    function isVariable(item) { return item && item.fields[0].kind === "variable"; }

    function render(item) {
      const box = $("#item");
      state.item = item;
      box.dataset.itemId = item ? item.item_id : "";
      $("#actions").classList.toggle("muted", !item);
      if (!item) {
        box.replaceChildren(...doneCard("Nothing left for you in this queue",
          "Every row is decided, held by another coder, or filtered out. Change the filters, or see the progress page."));
        markPainted();
        return;
      }
      const variable = isVariable(item);
      const total = state.counts ? state.counts.total : null;
      const facts = el("div", { class: "facts" },
        el("div", { class: "fact" }, el("span", { class: "k", text: "Human code" }),
          el("span", { class: "v " + (item.human_value === "1" ? "one" : "zero"), text: variable ? item.human_value : meaning(item.human_value) })),
        el("div", { class: "fact" }, el("span", { class: "k", text: variable ? "Model probability of this class" : "Model probability that it applies" }),
          el("span", { class: "v prob" }, fixed(item.model_probability),
            el("span", { class: "track" }, el("span", { class: "fill" })))),
        variable
          ? el("div", { class: "fact" }, el("span", { class: "k", text: "Model suggests" }), el("span", { class: "v", text: item.suggested_value || "–" }))
          : el("div", { class: "fact" }, el("span", { class: "k", text: "Score (probability of the human code)" }), el("span", { class: "v", text: fixed(item.score) })),
        reasonOf(item) ? el("div", { class: "reason" }, el("strong", { text: "Why it is here: " }), reasonOf(item)) : null);
      const grouped = item.copies && item.copies.length;
      const children = [itemHeader(item, [el("span", { class: "chip", text: `rank ${Math.round(item.rank)}${total ? " of " + total : ""}` }),
        grouped ? el("span", { class: "chip conflict", text: `${item.copies.length} copies` }) : null]),
        el("div", { class: "text", text: item.text }), facts, whyPanel(item, variable)];
      if (variable) {
        children.push(el("div", { class: "classes actions" }, item.fields[0].values.map((value, i) =>
          el("button", { type: "button", "data-action": "class", "data-value": value, class: value === item.human_value ? "keep" : "" },
            value, i < 9 ? el("kbd", { text: String(i + 1) }) : null))));
      }
      if (item.mine) {
        const value = item.mine.values[item.label];
        children.push(el("p", { class: "mine", text: `You decided this row before: ${item.mine.action}${value !== undefined ? " → " + value : ""}. A new decision replaces yours (not anyone else's).` }));
      }
      box.replaceChildren(...children.filter(Boolean));
      const fill = $(".track .fill", box);
      if (fill) fill.style.width = `${Math.round(100 * (item.model_probability || 0))}%`;
      const all = grouped ? `All ${item.copies.length} copies → ` : "";
      $('[data-action="keep"]').firstChild.textContent = grouped ? `${all}${item.human_value} ` : `Keep ${item.human_value} `;
      $('[data-action="flip"]').firstChild.textContent = variable ? `${all || "Change to "}${item.suggested_value} ` : grouped ? `${all}${1 - Number(item.human_value)} ` : `Flip to ${1 - Number(item.human_value)} `;
      markPainted();
    }

    function show(data) {
      if (data.counts) { state.counts = data.counts; renderProgress(data.counts, "rows"); }
      if (data.recent) renderRecent(data.recent, "review");
      render(data.item);
    }

    async function act(action, values) {
      if (!state.item) return;
      const body = { item_id: state.item.item_id, action, action_id: newId(), note: $("#note").value, ...filters() };
      if (values) body.values = values;
      const done = { keep: "Kept", flip: "Flipped", change: "Changed", skip: "Skipped", flag: "Flagged for discussion" }[action];
      await send(state, "/api/act", body, done, show);
    }
    const undo = () => send(state, "/api/undo", { kind: "audit", action_id: newId() }, "Undone", show);

    keymap.k = press(() => act("keep"));
    keymap.f = press(() => act(isVariable(state.item) ? "change" : "flip"));
    keymap.s = keymap.space = press(() => act("skip"));
    keymap.d = press(() => act("flag"));
    keymap.u = keymap.Backspace = press(undo);
    keymap.n = focusNote;
    for (let i = 1; i <= 9; i++) {
      keymap[String(i)] = press(() => {
        if (!isVariable(state.item)) { pressedAt = null; return; }
        const value = state.item.fields[0].values[i - 1];
        if (value !== undefined) act("change", { [state.item.label]: value });
        else pressedAt = null;
      });
    }
    Object.assign(clickActions, {
      keep: () => act("keep"), flip: () => act(isVariable(state.item) ? "change" : "flip"), skip: () => act("skip"),
      flag: () => act("flag"), undo,
      class: (button) => act("change", { [state.item.label]: button.dataset.value }),
    });
    $("#filters").addEventListener("change", () => request("GET", "/api/next?" + query()).then(show).catch((e) => flash(e.message, true)));
    $("#filters").addEventListener("submit", (event) => event.preventDefault());

    const chosen = new URLSearchParams(location.search).get("item");
    request("GET", chosen ? `/api/item/${encodeURIComponent(chosen)}` : "/api/next?" + query()).then(show)
      .catch((err) => flash(err.message, true));
  }

  // ---------------------------------------------------------------------------------------------------
  // the label fields of a new text or an adjudication: every label of the codebook on one screen
  // ---------------------------------------------------------------------------------------------------
  function fieldEditor(onChange) {
    const editor = { fields: [], values: {}, votes: {}, suggestion: null };

    editor.set = (fields, values, votes = {}, suggestion = null) => {
      editor.fields = fields;
      editor.values = { ...values };
      editor.votes = votes;
      editor.suggestion = suggestion;
      editor.render();
    };

    editor.toggle = (index) => {
      const field = editor.fields[index];
      if (!field) return;
      const current = editor.values[field.name];
      if (field.kind === "label") editor.values[field.name] = current === "1" ? "0" : "1";
      else {
        const at = field.values.indexOf(current);
        editor.values[field.name] = field.values[(at + 1) % field.values.length];
      }
      editor.render();
      onChange && onChange();
    };

    editor.missing = () => editor.fields.filter((f) => editor.values[f.name] === undefined).map((f) => f.name);

    editor.render = () => {
      const box = $("#fields");
      box.replaceChildren(...editor.fields.map((field, i) => {
        const value = editor.values[field.name];
        const votes = editor.votes[field.name] || [];
        const disagree = new Set(votes.map((v) => v.value)).size > 1;
        const suggestion = editor.suggestion ? editor.suggestion[field.name] : undefined;
        const name = el("span", { class: "name" }, i < 9 ? el("kbd", { text: String(i + 1) }) : null,
          el("span", {}, pretty(field.name),
            suggestion !== undefined ? el("small", { class: "suggest", text: field.kind === "label" ? ` · model ${fixed(suggestion)}` : ` · model: ${suggestion}` }) : null));
        const right = field.kind === "label"
          ? el("span", { class: "value" + (value === undefined ? " muted" : ""), text: value === undefined ? "choose" : value })
          : el("span", { class: "classes" }, field.values.map((v) => el("button", { type: "button", class: v === value ? "on" : "", "data-field": field.name, "data-value": v, text: v })));
        const node = el("div", { class: "field" + (value === "1" || (field.kind === "variable" && value !== undefined) ? " on" : "") + (value === undefined ? " unset" : ""),
                                 "data-index": i, "data-name": field.name, role: "button", tabindex: "-1" },
          el("div", {}, name, votes.length ? el("div", { class: "votes" }, votes.map((v) => el("span", { class: "vote" + (disagree ? " disagree" : ""), text: `${v.coder}: ${v.value}` }))) : null),
          right);
        return node;
      }));
    };

    $("#fields").addEventListener("click", (event) => {
      const classButton = event.target.closest("button[data-field]");
      if (classButton) {
        editor.values[classButton.dataset.field] = classButton.dataset.value;
        editor.render();
        return;
      }
      const field = event.target.closest(".field");
      if (field && editor.fields[Number(field.dataset.index)].kind === "label") editor.toggle(Number(field.dataset.index));
    });
    for (let i = 1; i <= 9; i++) keymap[String(i)] = () => editor.toggle(i - 1);
    return editor;
  }

  // ---------------------------------------------------------------------------------------------------
  // screen: coding new texts
  // ---------------------------------------------------------------------------------------------------
  function codeScreen() {
    const state = { item: null, pending: false };
    const editor = fieldEditor();

    function render(item) {
      const box = $("#item");
      state.item = item;
      box.dataset.itemId = item ? item.item_id : "";
      if (!item) {
        box.replaceChildren(...doneCard("No texts left for you to code",
          "Every text is coded or held by another coder. New texts are added with lexcoder review RUN_DIR --texts FILE."));
        $("#fields").replaceChildren();
        markPainted();
        return;
      }
      box.replaceChildren(...[itemHeader(item, [el("span", { class: "chip", text: "Which labels apply to this text?" })]),
        el("div", { class: "text", text: item.text }),
        item.mine ? el("p", { class: "mine", text: "You coded this text before; saving replaces your codes (not anyone else's)." }) : null]
        .filter(Boolean));
      const start = {};
      for (const f of item.fields) if (f.kind === "label") start[f.name] = "0";
      editor.set(item.fields, item.mine && item.mine.values ? { ...start, ...item.mine.values } : start, {}, item.suggestion || null);
      markPainted();
    }

    function show(data) {
      if (data.counts) renderProgress(data.counts, "texts");
      if (data.recent) renderRecent(data.recent, "code");
      render(data.item);
    }

    async function act(action) {
      if (!state.item) return;
      if (action === "code" && editor.missing().length) {
        pressedAt = null;
        flash("Choose a value for " + editor.missing().map(pretty).join(", "), true);
        return;
      }
      const body = { item_id: state.item.item_id, action, action_id: newId(), note: $("#note").value };
      if (action === "code") body.values = editor.values;
      await send(state, "/api/act", body, { code: "Saved", skip: "Skipped", flag: "Flagged for discussion" }[action], show);
    }
    const undo = () => send(state, "/api/undo", { kind: "code", action_id: newId() }, "Undone", show);

    keymap.Enter = press(() => act("code"));
    keymap.s = keymap.space = press(() => act("skip"));
    keymap.d = press(() => act("flag"));
    keymap.u = keymap.Backspace = press(undo);
    keymap.n = focusNote;
    Object.assign(clickActions, { save: () => act("code"), skip: () => act("skip"), flag: () => act("flag"), undo });
    const chosen = new URLSearchParams(location.search).get("item");
    request("GET", chosen ? `/api/item/${encodeURIComponent(chosen)}` : "/api/next?kind=code").then(show)
      .catch((err) => flash(err.message, true));
  }

  // ---------------------------------------------------------------------------------------------------
  // screen: adjudication
  // ---------------------------------------------------------------------------------------------------
  function adjudicateScreen() {
    if (!$("#item")) return;
    const state = { item: null, pending: false };
    const editor = fieldEditor();

    function coderValues(index) {
      const coders = (state.item ? state.item.coders : []).filter((c) => c.role === "coder" && Object.keys(c.values).length);
      return coders[index] ? coders[index].values : null;
    }

    function render(item) {
      const box = $("#item");
      state.item = item;
      box.dataset.itemId = item ? item.item_id : "";
      if (!item) {
        box.replaceChildren(...doneCard("Nothing to adjudicate", "No disagreements and no flagged items are waiting."));
        $("#fields").replaceChildren();
        markPainted();
        return;
      }
      const votes = {}, start = {};
      for (const f of item.fields) {
        votes[f.name] = item.coders.filter((c) => c.role === "coder" && c.values[f.name] !== undefined)
          .map((c) => ({ coder: c.coder, value: c.values[f.name] }));
        const distinct = new Set(votes[f.name].map((v) => v.value));
        if (distinct.size === 1) start[f.name] = [...distinct][0];
        else if (item.kind === "audit" && !distinct.size) start[f.name] = item.human_value;
        else if (f.kind === "label" && !distinct.size) start[f.name] = "0";
      }
      const flags = item.coders.filter((c) => c.action === "flag").map((c) => c.coder);
      const why = item.status === "flagged" ? `Flagged for discussion by ${flags.join(", ")}` : "The coders disagree";
      box.replaceChildren(...[
        itemHeader(item, [el("span", { class: "chip" + (item.status === "flagged" ? " flagged" : " conflict"), text: why })]),
        el("div", { class: "text", text: item.text }),
        item.kind === "audit" ? el("div", { class: "facts" },
          el("div", { class: "fact" }, el("span", { class: "k", text: "Human code in the data" }), el("span", { class: "v", text: item.human_value })),
          el("div", { class: "fact" }, el("span", { class: "k", text: "Model probability" }), el("span", { class: "v", text: fixed(item.model_probability) })),
          reasonOf(item) ? el("div", { class: "reason" }, el("strong", { text: "Why it was in the queue: " }), reasonOf(item)) : null) : null,
        item.kind === "audit" ? whyPanel(item, item.fields[0].kind === "variable") : null,
        item.notes.length ? el("div", { class: "notes" }, el("h3", { text: "Notes" }),
          el("ul", {}, item.notes.map((n) => el("li", {}, el("strong", { text: n.coder + ": " }), n.note)))) : null].filter(Boolean));
      editor.set(item.fields, start, votes);
      markPainted();
    }

    function show(data) {
      if (data.counts) {
        const list = $("#adjudication-counts");
        list.replaceChildren(...[["Disagreements", data.counts.conflict], ["Flagged", data.counts.flagged], ["Adjudicated", data.counts.resolved]]
          .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
      }
      render(data.item);
    }

    async function resolve() {
      if (!state.item) return;
      if (editor.missing().length) { pressedAt = null; flash("Choose a value for " + editor.missing().map(pretty).join(", "), true); return; }
      await send(state, "/api/resolve", { item_id: state.item.item_id, action: "resolve", action_id: newId(),
                                          values: editor.values, note: $("#note").value }, "Resolved", show);
    }
    const undo = () => send(state, "/api/undo", { role: "adjudicator", action_id: newId() }, "Undone", (data) => render(data.item));

    const take = (index) => {
      const values = coderValues(index);
      if (!values) { flash("There is no such coder's code here", true); return; }
      editor.set(editor.fields, { ...editor.values, ...values }, editor.votes);
    };
    keymap.Enter = () => { pressedAt = performance.now(); resolve(); };
    keymap.a = () => take(0);
    keymap.b = () => take(1);
    keymap.u = keymap.Backspace = undo;
    keymap.n = focusNote;
    Object.assign(clickActions, { save: resolve, "take-a": () => take(0), "take-b": () => take(1), undo });
    request("GET", "/api/adjudication").then(show).catch((err) => flash(err.message, true));
  }

  // ---------------------------------------------------------------------------------------------------
  // screens: progress, codebook, sign-in
  // ---------------------------------------------------------------------------------------------------
  function progressScreen() {
    $$("[data-grow]").forEach((span) => { span.style.flexGrow = span.dataset.grow; });
    const interval = (ci) => (ci ? ` [${fixed(ci[0])}, ${fixed(ci[1])}]` : "");
    request("GET", "/api/agreement").then((data) => {
      const box = $("#agreement");
      if (!data.rows.length) {
        box.replaceChildren(el("p", { class: "muted", text: "No item has been coded by two coders yet. Set a share of double-coded items above (owner)." }));
        return;
      }
      const head = el("tr", {}, ["Queue", "Label", "items", "agreement", "Cohen's κ", "Krippendorff's α", "Gwet's AC1"]
        .map((h, i) => el("th", { class: i >= 2 ? "num" : "", text: h })));
      const rows = data.rows.map((r) => el("tr", {},
        el("td", { text: r.kind === "audit" ? "audit queue" : "new texts" }), el("td", { text: pretty(r.label) }),
        el("td", { class: "num", text: String(r.n) }),
        ...["percent_agreement", "cohen_kappa", "krippendorff_alpha", "gwet_ac1"].map((k) =>
          el("td", { class: "num" }, fixed(r[k]), el("span", { class: "ci", text: interval(r[k + "_ci"]) })))));
      box.replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
    }).catch((err) => { $("#agreement").textContent = err.message; });

    const form = $("#settings-form");
    if (form) form.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(form);
      request("POST", "/api/settings", { double_share: Number(data.get("double_share")), lease_minutes: Number(data.get("lease_minutes")),
                                         suggestions: data.get("suggestions") === "on" })
        .then(() => { flash("Settings saved ✓"); setTimeout(() => location.reload(), 400); })
        .catch((err) => flash(err.message, true));
    });
    clickActions["export-ledger"] = (button) => {
      button.disabled = true;
      request("POST", "/api/export/ledger", {}).then((r) => {
        const stale = r.stale.length ? ` ${r.stale.length} decision(s) were not written because the code changed since it was shown: ` +
          r.stale.map((s) => `${s.id} / ${pretty(s.label)}`).join("; ") + "." : "";
        $("#export-result").textContent = `${r.ledger}: ${r.added} new entr${r.added === 1 ? "y" : "ies"} (${r.flipped} changing a code), ` +
          `${r.already} already recorded.${stale}`;
        flash("Ledger written ✓");
      }).catch((err) => flash(err.message, true)).finally(() => { button.disabled = false; });
    };
  }

  function codebookScreen() {
    const form = $("#codebook-form");
    if (!form) return;
    const entries = JSON.parse($("#codebook-data").textContent);
    const fill = () => {
      const entry = entries[form.label.value] || {};
      form.definition.value = entry.definition || "";
      form.examples.value = entry.examples || "";
    };
    form.label.addEventListener("change", fill);
    fill();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      request("POST", "/api/codebook", { label: form.label.value, definition: form.definition.value, examples: form.examples.value })
        .then(() => { flash("Saved ✓"); setTimeout(() => location.reload(), 300); })
        .catch((err) => flash(err.message, true));
    });
  }

  function signinScreen() {
    const form = $("#signin-form");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const next = new URLSearchParams(location.search).get("next") || "/review";
      request("POST", "/api/signin", { name: form.name.value })
        .then(() => { location.href = /^\/[a-z]/.test(next) ? next : "/review"; })
        .catch((err) => flash(err.message, true));
    });
  }

  const screens = { review: reviewScreen, code: codeScreen, adjudicate: adjudicateScreen, progress: progressScreen,
                    codebook: codebookScreen, signin: signinScreen };
  if (screens[SCREEN]) screens[SCREEN]();
})();
