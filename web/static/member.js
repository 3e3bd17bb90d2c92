/* The member's key and vote, in the browser. The key is made or imported here,
 * kept in IndexedDB as a non-extractable WebCrypto Ed25519 key, and signs the vote
 * record here; the node only checks the signature and relays the record.
 *
 * A record is the canonical msgpack array [2, origin, kind, key, seq, hlc, scope,
 * body, sig]; the signature covers "allmende/record/2\0" followed by the same array
 * without sig (node/crdt/record.py). */
(function () {
  "use strict";
  const mp = window.AllmendeMsgpack;
  const DOMAIN = new TextEncoder().encode("allmende/record/2\u0000");
  const VERSION = 2;
  const LOGICAL_BITS = 16n;  // node/clock.py: hlc = millis << 16 | logical
  const ALG = { name: "Ed25519" };

  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const unhex = (s) => Uint8Array.from(s.match(/../g) || [], (h) => parseInt(h, 16));
  const b64 = (b) => btoa(String.fromCharCode(...b));
  const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const unb64url = (s) => unb64(s.replace(/-/g, "+").replace(/_/g, "/") + "==".slice(0, (4 - s.length % 4) % 4));
  const $ = (id) => document.getElementById(id);
  const say = (id, text) => { const el = $(id); if (el) el.textContent = text; };

  // --- the key store (IndexedDB) -------------------------------------------------
  function db() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open("allmende", 1);
      req.onupgradeneeded = () => req.result.createObjectStore("keys");
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  async function store(op, ...args) {
    const d = await db();
    return new Promise((resolve, reject) => {
      const tx = d.transaction("keys", op === "get" ? "readonly" : "readwrite");
      const req = tx.objectStore("keys")[op](...args);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  const loadKey = () => store("get", "member");

  function pemOf(der) {
    const body = b64(der).match(/.{1,64}/g).join("\n");
    return "-----BEGIN PRIVATE KEY-----\n" + body + "\n-----END PRIVATE KEY-----\n";
  }
  function derOf(pem) {
    const m = pem.match(/-----BEGIN PRIVATE KEY-----([\s\S]*?)-----END PRIVATE KEY-----/);
    if (!m) throw new Error("not a PEM private key (BEGIN PRIVATE KEY)");
    return unb64(m[1].replace(/\s+/g, ""));
  }

  // Keep a key: learn its public half, then store it non-extractable.
  async function keep(der) {
    const open = await crypto.subtle.importKey("pkcs8", der, ALG, true, ["sign"]);
    const jwk = await crypto.subtle.exportKey("jwk", open);
    const pub = hex(unb64url(jwk.x));
    const sealed = await crypto.subtle.importKey("pkcs8", der, ALG, false, ["sign"]);
    await store("put", { privateKey: sealed, pub: pub }, "member");
    return pub;
  }

  async function createKey() {
    const pair = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
    const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
    const pub = await keep(der);
    const link = $("backup-link");
    if (link) {
      link.href = "data:application/x-pem-file;base64," + b64(new TextEncoder().encode(pemOf(der)));
      link.hidden = false;
    }
    return pub;
  }

  // --- the vote record ---------------------------------------------------------------
  function ballotOf(form) {
    const method = form.dataset.method;
    if (method === "score") {
      const out = {};
      for (const i of form.querySelectorAll("input[data-option]")) {
        if (i.value === "") continue;
        const v = Number(i.value);
        if (!Number.isInteger(v)) throw new Error("scores are whole numbers");
        out[i.dataset.option] = v;
      }
      return out;
    }
    if (method === "ranked") {
      const byRank = new Map();
      for (const i of form.querySelectorAll("input[data-option]")) {
        if (i.value === "") continue;
        const r = Number(i.value);
        if (!Number.isInteger(r) || r < 1) throw new Error("ranks are whole numbers from 1");
        if (!byRank.has(r)) byRank.set(r, []);
        byRank.get(r).push(i.dataset.option);
      }
      if (!byRank.size) throw new Error("rank at least one option");
      return [...byRank.keys()].sort((a, b) => a - b).map((r) => byRank.get(r));
    }
    return [...form.querySelectorAll("input[name=opt]:checked")].map((i) => i.value);
  }

  async function getJson(url) {
    const res = await fetch(url, { headers: { accept: "application/json" } });
    const data = await res.json();
    if (!res.ok) throw new Error(data.error || res.statusText);
    return data;
  }

  // The unsigned fields of a member's record, as node/governance/member_sign.py
  // builds them: seq is the signing time, above any seq of this member held.
  function memberFields(kind, key, prep, pub, body) {
    const now = Math.max(Date.now(), prep.now);
    const seq = Math.max(now, prep.held_max_seq + 1);
    const hlc = BigInt(now) << LOGICAL_BITS;
    return [VERSION, unhex(pub), kind, key, seq, hlc, prep.scope, body];
  }

  function concat(a, b) {
    const out = new Uint8Array(a.length + b.length);
    out.set(a, 0); out.set(b, a.length);
    return out;
  }

  function describe(fields) {
    const [v, origin, kind, key, seq, hlc, scope, body] = fields;
    return JSON.stringify({ version: v, origin: hex(origin), kind: kind, key: key, seq: seq,
      hlc: hlc.toString(), scope: scope, body: body }, null, 2);
  }

  // Show what will be signed, beside the control that asked (`anchor`); sign and
  // send it when the member says so.
  function reviewSignSend(k, fields, anchor) {
    const signed = concat(DOMAIN, mp.encode(fields));
    if (anchor) anchor.after($("review"));
    $("review-fields").textContent = describe(fields);
    $("review-bytes").textContent = hex(signed);
    $("review").hidden = false;
    $("sign-send").focus();
    return new Promise((resolve, reject) => {
      $("sign-send").onclick = async () => {
        try {
          const sig = new Uint8Array(await crypto.subtle.sign(ALG, k.privateKey, signed));
          const raw = mp.encode([...fields, sig]);
          const res = await fetch("/api/submit", {
            method: "POST",
            headers: { "content-type": "application/json", "x-csrf-token": window.allmendeCsrf() },
            body: JSON.stringify({ record: hex(raw) }),
          });
          const data = await res.json();
          if (!res.ok) throw new Error(data.error || res.statusText);
          $("review").hidden = true;
          resolve(data);
        } catch (err) { reject(err); }
      };
      $("sign-cancel").onclick = () => { $("review").hidden = true; reject(new Error("not sent")); };
    });
  }

  async function needKey() {
    const k = await loadKey();
    if (!k) throw new Error("no member key in this browser: make one on the My key page");
    return k;
  }

  async function vote(form) {
    const k = await needKey();
    const ballot = ballotOf(form);
    const q = new URLSearchParams({ proposal: form.dataset.proposal, member: k.pub });
    const prep = await getJson("/api/vote-prepare?" + q);
    // A vote names the version it is for (node/governance/tally.py reports others).
    const body = { ballot: ballot, version: prep.body.version || 1 };
    return reviewSignSend(k, memberFields("vote", prep.proposal, prep, k.pub, body), form);
  }

  async function volunteer(aid) {
    const k = await needKey();
    const q = new URLSearchParams({ assembly: aid, member: k.pub });
    const prep = await getJson("/api/volunteer-prepare?" + q);
    return reviewSignSend(k, memberFields("volunteer", prep.assembly, prep, k.pub, { consent: true }));
  }

  async function checkPanel() {
    const panel = $("panel-keys");
    if (!panel) return;
    const k = await loadKey();
    const drawn = (panel.dataset.panel || "").split(" ").filter(Boolean);
    let text = "";
    if (!k) text = "No member key in this browser.";
    else if (!drawn.length) text = "";
    else text = drawn.includes(k.pub) ? "You are on the panel." : "You are not on the panel.";
    say("on-panel", text);
  }

  // What static/discuss.js signs with: the same key, fields and review.
  window.AllmendeMember = { needKey, getJson, memberFields, reviewSignSend, hex };

  // --- was my vote counted? -------------------------------------------------------------
  const RECEIPT = {
    counted: "Yes: your vote is in the frozen set and was counted.",
    counts: "Yes, so far: your vote counts in the provisional result. Voting again replaces it until the close.",
    "no-vote": "This node holds no vote of yours on this proposal.",
    unknown: "Not known yet: this node lacks records it needs to tell.",
  };
  async function checkReceipt() {
    const box = $("receipt-box");
    if (!box) return;
    const k = await loadKey();
    if (!k) { say("receipt", "No member key in this browser."); return; }
    const q = new URLSearchParams({ proposal: box.dataset.proposal, member: k.pub });
    try {
      const r = await getJson("/api/receipt?" + q);
      let text = RECEIPT[r.status] || ("No: " + (r.reason || r.status) + ".");
      if (r.status === "not-counted") text = "No: not counted (" + r.reason + ").";
      if (r.ballot !== null) text += " Ballot: " + JSON.stringify(r.ballot) + ".";
      say("receipt", text);
      box.dataset.status = r.status;
    } catch (err) { say("receipt", err.message); }
  }

  // --- wiring ----------------------------------------------------------------------------
  async function showKey() {
    const k = await loadKey();
    if ($("pubkey")) $("pubkey").value = k ? k.pub : "";
    say("key-state", k ? "This browser holds your member key." : "No member key in this browser yet.");
  }

  function onClick(id, fn) {
    const el = $(id);
    if (el) el.addEventListener("click", () => fn().catch((err) => say("key-state", err.message)));
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!window.crypto || !crypto.subtle) {
      say("key-state", "This browser cannot sign here: open the page over http://127.0.0.1 or https.");
      return;
    }
    onClick("key-create", async () => {
      if ((await loadKey()) && !confirm("Replace the key this browser holds?")) return;
      await createKey();
      await showKey();
      say("key-state", "Key created. Save the backup file now: it is offered only once.");
    });
    onClick("key-import", async () => {
      await keep(derOf($("import-pem").value));
      $("import-pem").value = "";
      await showKey();
    });
    onClick("key-forget", async () => {
      if (!confirm("Remove the key from this browser? Without a backup it is gone.")) return;
      await store("delete", "member");
      await showKey();
    });
    const form = $("ballot");
    if (form) {
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        say("vote-status", "");
        vote(form).then(
          () => { say("vote-status", "Your vote was signed in this browser and accepted by the node."); checkReceipt(); },
          (err) => say("vote-status", "Not sent: " + err.message),
        );
      });
    }
    const vol = $("volunteer");
    if (vol) {
      vol.addEventListener("click", () => {
        say("volunteer-status", "");
        volunteer(vol.dataset.assembly).then(
          () => say("volunteer-status", "You volunteered: your browser signed it and the node accepted it."),
          (err) => say("volunteer-status", "Not sent: " + err.message),
        );
      });
    }
    if ($("receipt-check")) $("receipt-check").addEventListener("click", checkReceipt);
    document.addEventListener("allmende:refreshed", () => { checkReceipt(); checkPanel(); });
    showKey().catch(() => {});
    checkReceipt();
    checkPanel();
  });
})();
