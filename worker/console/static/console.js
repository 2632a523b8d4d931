// The Live page: the realtime change stream of a business unit (see live.html).
// Every value from the stream lands as text (textContent), never as markup.
(function () {
  "use strict";
  var root = document.getElementById("live");
  if (!root || root.dataset.started || typeof EventSource === "undefined") {
    return;
  }
  root.dataset.started = "1"; // once, should the script be included twice

  var status = document.getElementById("live-status");
  var rows = document.getElementById("live-rows");
  var max = parseInt(root.dataset.max, 10) || 200;
  var actions = { 1: "create", 2: "update", 3: "delete", 4: "submit" };

  function say(tone, text) {
    status.className = "state " + tone;
    status.textContent = text;
  }

  // The instant a change id (a ULID) names: its first 10 characters are milliseconds since
  // the epoch, in Crockford's base 32.
  function handled(id) {
    var alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ", ms = 0;
    if (typeof id !== "string" || id.length < 10) {
      return "";
    }
    for (var i = 0; i < 10; i++) {
      var d = alphabet.indexOf(id.charAt(i).toUpperCase());
      if (d < 0) {
        return "";
      }
      ms = ms * 32 + d;
    }
    var t = new Date(ms);
    return isNaN(t.getTime()) ? "" : t.toISOString().replace("T", " ").slice(0, 19) + "Z";
  }

  // The column names, for a narrow window, where each change is a card (console.css).
  var labels = Array.prototype.map.call(root.querySelectorAll("thead th"), function (th) {
    return th.textContent;
  });

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) {
      td.className = cls;
    }
    td.dataset.label = labels[tr.children.length] || "";
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function link(td, href, text) {
    td.textContent = "";
    var a = document.createElement("a");
    a.setAttribute("href", href);
    a.textContent = text;
    td.appendChild(a);
  }

  function prepend(tr) {
    var empty = document.getElementById("live-empty");
    if (empty) {
      empty.remove();
    }
    rows.insertBefore(tr, rows.firstChild);
    while (rows.children.length > max) {
      rows.removeChild(rows.lastChild);
    }
  }

  function note(text) {
    var tr = document.createElement("tr");
    tr.className = "note";
    var td = cell(tr, text, "hint");
    td.removeAttribute("data-label");
    td.colSpan = 5;
    prepend(tr);
  }

  function change(id, c) {
    var key = String(c.eventKey || "");
    var tr = document.createElement("tr");
    var at = cell(tr, handled(id), "time");
    if (c.createdOn) {
      at.title = "createdOn " + String(c.createdOn);
    }
    var eventType = cell(tr, key.split(":")[0]);
    if (key) {
      link(eventType, "/console/trace?" + new URLSearchParams({ key: key }).toString(), key.split(":")[0]);
      eventType.title = key;
    }
    var entity = String(c.entityTypeId) + "/" + String(c.entityIdentity);
    var who = cell(tr, entity, "mono");
    link(who, "/console/timeline?" + new URLSearchParams({ type: String(c.entityTypeId), id: String(c.entityIdentity) }).toString(), entity);
    cell(tr, actions[c.actionTypeId] ? c.actionTypeId + " " + actions[c.actionTypeId] : String(c.actionTypeId));
    var fields = Array.isArray(c.changedFields) ? c.changedFields.map(String).join(", ") : "";
    if (c.changedFieldsTruncated) {
      fields += " … and more";
    }
    cell(tr, fields || "—", "mono");
    prepend(tr);
  }

  var query = new URLSearchParams({ businessUnitId: root.dataset.bu });
  if (root.dataset.type) {
    query.set("entityTypeId", root.dataset.type);
  }
  var stream = new EventSource("/console/live/stream?" + query.toString());
  var retrying = ""; // why the stream will be tried again, when it said
  say("tone-wait", "Connecting…");
  stream.onopen = function () {
    say("tone-ok", "Live");
  };
  stream.onerror = function () {
    if (stream.readyState === EventSource.CLOSED) {
      say("tone-bad", "Disconnected: reload the page (your session may have ended)");
    } else {
      say("tone-wait", "Reconnecting…" + retrying);
    }
  };
  stream.addEventListener("change", function (e) {
    var c;
    try {
      c = JSON.parse(e.data);
    } catch (err) {
      return;
    }
    if (c && typeof c === "object") {
      retrying = "";
      change(e.lastEventId, c);
    }
  });
  stream.addEventListener("gap", function () {
    note("Some changes were missed here: the stream resumed after more than its buffer holds. Reload for a fresh view.");
  });
  stream.addEventListener("unauthorized", function () {
    stream.close();
    say("tone-bad", "Stopped: this session's credential is no longer valid. Sign in again.");
  });
  stream.addEventListener("refused", function (e) {
    var r = {};
    try {
      r = JSON.parse(e.data) || {};
    } catch (err) {
      r = {};
    }
    var why = String(r.error || "refused") + (r.status ? " (" + r.status + ")" : "");
    if (r.status === 429 || r.status === 503) {
      retrying = " (" + why + ")";
      say("tone-wait", "Reconnecting in 5 s: " + why);
      return;
    }
    stream.close();
    say("tone-bad", "Refused: " + why);
  });
})();
