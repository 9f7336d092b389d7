// The web page of `multifield serve`: builds the form from GET /v1/model, asks POST /v1/predict?attention=true,
// and shows the labels and the attended words. Everything shown is set with textContent (never as markup).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const state = { info: null, truth: null, exampleId: null };

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // -- the API key ------------------------------------------------------------------------------------
  // A server reachable from other machines answers 401 without its key. The page then asks for it once and
  // keeps it in this variable only: never in localStorage, sessionStorage or a cookie, so it is gone with the tab.
  let apiKey = null;

  function withKey(options) {
    const headers = Object.assign({}, (options && options.headers) || {});
    if (apiKey !== null) headers.Authorization = `Bearer ${apiKey}`;
    return Object.assign({}, options || {}, { headers });
  }

  async function authorizedFetch(url, options) {
    let response = await fetch(url, withKey(options));
    if (response.status === 401) {
      const given = window.prompt("This server needs an API key (it stays in this page only):");
      if (given === null || given.trim() === "") return response;
      apiKey = given.trim();
      response = await fetch(url, withKey(options));
      if (response.status === 401) apiKey = null;  // wrong: asked again on the next request
    }
    return response;
  }

  async function requestJSON(url, options) {
    const response = await authorizedFetch(url, options);
    let body = null;
    try { body = await response.json(); } catch (error) { body = null; }
    if (!response.ok) {
      const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    return body;
  }

  // -- the form ---------------------------------------------------------------------------------------
  function buildForm(info) {
    const box = $("fields");
    box.replaceChildren();
    for (const [name, field] of Object.entries(info.fields)) {
      const wrap = element("div", "field");
      const label = element("label");
      label.htmlFor = `field-${name}`;
      const kind = field.kind === "items" ? "list, comma-separated" : "text";
      const reads = `${kind} · reads ${field.max_tokens} tokens${field.attention ? " · attention" : ""}`;
      label.append(element("span", "name", name), element("span", "meta", reads));
      const long = field.kind === "text" && (field.attention || field.max_tokens > 24);
      const input = element(long ? "textarea" : "input");
      if (long) input.rows = Math.min(7, Math.max(2, Math.round(field.max_tokens / 28)));
      else input.type = "text";
      input.id = `field-${name}`;
      input.name = name;
      input.dataset.kind = field.kind;
      input.spellcheck = false;
      input.placeholder = "optional";
      wrap.append(label, input);
      box.append(wrap);
    }
  }

  function readRecord() {
    const record = { [state.info.id_field]: state.exampleId || "web" };
    for (const input of $("fields").querySelectorAll("input, textarea")) {
      const value = input.value.trim();
      if (!value) continue;
      record[input.name] = input.dataset.kind === "items"
        ? value.split(",").map((item) => item.trim()).filter(Boolean)
        : input.value;
    }
    return record;
  }

  function fillForm(record) {
    for (const input of $("fields").querySelectorAll("input, textarea")) {
      const value = record[input.name];
      input.value = value == null ? "" : Array.isArray(value) ? value.join(", ") : String(value);
    }
  }

  function forgetExample() {
    state.truth = null;
    state.exampleId = null;
    $("example-note").hidden = true;
  }

  async function loadExample(index) {
    const button = $("example-button");
    button.disabled = true;
    try {
      const example = await requestJSON(Number.isInteger(index) ? `/v1/example?index=${index}` : "/v1/example");
      fillForm(example.record);
      state.exampleId = example.record[state.info.id_field] || null;
      state.truth = example.labels;
      const title = example.record.title || state.exampleId || "";
      const truth = example.labels ? ` — true ${labelField()}: ${example.labels.join(", ")}` : "";
      const note = $("example-note");
      note.textContent = `Example ${example.index + 1} of ${example.count}: ${title}${truth}`;
      note.title = example.source;
      note.hidden = false;
    } catch (error) {
      showError(`No example: ${error.message}`);
      return false;
    } finally {
      button.disabled = false;
    }
    return true;
  }

  // -- the answer -------------------------------------------------------------------------------------
  function labelField() {
    const config = state.info && state.info.config;
    return (config && config.labels && config.labels.field) || "labels";
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
    $("placeholder").hidden = true;
  }

  function renderLabels(prediction) {
    const box = $("labels");
    box.replaceChildren();
    const predicted = new Set(prediction.labels);
    const truth = state.truth ? new Set(state.truth) : null;
    const thresholds = state.info.thresholds || {};
    const ranked = Object.entries(prediction.scores).sort((a, b) => b[1] - a[1]);
    let shown = 0;
    for (const [label, score] of ranked) {
      const must = predicted.has(label) || (truth && truth.has(label));
      if (!must && (score < 0.05 || shown >= 10)) continue;
      shown += 1;
      let mark = "", css = "";
      if (truth) {
        if (predicted.has(label)) [mark, css] = truth.has(label) ? ["✓ right", "right"] : ["✗ wrong", "wrong"];
        else if (truth.has(label)) [mark, css] = ["missed", "missed"];
      }
      const chosen = predicted.has(label) ? " predicted" : "";
      const name = element("div", `label${chosen} ${css}`.trim(), label);
      name.dataset.label = label;
      const track = element("div", `track${chosen}`);
      const fill = element("div", `fill${chosen}`);
      fill.style.width = `${(score * 100).toFixed(1)}%`;
      track.append(fill);
      if (label in thresholds) {
        const tick = element("div", "threshold");
        tick.style.left = `calc(${(thresholds[label] * 100).toFixed(1)}% - 1px)`;
        tick.title = `threshold ${thresholds[label].toFixed(2)}`;
        track.append(tick);
      }
      track.title = `${label}: ${score.toFixed(4)}`;
      box.append(name, track, element("div", "score", score.toFixed(2)), element("div", `mark ${css}`.trim(), mark));
    }
  }

  // Tokens located in the text as written and merged back into words, as explain.py's word_spans does:
  // tokens that touch form one word ("Twenty-two"), except punctuation at either end ("Park," is two).
  const isPunctuation = (token) => !/[\p{L}\p{N}]/u.test(token);

  function wordSpans(text, pairs) {
    const located = [];
    let cursor = 0;
    for (const [token, weight] of pairs) {
      const start = token ? text.indexOf(token, cursor) : -1;
      if (start < 0) { located.push({ start: null, end: null, tokens: [[token, weight]] }); continue; }
      located.push({ start, end: start + token.length, tokens: [[token, weight]] });
      cursor = start + token.length;
    }
    const groups = [];
    for (const item of located) {
      const last = groups[groups.length - 1];
      const previous = last && last[last.length - 1];
      if (item.start !== null && previous && previous.end === item.start) last.push(item);
      else groups.push([item]);
    }
    const spans = [];
    for (const group of groups) {
      const head = [], tail = [];
      while (group.length > 1 && isPunctuation(group[0].tokens[0][0])) head.push(group.shift());
      while (group.length > 1 && isPunctuation(group[group.length - 1].tokens[0][0])) tail.unshift(group.pop());
      const core = { start: group[0].start, end: group[group.length - 1].end, tokens: group.flatMap((item) => item.tokens) };
      spans.push(...head, core, ...tail);
    }
    for (const span of spans) span.weight = span.tokens.reduce((sum, [, weight]) => sum + weight, 0);
    return spans;
  }

  function wordNode(word, span, peak) {
    const node = element("span", "w", word);
    const alpha = peak > 0 ? Math.min(1, span.weight / peak) * 0.85 : 0;
    node.style.backgroundColor = `rgba(255, 170, 0, ${alpha.toFixed(3)})`;
    node.title = span.tokens.length === 1
      ? span.weight.toFixed(4)
      : `${span.weight.toFixed(4)} = ${span.tokens.map(([token, weight]) => `${token} ${weight.toFixed(4)}`).join(" + ")}`;
    node.dataset.weight = span.weight.toFixed(6);
    node.dataset.tokens = JSON.stringify(span.tokens);
    return node;
  }

  function wordsNode(text, pairs) {
    const box = element("div", "words");
    if (!pairs.length && !text) {
      box.classList.add("empty");
      box.textContent = "(empty)";
      return { box, spans: [] };
    }
    const spans = wordSpans(text, pairs);
    const peak = Math.max(0, ...spans.map((span) => span.weight));
    let cursor = 0;
    for (const span of spans) {
      if (span.start === null) { box.append(" ", wordNode(span.tokens[0][0], span, peak)); continue; }
      box.append(text.slice(cursor, span.start), wordNode(text.slice(span.start, span.end), span, peak));
      cursor = span.end;
    }
    const rest = text.slice(cursor);
    if (rest.trim()) {
      const unread = element("span", "unread", rest);
      unread.title = `not read: beyond the ${pairs.length} tokens the model reads of this field`;
      box.append(unread);
    } else {
      box.append(rest);
    }
    return { box, spans };
  }

  // The deletion test run after training (GET /v1/model's attention_check): whether the shading shows
  // the words the prediction rests on.
  function checkSentence(check) {
    const words = `${check.k} most attended words`;
    if (check.random > 0) {
      const ratio = (check.top / check.random).toFixed(1);
      return `On validation, removing its ${words} lowered the predicted labels' scores ${ratio}x as much as removing ${check.k} at random.`;
    }
    return `On validation, removing its ${words} lowered the predicted labels' scores by ${check.top.toFixed(4)} on average.`;
  }

  function renderAttention(prediction, record) {
    const box = $("attention");
    box.replaceChildren();
    const attention = prediction.attention || {};
    if (!Object.keys(attention).length) {
      box.append(element("p", "note", "This model reads no field with attention."));
      return;
    }
    for (const [name, pairs] of Object.entries(attention)) {
      const value = record[name];
      const text = value == null ? "" : Array.isArray(value) ? value.join(", ") : String(value);
      const section = element("div", "read");
      section.dataset.field = name;
      const header = element("div", "read-name");
      header.append(element("span", "name", name));
      // One list per head, or the field's own list for one head; an empty field with several heads has empty lists.
      const heads = pairs.length && (pairs[0].length === 0 || Array.isArray(pairs[0][0])) ? pairs : [pairs];
      const chips = element("div", "top-words");
      heads.forEach((headPairs, index) => {
        const { box: words, spans } = wordsNode(text, headPairs);
        if (heads.length > 1) {
          const row = element("div", "head");
          row.append(element("span", "head-name", `head ${index + 1}`), words);
          section.append(row);
        } else {
          section.append(words);
        }
        if (index === 0) {
          const top = spans
            .filter((span) => span.start !== null && !isPunctuation(text.slice(span.start, span.end)))
            .sort((a, b) => b.weight - a.weight)
            .slice(0, 5);
          for (const span of top) {
            chips.append(element("span", "chip", `${text.slice(span.start, span.end)} ${span.weight.toFixed(2)}`));
          }
        }
      });
      header.append(chips);
      section.prepend(header);
      const check = ((state.info && state.info.attention_check) || {})[name];
      if (check) section.append(element("p", "note check", checkSentence(check)));
      box.append(section);
    }
  }

  async function predict(event) {
    event.preventDefault();
    const button = $("predict-button");
    const record = readRecord();
    button.disabled = true;
    button.textContent = "Predicting…";
    $("error").hidden = true;
    const started = performance.now();
    try {
      const body = await requestJSON("/v1/predict?attention=true", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ records: [record] }),
      });
      const prediction = body.predictions[0];
      $("timing").textContent = `answered in ${Math.round(performance.now() - started)} ms`;
      renderLabels(prediction);
      renderAttention(prediction, record);
      $("placeholder").hidden = true;
      $("result").hidden = false;
    } catch (error) {
      showError(error.message);
    } finally {
      button.disabled = false;
      button.textContent = "Predict";
    }
  }

  async function start() {
    try {
      state.info = await requestJSON("/v1/model");
    } catch (error) {
      showError(`The model's description could not be read: ${error.message}`);
      return;
    }
    const info = state.info;
    document.title = `${info.name} · multifield`;
    $("model-name").textContent = info.name;
    const facts = [`${info.labels.length} labels`, `${Object.keys(info.fields).length} fields`];
    if (info.validation && typeof info.validation.micro_f1 === "number") {
      facts.push(`validation micro-F1 ${info.validation.micro_f1.toFixed(3)}`);
    }
    $("model-facts").replaceChildren(...facts.map((fact) => element("span", "", fact)));
    $("labels-heading").textContent = labelField().charAt(0).toUpperCase() + labelField().slice(1);
    buildForm(info);
    $("predict-button").disabled = false;
    const form = $("record-form");
    form.addEventListener("submit", predict);
    form.addEventListener("input", forgetExample);
    form.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
    });
    $("clear-button").addEventListener("click", () => { fillForm({}); forgetExample(); });
    $("example-button").addEventListener("click", () => loadExample());
    // Offer examples only when the server has some for this model's fields.
    const probe = await authorizedFetch("/v1/example?index=0").catch(() => null);
    $("example-button").hidden = !(probe && probe.ok);
    // /?example=N opens with example N filled in and predicted (a link to show someone).
    const wanted = new URLSearchParams(window.location.search).get("example");
    if (wanted !== null && /^\d+$/.test(wanted) && await loadExample(Number(wanted))) form.requestSubmit();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
