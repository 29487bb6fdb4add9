// Live updates: Server-Sent Events from api/events (`status` and `job` events), with polling of
// api/status every 2 s while the event stream is unavailable (older add-on, proxy trouble, restart).
import { getJob, getStatus } from "./api.js";

const pollInterval = 2000;
const reconnectDelay = 10000;

/**
 * Calls onStatus(status) and onJob(job) as things change, and onConnection("live" | "polling" | "offline").
 * A job that disappears from status.running_job while polling is fetched once more, so its end is seen.
 */
export function connect({ onStatus, onJob, onConnection }) {
  let source = null;
  let streamWorked = false;
  let pollTimer = null;
  let runningID = null;

  function deliverStatus(status) {
    onStatus(status);
    const running = status.running_job;
    if (running) {
      runningID = running.id;
      onJob(running);
    } else if (runningID) {
      const finished = runningID;
      runningID = null;
      getJob(finished).then(onJob, () => {});
    }
  }

  async function poll() {
    try {
      deliverStatus(await getStatus());
      if (!source || source.readyState !== EventSource.OPEN) onConnection("polling");
    } catch {
      onConnection("offline");
    }
  }

  function startPolling() {
    if (pollTimer) return;
    pollTimer = setInterval(poll, pollInterval);
    poll();
  }

  function stopPolling() {
    clearInterval(pollTimer);
    pollTimer = null;
  }

  function openStream() {
    if (typeof EventSource === "undefined") return startPolling();
    source = new EventSource("api/events");
    source.addEventListener("open", () => {
      streamWorked = true;
      stopPolling();
      onConnection("live");
    });
    source.addEventListener("status", (event) => {
      try { deliverStatus(JSON.parse(event.data)); } catch { /* a malformed event is skipped */ }
    });
    source.addEventListener("job", (event) => {
      try {
        const job = JSON.parse(event.data);
        runningID = job.finished_at ? null : job.id;
        onJob(job);
      } catch { /* skipped */ }
    });
    source.addEventListener("error", () => {
      startPolling();
      if (source.readyState === EventSource.CLOSED) {
        // Refused (404 on an add-on without events, or a proxy error): keep polling, and try again
        // later only when the stream worked before (the add-on restarted).
        source = null;
        if (streamWorked) setTimeout(openStream, reconnectDelay);
      }
    });
  }

  openStream();
  // The first picture without waiting for the stream.
  getStatus().then(deliverStatus, () => { onConnection("offline"); startPolling(); });
}
