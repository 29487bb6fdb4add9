// The status card: state, schedule, last success and check, last error, the destinations with their usage, "Back up now" and progress.
import { t } from "./i18n.js";
import { bytes, dateTime, monthlyCost, relative } from "./format.js";
import { advice } from "./advice.js";
import { startBackup } from "./api.js";
import { h, say, setText } from "./dom.js";
import { destinationsOf } from "./destinations.js";
import { ProgressView, isFinished } from "./progress.js";

const $ = (id) => document.getElementById(id);
const runningStates = new Set(["creating", "uploading", "verifying", "downloading", "restoring"]);
const tone = { idle: "ok", failed: "bad", not_configured: "warn" };

let status = null;
let newestCheck = null;
const progress = new ProgressView($("progress"));

/** A time in local words: "30 Nov 2026, 03:30 (in 2 hours)". */
const when = (iso) => `${dateTime(iso)} (${relative(iso)})`;

export function showStatus(next) {
  status = next;
  render();
}

/** The newest restorability check of any backup, from api/backups. */
export function showNewestCheck(backups) {
  newestCheck = backups
    .map((backup) => backup.b2?.last_check)
    .filter(Boolean)
    .sort((a, b) => b.at.localeCompare(a.at))[0] ?? null;
  render();
}

export function showJob(job) {
  progress.update(job);
  // "Backup started." has done its job once the progress shows the end.
  const message = $("dashboard-message");
  if (isFinished(job) && message.dataset.job === job.id) say(message, "");
}

export function render() {
  if (!status) return;
  const state = status.state;
  const running = runningStates.has(state) || (status.running_job && !isFinished(status.running_job));
  $("state").className = `state ${running ? "busy" : tone[state] ?? ""}`;
  // The copy to the second destination runs in state "uploading", which alone would say "to Backblaze B2".
  const copying = status.running_job?.step === "copy" && !isFinished(status.running_job);
  setText($("state-text"), copying ? t("step_copy") : t(`state_${state}`));
  $("version").textContent = t("version", { version: status.version });
  $("stale").hidden = !status.stale;
  setText($("postponed"), status.postponed ? t("postponed", { reason: status.postponed }) : "");
  $("postponed").hidden = !status.postponed;
  renderCoverage(status.coverage);

  const missing = status.setup?.missing_options ?? [];
  $("missing").hidden = missing.length === 0;
  $("missing-list").replaceChildren(...missing.map((option) => h("li", {}, h("code", {}, option))));

  const error = status.last_error;
  $("last-error").hidden = !error;
  if (error) {
    $("last-error-title").textContent = error.at ? t("last_error_at", { when: when(error.at) }) : t("last_error");
    $("last-error-advice").textContent = advice(error.code);
    $("last-error-detail").textContent = [error.message, error.step ? t("failed_step", { step: t(`step_${error.step}`) }) : null, error.code]
      .filter(Boolean).join(" · ");
  }

  $("stats").hidden = state === "not_configured";
  $("next-run").textContent = nextRunText(status);
  const success = status.last_success;
  $("last-success").replaceChildren(...(success
    ? [h("span", {}, success.at ? when(success.at) : "–"), h("br"), h("span", { class: "muted small" }, success.name)]
    : [t("never")]));
  $("last-check").replaceChildren(...checkText(newestCheck));
  renderDestinations(state === "not_configured" ? [] : destinationsOf(status), status.setup ?? {});

  $("backup-now").disabled = state === "not_configured" || Boolean(running);
}

/** "Zigbee2MQTT ✔ · Mosquitto broker ✔ in B2 2026-11-30 full": what the last backup holds of the critical add-ons. */
function renderCoverage(coverage) {
  const components = coverage?.components ?? [];
  $("coverage-box").hidden = components.length === 0;
  if (components.length === 0) return;
  const parts = components.flatMap((component, index) => [
    ...(index ? [" · "] : []),
    h("span", { class: component.included ? "ok" : "bad" }, `${component.name} ${component.included ? "✔" : "✘"}`),
  ]);
  $("coverage").replaceChildren(...parts, h("br"), h("span", { class: "muted small" }, t("coverage_in", { backup: coverage.name })),
    ...coverage.notes.map((note) => h("span", { class: "muted small" }, h("br"), note)));
}

function nextRunText(status) {
  if (status.state === "not_configured") return "–";
  if (status.schedule_enabled === false) return t("no_schedule");
  if (!status.next_run) return "–";
  const trigger = status.next_run_trigger && status.next_run_trigger !== "schedule" ? ` · ${t(`trigger_${status.next_run_trigger}`)}` : "";
  return when(status.next_run) + trigger;
}

