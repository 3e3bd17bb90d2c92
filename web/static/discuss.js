/* A member's contributions to a proposal's discussion, signed in the browser with
 * the key member.js keeps: a comment (maybe a reply), a statement, a reaction, an
 * amendment.
 * Each is a member record like a vote (cli/deliberate_cmd.py builds the same
 * bodies and keys); the node verifies it before it keeps and relays it. */
(function () {
  "use strict";
  const M = window.AllmendeMember;
  const $ = (id) => document.getElementById(id);
  const say = (id, text) => { const el = $(id); if (el) el.textContent = text; };
  const SENT = "signed in this browser and accepted by the node.";

  // A fresh id of the member's own, as the CLI makes them: prefix-12 hex digits.
  const newKey = (prefix) => prefix + "-" + M.hex(crypto.getRandomValues(new Uint8Array(6)));

  async function contribute(kind, proposal, make, anchor) {
    const k = await M.needKey();
    const q = new URLSearchParams({ proposal: proposal, member: k.pub, kind: kind });
    const prep = await M.getJson("/api/delib-prepare?" + q);
    const [key, body] = make(prep);
    return M.reviewSignSend(k, M.memberFields(kind, key, prep, k.pub, body), anchor);
  }

  function comment(form) {
    const text = $("comment-text").value;
    if (!text.trim()) return Promise.reject(new Error("write a comment first"));
    const reply = $("comment-reply").value;
    return contribute("comment", form.dataset.proposal, (prep) => {
      const body = { proposal: prep.proposal, text: text };
      if (reply) body.reply = reply;
      return [newKey("c"), body];
    }, form);
  }

  function statement(form) {
    const text = $("statement-text").value;
    if (!text.trim()) return Promise.reject(new Error("write a statement first"));
    return contribute("statement", form.dataset.proposal,
      (prep) => [newKey("s"), { proposal: prep.proposal, text: text }], form);
  }

  // "id name" per line, as the operator's proposal form takes options.
  function optionsOf(text) {
    const out = [];
    for (const line of text.split("\n")) {
      const l = line.trim();
      if (!l) continue;
      const cut = l.indexOf(" ");
      const id = cut < 0 ? l : l.slice(0, cut);
      const name = cut < 0 ? "" : l.slice(cut + 1).trim();
      out.push({ id: id, name: name || id });
    }
    return out;
  }

  // An amendment names the version it was written for; the text is included only when
  // the member changed it, so an amendment of the options leaves the text alone.
  function amendment(form) {
    const field = $("amend-text");
    const text = field.value.replace(/\r\n/g, "\n");
    const changed = text !== field.defaultValue.replace(/\r\n/g, "\n");
    const options = $("amend-options") ? optionsOf($("amend-options").value) : [];
    const reason = $("amend-reason").value.trim();
    if (!changed && !options.length) {
      return Promise.reject(new Error("change the text or name an option first"));
    }
    if (changed && !text.trim()) return Promise.reject(new Error("the new text is empty"));
    return contribute("amendment", form.dataset.proposal, (prep) => {
      if (String(prep.version) !== form.dataset.version) {
        throw new Error("the proposal is at version " + prep.version +
          " now: reload the page to amend its current text");
      }
      const body = { proposal: prep.proposal, version: prep.version };
      if (changed) body.text = text;
      if (options.length) body.options = options;
      if (reason) body.reason = reason;
      return [newKey("a"), body];
    }, form);
  }

  // One reaction per member and statement: the key names the statement, so a new
  // reaction replaces the member's earlier one. The review opens below the list
  // (outside the part live updates replace).
  function react(button) {
    const ref = button.dataset.statement;
    const [author, skey] = [ref.slice(0, ref.indexOf(".")), ref.slice(ref.indexOf(".") + 1)];
    const key = ("r-" + author.slice(0, 10) + "-" + skey).slice(0, 64);
    const proposal = $("statements").dataset.proposal;
    return contribute("reaction", proposal, (prep) => [key,
      { proposal: prep.proposal, statement: ref, react: button.dataset.react }], $("react-status"));
  }

  // The reply-to choices follow the thread as it updates.
  function syncReplies() {
    const select = $("comment-reply");
    if (!select) return;
    const keep = select.value;
    while (select.options.length > 1) select.remove(1);
    for (const c of document.querySelectorAll("#discussion article[data-ref]")) {
      select.add(new Option(c.dataset.label, c.dataset.ref));
    }
    select.value = keep;
  }

  // The operator's list of amendments to decide on follows the list as it updates.
  function syncDecide() {
    const select = $("decide-amendment");
    if (!select) return;
    const keep = select.value;
    while (select.options.length) select.remove(0);
    // After the discussion (the form has no accept/reject) only a rejected one is left.
    const rejected = "#amendments li[data-state=rejected]";
    const open = $("decide-reason") ? "#amendments li[data-state=proposed], " + rejected : rejected;
    for (const a of document.querySelectorAll(open)) {
      select.add(new Option(a.dataset.label, a.dataset.ref));
    }
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  }

  // After an accepted amendment, an untouched amendment form starts from the new
  // version's text; a form being written keeps its text and is refused on sending.
  function syncAmend() {
    const base = $("amend-base"), form = $("amend-form"), field = $("amend-text");
    if (!base || !form || base.dataset.version === form.dataset.version) return;
    if (field.value !== field.defaultValue) return;
    field.defaultValue = base.dataset.text;
    field.value = base.dataset.text;
    form.dataset.version = base.dataset.version;
  }

  function onSubmit(id, status, fn, done) {
    const form = $(id);
    if (!form) return;
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      say(status, "");
      fn(form).then(
        () => { done(); say(status, SENT[0].toUpperCase() + SENT.slice(1)); },
        (err) => say(status, "Not sent: " + err.message),
      );
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!window.crypto || !crypto.subtle || !M) return;
    onSubmit("comment-form", "comment-status", comment, () => {
      $("comment-text").value = "";
      $("comment-reply").value = "";
    });
    onSubmit("statement-form", "statement-status", statement, () => { $("statement-text").value = ""; });
    onSubmit("amend-form", "amend-status", amendment, () => {
      $("amend-text").value = $("amend-text").defaultValue;
      if ($("amend-options")) $("amend-options").value = "";
      $("amend-reason").value = "";
    });
    document.addEventListener("click", (ev) => {
      const reply = ev.target.closest("button.reply-to");
      if (reply) {
        $("comment-reply").value = reply.dataset.ref;
        $("comment-text").focus();
        return;
      }
      const button = ev.target.closest("button.react");
      if (button) {
        say("react-status", "");
        react(button).then(
          () => say("react-status", "Your reaction (" + button.dataset.react + ") was " + SENT),
          (err) => say("react-status", "Not sent: " + err.message),
        );
      }
    });
    document.addEventListener("allmende:refreshed", () => { syncReplies(); syncDecide(); syncAmend(); });
  });
})();
