// The ingress page. Every URL is relative: under ingress the page lives below /api/hassio_ingress/<token>/.
import { loadLanguage, t, translatePage } from "./i18n.js";
import { getJob } from "./api.js";
import { connect } from "./live.js";
import { isFinished } from "./progress.js";
import { setText } from "./dom.js";
import * as dashboard from "./dashboard.js";
import * as backups from "./backups.js";
import { showRestoreJob } from "./restore.js";
import { loadHistory } from "./history.js";
import { loadSetupCheck } from "./setup-check.js";

await loadLanguage();
translatePage();

const running = new Set();

/** Every job update, from the event stream, polling, or an action that started one. */
function onJob(job) {
  dashboard.showJob(job);
  showRestoreJob(job);
  if (!isFinished(job)) {
    running.add(job.id);
  } else if (running.delete(job.id)) {
    // Seen running on this page and now ended: the backups and the history have changed.
    backups.load();
    loadHistory();
  }
}

const follow = (jobOrID) => (typeof jobOrID === "string" ? getJob(jobOrID).then(onJob, () => {}) : onJob(jobOrID));

dashboard.setUpBackupNow({ onStarted: onJob, follow });
backups.setUpBackups({ onLoaded: dashboard.showNewestCheck, onJob: follow });

const connection = document.getElementById("connection");
connect({
  onStatus: (status) => {
    dashboard.showStatus(status);
    backups.showStatus(status);
  },
  onJob,
  onConnection: (state) => {
    setText(connection, t(`connection_${state}`));
    connection.dataset.state = state;
  },
});

backups.load();
loadHistory();
loadSetupCheck();
checkHealth();
setInterval(checkHealth, 60000);
// Relative times ("in 5 minutes") age; redraw them twice a minute.
setInterval(dashboard.render, 30000);

/** A failing component (database, disk) is shown above everything else. */
async function checkHealth() {
  const banner = document.getElementById("health-banner");
  try {
    const response = await fetch("health", { cache: "no-store" });
    const health = await response.json();
    const failing = Object.entries(health.checks ?? {}).filter(([, result]) => result !== "ok");
    banner.hidden = failing.length === 0;
    banner.textContent = failing.length ? t("health_failing", { problems: failing.map(([name, result]) => `${name}: ${result}`).join("; ") }) : "";
    document.getElementById("footer").textContent = t("footer", { version: health.version });
  } catch {
    // The connection indicator already says when the add-on does not answer.
  }
}
