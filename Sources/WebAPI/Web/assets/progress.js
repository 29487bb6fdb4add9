// A job's progress: step in words, a bar, bytes, transfer rate and time left.
import { t } from "./i18n.js";
import { bytes, duration, rate } from "./format.js";
import { destinationResults } from "./destinations.js";

export const isFinished = (job) => job.state === "done" || job.state === "failed";

/** Keeps the samples for one job's rate; one instance per place the progress is shown. */
export class ProgressView {
  constructor(container) {
    this.container = container;
    this.samples = [];
    this.jobID = null;
    this.step = null;
    container.replaceChildren(document.getElementById("progress-template").content.cloneNode(true));
    this.name = container.querySelector(".job-name");
    this.stepText = container.querySelector(".job-step");
    this.bar = container.querySelector(".bar");
    this.fill = container.querySelector(".fill");
    this.detail = container.querySelector(".progress-detail");
    container.querySelector(".progress-title").setAttribute("aria-live", "polite");
  }

  /** Bytes per second over the last ten seconds of this step, or null until a second has passed. */
  rateOf(job) {
    const now = performance.now();
    if (job.id !== this.jobID || job.step !== this.step) {
      this.samples = [];
      this.jobID = job.id;
      this.step = job.step;
    }
    this.samples.push({ at: now, bytes: job.bytes_done });
    while (this.samples.length > 2 && now - this.samples[0].at > 10000) this.samples.shift();
    const first = this.samples[0];
    const seconds = (now - first.at) / 1000;
    return seconds >= 1 && job.bytes_done > first.bytes ? (job.bytes_done - first.bytes) / seconds : null;
  }

  update(job) {
    this.container.hidden = false;
    this.container.dataset.state = job.state;
    this.container.dataset.job = job.id;
    const name = job.backup?.name ?? "";
    this.name.textContent = job.kind === "backup" ? name : `${t(`kind_${job.kind}`)}: ${name}`;
    const finished = isFinished(job);
    const words = job.state === "done" ? t("job_done") : job.state === "failed" ? t("job_failed") : t(`step_${job.step}`);
    if (this.stepText.textContent !== words) this.stepText.textContent = words;

    const total = job.bytes_total;
    const fraction = job.state === "done" ? 1 : total > 0 ? Math.min(1, job.bytes_done / total) : null;
    this.bar.classList.toggle("indeterminate", fraction === null);
    this.bar.classList.toggle("failed", job.state === "failed");
    this.bar.setAttribute("aria-label", words);
    if (fraction === null) {
      this.bar.removeAttribute("aria-valuenow");
      this.bar.setAttribute("aria-valuetext", t("working"));
      this.fill.style.width = "";
    } else {
      const percent = Math.round(fraction * 100);
      this.bar.setAttribute("aria-valuenow", String(percent));
      this.bar.setAttribute("aria-valuetext", `${percent} %`);
      this.fill.style.width = `${percent}%`;
    }

    const parts = [];
    if (finished) {
      if (job.state === "done") parts.push(t("finished_in", { duration: duration(job.duration_seconds) }));
      if (job.error) parts.push(job.error.message);
      if (job.bytes_total > 0) parts.push(bytes(job.bytes_total));
      for (const result of destinationResults(job)) parts.push(result.error ? `${result.text} (${result.error.message})` : result.text);
      for (const warning of job.warnings ?? []) parts.push(warning);
    } else {
      const speed = this.rateOf(job);
      if (total > 0) parts.push(t("bytes_of", { done: bytes(job.bytes_done), total: bytes(total) }));
      else if (job.bytes_done > 0) parts.push(bytes(job.bytes_done));
      if (speed) {
        parts.push(rate(speed));
        if (total > job.bytes_done) parts.push(t("time_left", { duration: duration((total - job.bytes_done) / speed) }));
      }
    }
    this.detail.textContent = parts.join(" · ");
  }
}