function checkText(check) {
  if (!check) return [t("not_checked_yet")];
  const good = check.verdict === "restorable";
  return [
    h("span", { class: good ? "ok" : "bad" }, h("span", { "aria-hidden": "true" }, good ? "✓ " : "✗ "), t(`verdict_${check.verdict}`)),
    h("br"),
    h("span", { class: "muted small" }, when(check.at)),
  ];
}

const stateMarks = { ok: "✓ ", failing: "✗ ", unknown: "" };
const stateTones = { ok: "ok", failing: "bad", unknown: "" };

/** One entry per destination: name, state, bucket, usage, the last verified copy and the last error. */
function renderDestinations(destinations, setup) {
  $("destinations-box").hidden = destinations.length === 0;
  const several = destinations.length > 1;
  $("destinations").replaceChildren(...destinations.map((destination) => {
    const state = destination.state in stateTones ? destination.state : "unknown";
    // B2's name does not say the bucket; an S3 destination's name does ("S3 (my-bucket at s3.…)").
    const bucket = destination.bucket && !destination.name.includes(destination.bucket)
      ? (destination.id === "b2" && setup.bucket === destination.bucket && setup.prefix ? `${destination.bucket} / ${setup.prefix}` : destination.bucket)
      : null;
    const verified = destination.last_verified;
    const error = destination.last_error;
    return h("li", { class: "destination", dataset: { destination: destination.id, state } },
      h("p", { class: "destination-head" },
        h("span", { class: "strong name" }, destination.name),
        h("span", { class: `badge ${stateTones[state]}` }, h("span", { "aria-hidden": "true" }, stateMarks[state]), t(`destination_${state}`)),
        several && !destination.required ? h("span", { class: "badge" }, t("destination_optional")) : null),
      bucket ? h("p", { class: "muted small name" }, t("destination_bucket", { bucket })) : null,
      h("dl", { class: "facts" },
        h("div", {}, h("dt", {}, t("destination_usage")), h("dd", { class: "usage" }, ...usageText(destination))),
        h("div", {}, h("dt", {}, t("destination_last_verified")), h("dd", { class: "verified" }, ...(verified
          ? [h("span", { class: "name" }, verified.name), h("span", { class: "muted small block", title: dateTime(verified.at) }, relative(verified.at))]
          : [t("never")])))),
      error ? h("p", { class: "destination-error small" },
        h("span", { class: "bad" }, h("span", { "aria-hidden": "true" }, "✗ "), error.at ? t("destination_error_at", { when: relative(error.at) }) : t("destination_error")),
        h("span", { class: "block" }, error.message),
        h("span", { class: "muted block" }, [advice(error.code), error.code].filter(Boolean).join(" · "))) : null);
  }));
}

/** "1.2 GB in 3 backups" (and B2's list price for B2); "–" while not counted yet. */
function usageText(destination) {
  if (destination.backups == null && destination.bytes == null) return ["–"];
  if (destination.backups === 0) return [t("never")];
  return [
    h("span", {}, destination.backups == null ? bytes(destination.bytes) : t("usage", { size: bytes(destination.bytes), n: destination.backups })),
    destination.id === "b2" && destination.bytes != null ? h("span", { class: "muted small block" }, monthlyCost(destination.bytes)) : null,
  ];
}

/** The form's choices as a BackupRequest; untouched fields are left out so the options apply. */
function backupRequest(form) {
  const data = new FormData(form);
  const request = {};
  const name = String(data.get("name") ?? "").trim();
  if (name) request.name = name;
  if (data.get("type")) request.type = data.get("type");
  const folders = data.getAll("exclude_folders");
  if (folders.length) request.exclude_folders = folders;
  if (data.get("exclude_database")) request.exclude_database = true;
  const addons = splitSlugs(data.get("exclude_addons"));
  if (addons.length) request.exclude_addons = addons;
  return request;
}

export const splitSlugs = (text) => String(text ?? "").split(/[\s,;]+/).map((slug) => slug.trim()).filter(Boolean);

/** Wires the button and the options form; onStarted(job) follows the new job. */
export function setUpBackupNow({ onStarted, follow }) {
  const button = $("backup-now");
  const form = $("backup-form");
  const message = $("dashboard-message");
  async function run() {
    if (button.disabled) return;
    button.disabled = true;
    say(message, t("starting"));
    try {
      const { job } = await startBackup(backupRequest(form));
      say(message, t("backup_started"), "ok");
      message.dataset.job = job.id;
      form.reset();
      $("backup-options").open = false;
      onStarted(job);
    } catch (error) {
      if (error.code === "job_running") {
        say(message, t("job_running"), "warn");
        if (error.details.job_id) follow(error.details.job_id);
      } else {
        say(message, `${error.message} — ${advice(error.code)}`, "bad");
      }
      render();
    }
  }
  button.addEventListener("click", run);
  form.addEventListener("submit", (event) => { event.preventDefault(); run(); });
}
