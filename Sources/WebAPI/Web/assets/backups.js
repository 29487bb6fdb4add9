// The backups table (cards on phones): Home Assistant, B2 and S3 copies side by side, checks, retention, actions.
// The S3 column shows only while the add-on has a second destination or some backup has a copy there.
import { t } from "./i18n.js";
import { bytes, dateTime, relative } from "./format.js";
import { advice } from "./advice.js";
import * as API from "./api.js";
import { h, openDialog, s, say } from "./dom.js";
import { openRestore } from "./restore.js";
import { destinationsOf, shortName } from "./destinations.js";

const container = document.getElementById("backups");
const message = document.getElementById("backups-message");
let verifyAvailable = true;
let loading = null;
let onChange = () => {};
let follow = () => {};
let shown = null; // the backups drawn last
let s3Configured = false;
let withS3 = false; // whether the table has the S3 column

/** onLoaded(backups) after each load; onJob(job) for a job an action started (pull, restore). */
export function setUpBackups({ onLoaded, onJob }) {
  onChange = onLoaded;
  follow = onJob;
  document.getElementById("backups-refresh").addEventListener("click", () => load());
}

/** Each status: a second destination that appears or goes away adds or removes the S3 column. */
export function showStatus(status) {
  const configured = destinationsOf(status).some((destination) => destination.id === "s3");
  if (configured === s3Configured) return;
  s3Configured = configured;
  if (shown) draw(shown);
}

/** Reads api/backups (one catalog read and one B2 listing) and draws the table. */
export function load() {
  loading ??= (async () => {
    container.setAttribute("aria-busy", "true");
    try {
      const { backups } = await API.getBackups();
      draw(backups);
      onChange(backups);
      if (message.dataset.kind === "load") say(message, "");
      return backups;
    } catch (error) {
      say(message, error.code === "not_configured" ? t("backups_not_configured") : `${t("backups_unavailable")} ${error.message}`,
        error.code === "not_configured" ? "" : "bad");
      message.dataset.kind = "load";
      return null;
    } finally {
      container.removeAttribute("aria-busy");
      loading = null;
    }
  })();
  return loading;
}

/** The remote copies a backup may have, in the order they are shown. */
const remotes = ["b2", "s3"];

function draw(backups) {
  shown = backups;
  withS3 = s3Configured || backups.some((backup) => backup.s3);
  const columns = ["col_backup", "col_size", "col_local", "col_b2", withS3 ? "col_s3" : null, "col_verified", "col_retention", "col_actions"].filter(Boolean);
  if (backups.length === 0) {
    container.replaceChildren(h("p", { class: "muted empty" }, t("no_backups")));
    return;
  }
  const head = h("thead", {}, h("tr", {}, columns.map((key) => h("th", { scope: "col" }, t(key)))));
  const body = h("tbody", {}, backups.map(row));
  container.replaceChildren(h("div", { class: "table-wrap" }, h("table", { class: "backups" }, h("caption", { class: "sr-only" }, t("backups_title")), head, body)));
}

/** A cell with its column's name, shown above the value when rows become cards on phones. */
const cell = (column, ...children) => h("td", { class: column, "data-label": t(column) }, ...children);
const mark = (good, text) => h("span", { class: `nowrap ${good ? "ok" : "bad"}` }, h("span", { "aria-hidden": "true" }, good ? "✓ " : "✗ "), text);
const absent = () => h("span", { class: "nowrap muted" }, h("span", { "aria-hidden": "true" }, "— "), t("absent"));

// Material Design Icons (Apache 2.0), drawn inline: emoji fonts are not everywhere.
const icons = {
  lock: "M12 17a2 2 0 0 0 2-2c0-1.11-.9-2-2-2a2 2 0 0 0-2 2 2 2 0 0 0 2 2m6-9a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V10c0-1.11.9-2 2-2h1V6a5 5 0 0 1 5-5 5 5 0 0 1 5 5v2h1m-6-5a3 3 0 0 0-3 3v2h6V6a3 3 0 0 0-3-3z",
  pin: "M16 12V4h1V2H7v2h1v8l-2 2v2h5.2v6h1.6v-6H18v-2l-2-2z",
};
const icon = (name) => s("svg", { class: "icon", viewBox: "0 0 24 24", "aria-hidden": "true" }, s("path", { d: icons[name] }));

