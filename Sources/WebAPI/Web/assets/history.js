// History: an SVG chart of backup size and duration over time (failures in red), and the run log.
import { t } from "./i18n.js";
import { bytes, dateTime, duration, number, shortDate, shortTime } from "./format.js";
import { advice } from "./advice.js";
import { getJobs } from "./api.js";
import { h, s } from "./dom.js";
import { destinationResults } from "./destinations.js";

const chart = document.getElementById("chart");
const runs = document.getElementById("runs");
// Phones show the run log as cards, so fewer at a time.
const pageSize = matchMedia("(max-width: 600px)").matches ? 5 : 20;
let shown = pageSize;
let jobs = [];

export async function loadHistory() {
  try {
    ({ jobs } = await getJobs(100));
    drawChart();
  } catch (error) {
    chart.replaceChildren(h("p", { class: "muted" }, error.code === "not_configured" ? t("history_not_configured") : error.message));
    jobs = [];
  }
  drawRuns();
  document.getElementById("chart-legend").hidden = !chart.querySelector("svg");
  document.getElementById("runs-title").hidden = jobs.length === 0;
}

// The chart is drawn at the width it has, so its text stays the size of the page's text.
let drawnWidth = 0;
new ResizeObserver(() => {
  if (Math.abs(chart.clientWidth - drawnWidth) > 8 && jobs.length) drawChart();
}).observe(chart);

/** Nice round steps for an axis from 0 to max. */
function ticks(max, count = 4) {
  if (max <= 0) return [0];
  const rough = max / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= rough);
  const values = [];
  for (let value = 0; value <= max + step * 0.001; value += step) values.push(value);
  if (values[values.length - 1] < max) values.push(values[values.length - 1] + step);
  return values;
}

function drawChart() {
  const backups = jobs.filter((job) => job.kind === "backup" && job.finished_at).reverse();
  if (backups.length === 0) {
    chart.replaceChildren(h("p", { class: "muted empty" }, t("no_history")));
    return;
  }
  drawnWidth = chart.clientWidth;
  const width = Math.max(280, drawnWidth || 720), height = width < 500 ? 180 : 220;
  const pad = { left: 58, right: 50, top: 12, bottom: 28 };
  const plotWidth = width - pad.left - pad.right, plotHeight = height - pad.top - pad.bottom;
  const sizeOf = (job) => job.remote?.size ?? job.bytes_total ?? 0;
  const sizeTicks = ticks(Math.max(...backups.map(sizeOf), 1));
  // Durations tick in seconds under two minutes, in whole minutes above.
  const longest = Math.max(...backups.map((job) => job.duration_seconds ?? 0), 1);
  const inMinutes = longest >= 120;
  const timeTicks = inMinutes ? ticks(longest / 60).map((minutes) => minutes * 60) : ticks(longest);
  const timeLabel = (seconds) => (inMinutes ? t("axis_minutes", { m: number(seconds / 60, 1) }) : t("duration_s", { s: number(seconds) }));
  const maxSize = sizeTicks[sizeTicks.length - 1], maxTime = timeTicks[timeTicks.length - 1];
  const slot = plotWidth / backups.length;
  const x = (index) => pad.left + slot * (index + 0.5);
  const ySize = (value) => pad.top + plotHeight * (1 - value / maxSize);
  const yTime = (value) => pad.top + plotHeight * (1 - value / maxTime);
  const barWidth = Math.max(2, Math.min(28, slot * 0.6));

  const grid = sizeTicks.map((value) => s("g", {},
    s("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: ySize(value), y2: ySize(value) }),
    s("text", { class: "axis", x: pad.left - 6, y: ySize(value) + 4, "text-anchor": "end" }, bytes(value))));
  const rightAxis = timeTicks.map((value) =>
    s("text", { class: "axis", x: width - pad.right + 6, y: yTime(value) + 4 }, timeLabel(value)));
  // Within two days the time tells the runs apart; over longer spans the date.
  const span = new Date(backups[backups.length - 1].started_at) - new Date(backups[0].started_at);
  const label = span < 2 * 86400000 ? shortTime : shortDate;
  const labelEvery = Math.ceil(backups.length / Math.max(2, Math.floor(plotWidth / 90)));
  const dates = backups.map((job, index) => (index % labelEvery === 0 || index === backups.length - 1) && (backups.length - 1 - index >= labelEvery / 2 || index === backups.length - 1)
    ? s("text", { class: "axis", x: x(index), y: height - 8, "text-anchor": "middle" }, label(job.started_at)) : null);

  const bars = backups.map((job, index) => {
    const title = s("title", {}, `${dateTime(job.started_at)} · ${job.state === "failed" ? `${t("job_failed")}: ${job.error?.code ?? ""}` : `${bytes(sizeOf(job))} · ${duration(job.duration_seconds)}`}`);
    if (job.state === "failed") {
      const cx = x(index), cy = pad.top + plotHeight - 8;
      return s("g", { class: "failure" }, title,
        s("circle", { cx, cy, r: 7 }),
        s("path", { d: `M${cx - 3.5} ${cy - 3.5}L${cx + 3.5} ${cy + 3.5}M${cx + 3.5} ${cy - 3.5}L${cx - 3.5} ${cy + 3.5}` }));
    }
    const top = ySize(sizeOf(job));
    return s("rect", { class: "bar-size", x: x(index) - barWidth / 2, y: top, width: barWidth, height: pad.top + plotHeight - top, rx: 2 }, title);
  });
  const timed = backups.map((job, index) => [job, index]).filter(([job]) => job.state !== "failed" && job.duration_seconds != null);
  const line = timed.length > 1
    ? s("polyline", { class: "line-duration", points: timed.map(([job, index]) => `${x(index)},${yTime(job.duration_seconds)}`).join(" ") })
    : null;
  const dots = timed.map(([job, index]) => s("circle", { class: "dot-duration", cx: x(index), cy: yTime(job.duration_seconds), r: 3 }));

  const failures = backups.filter((job) => job.state === "failed").length;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "chart-summary", preserveAspectRatio: "xMidYMid meet" },
    s("desc", { id: "chart-summary" }, t("chart_summary", { n: backups.length, failures, from: dateTime(backups[0].started_at), to: dateTime(backups[backups.length - 1].started_at) })),
    grid, rightAxis, dates, bars, line, dots,
    s("line", { class: "axis-line", x1: pad.left, x2: width - pad.right, y1: pad.top + plotHeight, y2: pad.top + plotHeight }));
  chart.replaceChildren(svg);
}

