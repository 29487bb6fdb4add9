// The restore wizard: what to restore (full or partial), the password, where to download from when both B2 and S3
// have it, a plain confirmation, then progress.
import { t } from "./i18n.js";
import { dateTime } from "./format.js";
import { advice } from "./advice.js";
import * as API from "./api.js";
import { focusFirst, h, openDialog, say } from "./dom.js";
import { ProgressView } from "./progress.js";
import { splitSlugs } from "./dashboard.js";
import { shortName } from "./destinations.js";

const folders = [["ssl", "folder_ssl"], ["share", "folder_share"], ["media", "folder_media"], ["addons/local", "folder_local_addons"]];
let current = null; // { jobID, view } while a wizard shows a job

/** Updates the open wizard when the job is the one it started. */
export function showRestoreJob(job) {
  if (current && current.jobID === job.id) current.view.update(job);
}

export function openRestore(backup, follow) {
  const uid = Math.random().toString(36).slice(2);
  const status = h("p", { class: "message", role: "alert" });
  const partialOnly = h("div", { class: "partial", hidden: true },
    h("label", {}, h("input", { type: "checkbox", name: "homeassistant", checked: true }), " ", t("restore_homeassistant")),
    h("label", { for: `addons-${uid}` }, t("restore_addons")),
    h("input", { id: `addons-${uid}`, name: "addons", type: "text", autocomplete: "off", spellcheck: "false", placeholder: "core_mosquitto", "aria-describedby": `addons-hint-${uid}` }),
    h("p", { id: `addons-hint-${uid}`, class: "hint" }, t("restore_addons_hint")),
    h("fieldset", {}, h("legend", {}, t("restore_folders")),
      folders.map(([value, key]) => h("label", {}, h("input", { type: "checkbox", name: "folders", value }), " ", t(key)))));
  const fullWarning = h("p", { class: "banner warn" }, t("restore_full_warning"));
  // Not in Home Assistant: downloaded first, from B2 or S3; with both copies the reader may choose.
  const remotes = ["b2", "s3"].filter((id) => backup[id]);
  const sourceChoice = !backup.local && remotes.length > 1
    ? [h("label", { for: `source-${uid}` }, t("restore_source")),
      h("select", { id: `source-${uid}`, name: "source", "aria-describedby": `source-hint-${uid}` },
        ["auto", ...remotes].map((value) => h("option", { value }, t(`restore_source_${value}`)))),
      h("p", { id: `source-hint-${uid}`, class: "hint" }, t("restore_source_hint"))]
    : null;

  const choose = h("div", { class: "step" },
    h("p", {}, h("span", { class: "strong" }, backup.name), " · ", dateTime(backup.date)),
    backup.local ? null : h("p", { class: "muted small" }, remotes.length === 1 && remotes[0] === "b2"
      ? t("restore_pull_first") : t("restore_pull_first_from", { where: remotes.map(shortName).join(t("or")) })),
    h("fieldset", {}, h("legend", {}, t("restore_what")),
      h("label", {}, h("input", { type: "radio", name: "type", value: "full", checked: true }), " ", t("restore_full")),
      h("label", {}, h("input", { type: "radio", name: "type", value: "partial" }), " ", t("restore_partial"))),
    fullWarning,
    partialOnly,
    h("label", { for: `password-${uid}` }, t("password")),
    h("input", { id: `password-${uid}`, name: "password", type: "password", autocomplete: "off", "aria-describedby": `password-hint-${uid}` }),
    h("p", { id: `password-hint-${uid}`, class: "hint" }, t(backup.protected ? "password_hint_protected" : "password_hint")),
    sourceChoice);

  const summary = h("div", {});
  const confirm = h("div", { class: "step", hidden: true }, summary);
  const progressBox = h("div", { class: "progress-box" });
  const afterNote = h("p", { class: "muted small" });
  const followStep = h("div", { class: "step", hidden: true }, progressBox, afterNote);

  const back = h("button", { type: "button", class: "text", hidden: true }, t("back"));
  const cancel = h("button", { type: "button", class: "text" }, t("cancel"));
  const next = h("button", { type: "submit", class: "primary" }, t("next"));
  const form = h("form", { method: "dialog", novalidate: true }, choose, confirm, followStep, status, h("div", { class: "dialog-buttons" }, cancel, back, next));

  let step = "choose";
  const request = () => {
    const data = new FormData(form);
    const body = { type: data.get("type") };
    const password = String(data.get("password") ?? "");
    if (password) body.password = password;
    if (data.get("source")) body.source = data.get("source");
    if (body.type === "partial") {
      body.homeassistant = data.get("homeassistant") === "on";
      body.addons = splitSlugs(data.get("addons"));
      body.folders = data.getAll("folders");
    }
    return body;
  };
  const show = (name) => {
    step = name;
    choose.hidden = name !== "choose";
    confirm.hidden = name !== "confirm";
    followStep.hidden = name !== "follow";
    back.hidden = name !== "confirm";
    cancel.textContent = t(name === "follow" ? "close" : "cancel");
    next.hidden = name === "follow";
    next.className = name === "confirm" ? "danger" : "primary";
    next.textContent = t(name === "confirm" ? "restore_now" : "next");
    focusFirst(name === "choose" ? choose : name === "confirm" ? form.querySelector(".dialog-buttons") : followStep);
    if (name === "follow") cancel.focus();
  };

  form.addEventListener("change", () => {
    const partial = new FormData(form).get("type") === "partial";
    partialOnly.hidden = !partial;
    fullWarning.hidden = partial;
  });
  back.addEventListener("click", () => { say(status, ""); show("choose"); });
  cancel.addEventListener("click", () => form.closest("dialog").close("cancel"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = request();
    if (step === "choose") {
      if (body.type === "partial" && !body.homeassistant && body.addons.length === 0 && body.folders.length === 0) {
        say(status, t("restore_nothing_chosen"), "bad");
        return;
      }
      say(status, "");
      summary.replaceChildren(...summaryOf(backup, body));
      show("confirm");
      return;
    }
    next.disabled = true;
    say(status, t("starting"));
    try {
      const { job } = await API.restore(backup.slug, body);
      say(status, "");
      current = { jobID: job.id, view: new ProgressView(progressBox) };
      current.view.update(job);
      afterNote.textContent = t(body.type === "full" ? "restore_full_after" : "restore_partial_after");
      show("follow");
      follow(job);
    } catch (error) {
      say(status, `${error.message} — ${advice(error.code)}`, "bad");
    } finally {
      next.disabled = false;
    }
  });

  openDialog({ title: t("restore_title"), content: form, className: "wide" }).then(() => { current = null; });
}

function summaryOf(backup, body) {
  const parts = body.type === "full"
    ? [h("p", {}, t("restore_confirm_full", { name: backup.name })), h("p", { class: "banner warn strong" }, t("restore_full_warning"))]
    : [h("p", {}, t("restore_confirm_partial", { name: backup.name })),
      h("ul", {},
        body.homeassistant ? h("li", {}, t("restore_homeassistant")) : null,
        body.addons.map((slug) => h("li", {}, t("addon_item", { slug }))),
        body.folders.map((folder) => h("li", {}, t(folders.find(([value]) => value === folder)[1]))))];
  if (body.source) parts.push(h("p", {}, t("restore_source_chosen", { source: t(`restore_source_${body.source}`) })));
  parts.push(h("p", { class: "muted small" }, t(body.password ? "password_given" : "password_option")));
  return parts;
}