function row(backup) {
  const verified = verifiedCell(backup);
  return h("tr", {
    dataset: { slug: backup.slug, locations: [...backup.locations].sort().join(" "), verified: verified.good ? "yes" : "no" },
  },
  h("th", { scope: "row", "data-label": t("col_backup") },
    h("span", { class: "strong name" }, backup.name),
    h("span", { class: "muted small block" }, dateTime(backup.date)),
    h("span", { class: "badges" },
      h("span", { class: "badge" }, t(backup.type === "partial" ? "type_partial" : "type_full")),
      backup.protected ? h("span", { class: "badge" }, icon("lock"), t("protected")) : null,
      backup.pinned ? h("span", { class: "badge primary" }, icon("pin"), t("pinned")) : null)),
  cell("col_size", h("span", { class: "nowrap" }, bytes(backup.size))),
  cell("col_local", backup.local ? mark(true, t("present")) : absent()),
  cell("col_b2", copyCell(backup, "b2")),
  withS3 ? cell("col_s3", copyCell(backup, "s3")) : null,
  cell("col_verified", verified.content),
  cell("col_retention", retentionCell(backup)),
  cell("col_actions", actions(backup)));
}

/** The end of an Object Lock on a copy (b2 or s3) still in force, or null. */
const lockedUntil = (copy) => {
  const until = copy?.locked_until;
  return until && new Date(until) > new Date() ? until : null;
};

function lockNote(copy) {
  const until = lockedUntil(copy);
  return until ? h("span", { class: "muted small block" }, icon("lock"), t("locked_until", { date: dateTime(until) })) : null;
}

/** A remote copy: present or not; beside a second destination also its size and whether the upload was verified. */
function copyCell(backup, id) {
  const copy = backup[id];
  if (!copy) return absent();
  if (!withS3) return [mark(true, t("present")), lockNote(copy)];
  const verified = copy.verified_at
    ? h("span", { class: "ok small block nowrap", title: dateTime(copy.verified_at) }, h("span", { "aria-hidden": "true" }, "✓ "), t("upload_checked"))
    : h("span", { class: "muted small block nowrap" }, t("not_checked"));
  return [mark(true, t("present")), h("span", { class: "muted small block nowrap" }, bytes(copy.size)), verified, lockNote(copy)];
}

/** ✓ with the check's time, ✗ with its problems; an upload whose SHA-1 matched counts as checked. */
function verifiedCell(backup) {
  const check = backup.b2?.last_check ?? backup.s3?.last_check;
  if (check) {
    const good = check.verdict === "restorable";
    return {
      good,
      content: [
        mark(good, t(`verdict_${check.verdict}`)),
        h("span", { class: "muted small block" }, `${dateTime(check.at)} · ${t(`mode_${check.mode}`)}`),
        check.problems?.length ? h("ul", { class: "problems small" }, check.problems.map((problem) => h("li", {}, problem))) : null,
      ],
    };
  }
  const at = backup.verified_at ?? backup.b2?.verified_at ?? backup.s3?.verified_at;
  if (at) return { good: true, content: [mark(true, t("upload_checked")), h("span", { class: "muted small block" }, dateTime(at))] };
  return { good: false, content: h("span", { class: "muted" }, t("not_checked")) };
}

function retentionCell(backup) {
  const where = [...remotes.filter((id) => backup.would_delete[id]).map(shortName), backup.would_delete.local ? t("in_ha") : null].filter(Boolean);
  const reasons = backup.reasons?.length ? h("span", { class: "muted small block" }, backup.reasons.join(", ")) : null;
  if (where.length === 0) return [h("span", {}, t("kept")), reasons];
  return [h("span", { class: "badge warn" }, h("span", { "aria-hidden": "true" }, "⚠ "), t("would_delete", { where: where.join(", ") })), reasons];
}

function actions(backup) {
  const label = (key) => `${t(key)}: ${backup.name}`;
  const button = (key, handler, extra = {}) =>
    h("button", { type: "button", class: `small ${extra.class ?? ""}`, "aria-label": label(key), onclick: (event) => handler(backup, event.currentTarget) }, t(key));
  return h("div", { class: "actions" },
    button(backup.pinned ? "unpin" : "pin", togglePin),
    (backup.b2 || backup.s3) && verifyAvailable ? button("verify", verify, { class: "verify" }) : null,
    (backup.b2 || backup.s3) && !backup.local ? button("pull", pull) : null,
    button("restore", (item) => openRestore(item, follow)),
    button("delete", confirmDelete, { class: "danger" }));
}

async function act(work, done) {
  try {
    await work();
    say(message, done, "ok");
  } catch (error) {
    say(message, `${error.message} — ${advice(error.code)}`, "bad");
  }
  message.dataset.kind = "action";
  await load();
}