const outcome = (job) => {
  if (job.state === "done") return h("span", { class: "ok" }, h("span", { "aria-hidden": "true" }, "✓ "), t("job_done"));
  if (job.state === "failed") return h("span", { class: "bad" }, h("span", { "aria-hidden": "true" }, "✗ "), t("job_failed"));
  return h("span", { class: "busy" }, t(`step_${job.step}`));
};

/** The job's outcome, and with a second destination each copy's: "B2: verified", "S3: failed" with its error. */
const result = (job) => [outcome(job), ...destinationResults(job).map((copy) =>
  h("span", { class: "small block", dataset: { destination: copy.id, state: copy.state } },
    h("span", { class: copy.tone }, h("span", { "aria-hidden": "true" }, copy.mark), copy.text),
    copy.error ? h("span", { class: "muted block" }, `${copy.error.message} (${copy.error.code})`) : null))];

function drawRuns() {
  if (jobs.length === 0) {
    runs.replaceChildren();
    return;
  }
  const columns = ["col_started", "col_kind", "col_trigger", "col_result", "col_duration", "col_size", "col_error"];
  const rows = jobs.slice(0, shown).map((job) => h("tr", { dataset: { job: job.id, state: job.state } },
    h("td", { "data-label": t("col_started") }, dateTime(job.started_at)),
    h("td", { "data-label": t("col_kind") }, t(`kind_${job.kind}`), h("span", { class: "muted small block" }, job.backup?.name ?? "")),
    h("td", { "data-label": t("col_trigger") }, t(`trigger_${job.trigger}`)),
    h("td", { "data-label": t("col_result") }, result(job)),
    h("td", { "data-label": t("col_duration") }, duration(job.duration_seconds)),
    h("td", { "data-label": t("col_size") }, job.bytes_total ? bytes(job.bytes_total) : "–"),
    h("td", { "data-label": t("col_error") }, job.error
      ? [h("span", {}, advice(job.error.code)), h("span", { class: "muted small block" }, `${job.error.message} (${job.error.code})`)]
      : job.warnings?.length ? h("span", { class: "muted small" }, job.warnings.join("; ")) : "")));
  const more = jobs.length > shown
    ? h("button", { type: "button", class: "text", onclick: () => { shown += pageSize; drawRuns(); } }, t("show_more", { n: jobs.length - shown }))
    : null;
  runs.replaceChildren(h("div", { class: "table-wrap" },
    h("table", { class: "runs" }, h("caption", { class: "sr-only" }, t("run_log")),
      h("thead", {}, h("tr", {}, columns.map((key) => h("th", { scope: "col" }, t(key))))),
      h("tbody", {}, rows))), ...(more ? [more] : []));
}