function togglePin(backup, button) {
  button.disabled = true;
  return act(() => API.pin(backup.slug, !backup.pinned), t(backup.pinned ? "unpinned" : "pinned_done", { name: backup.name }));
}

function pull(backup, button) {
  button.disabled = true;
  return act(async () => follow((await API.pull(backup.slug)).job), t("pull_started", { name: backup.name }));
}

async function verify(backup, button) {
  button.disabled = true;
  // B2's copy when there is one, else the S3 copy.
  const copy = backup.b2 ? "b2" : "s3";
  const before = backup[copy]?.last_check?.at ?? "";
  try {
    await API.verify(backup.slug, copy === "b2" ? undefined : copy);
  } catch (error) {
    button.disabled = false;
    if (error.status === 404 && /no resource/.test(error.message)) {
      verifyAvailable = false;
      document.querySelectorAll("button.verify").forEach((element) => element.remove());
      say(message, t("verify_unavailable"), "warn");
    } else {
      say(message, `${error.message} — ${advice(error.code)}`, "bad");
    }
    return;
  }
  say(message, t("verify_started", { name: backup.name }));
  message.dataset.kind = "action";
  // The result lands in the catalog; look again every few seconds for up to five minutes.
  for (let attempt = 0; attempt < 60; attempt += 1) {
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const backups = await load();
    const check = backups?.find((item) => item.slug === backup.slug)?.[copy]?.last_check;
    if (check && check.at !== before) {
      say(message, t("verify_finished", { name: backup.name, verdict: t(`verdict_${check.verdict}`) }), check.verdict === "restorable" ? "ok" : "bad");
      return;
    }
  }
}

const refusals = new Set(["pinned", "newest_verified", "no_verified_copy", "locked"]);
const lockRefusal = (id) => (id === "s3" ? "refusal_locked_s3" : "refusal_locked");

/** Asks where to delete from; on a refusal that may be overridden, offers "Delete anyway". */
async function confirmDelete(backup) {
  const places = [...remotes.filter((id) => backup[id]), backup.local ? "local" : null].filter(Boolean);
  const choices = [places.length > 1 ? "all" : null, ...places].filter(Boolean);
  // "B2 and Home Assistant" as before; with an S3 copy the places are named one by one.
  const allLabel = backup.s3 ? t("delete_everywhere", { where: places.map((place) => (place === "local" ? t("in_ha") : shortName(place))).join(", ") }) : t("delete_all");
  const locks = remotes.filter((id) => lockedUntil(backup[id]));
  const status = h("p", { class: "message", role: "alert" });
  const deleteButton = h("button", { type: "submit", class: "danger", value: "delete" }, t("delete"));
  const form = h("form", { method: "dialog" },
    h("p", {}, h("span", { class: "strong" }, backup.name), " · ", dateTime(backup.date)),
    h("fieldset", {},
      h("legend", {}, t("delete_where")),
      choices.map((choice, index) =>
        h("label", {}, h("input", { type: "radio", name: "location", value: choice, checked: index === 0 }), " ", choice === "all" ? allLabel : t(`delete_${choice}`)))),
    locks.map((id) => h("p", { class: "banner warn small" }, `${t(lockRefusal(id))} ${t("locked_until", { date: dateTime(backup[id].locked_until) })}.`)),
    h("p", { class: "muted small" }, t("delete_warning")),
    status,
    h("div", { class: "dialog-buttons" },
      h("button", { type: "button", class: "text", onclick: () => form.closest("dialog").close("cancel") }, t("cancel")),
      deleteButton));
  let force = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const location = new FormData(form).get("location");
    deleteButton.disabled = true;
    say(status, t("deleting"));
    try {
      await API.remove(backup.slug, location, force);
      form.closest("dialog").close("deleted");
      say(message, t("deleted", { name: backup.name }), "ok");
      message.dataset.kind = "action";
      load();
    } catch (error) {
      deleteButton.disabled = false;
      const overridable = error.status === 409 && ["pinned", "newest_verified", "no_verified_copy"].includes(error.code);
      const refusal = error.code === "locked" ? lockRefusal(location) : `refusal_${error.code}`;
      const reason = error.status === 409 && refusals.has(error.code) ? t(refusal) : `${error.message} — ${advice(error.code)}`;
      say(status, overridable ? `${reason} ${t("delete_anyway_hint")}` : reason, "bad");
      if (overridable) {
        force = true;
        deleteButton.textContent = t("delete_anyway");
      } else if (error.code === "locked") {
        deleteButton.disabled = true;
      }
      deleteButton.focus();
    }
  });
  await openDialog({ title: t("delete_title"), content: form });
}
