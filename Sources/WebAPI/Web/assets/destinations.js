// Where backups go: Backblaze B2, and optionally a second, S3-compatible destination.
// status.destinations lists them; an add-on from before destinations has only B2, derived from its older fields.
import { t } from "./i18n.js";

/** The destinations of a status, B2 first; [] before the first status. */
export function destinationsOf(status) {
  if (!status) return [];
  if (Array.isArray(status.destinations) && status.destinations.length) return status.destinations;
  const error = String(status.last_error?.code ?? "").startsWith("b2_") ? status.last_error : null;
  const success = status.last_success;
  return [{
    id: "b2",
    name: "Backblaze B2",
    bucket: status.setup?.bucket ?? "",
    required: true,
    state: error ? "failing" : status.b2 ? "ok" : "unknown",
    backups: status.b2?.backups ?? null,
    bytes: status.b2?.bytes ?? null,
    last_verified: success?.at ? { slug: null, name: success.name, at: success.at } : null,
    last_error: error ? { code: error.code, message: error.message, at: error.at ?? null } : null,
  }];
}

/** A destination's short name for chips and lists: "B2", "S3". */
export const shortName = (id) => t(`in_${id}`);

/** A job's per-destination results, or [] for runs from before destinations (or other kinds of job). */
export const jobDestinations = (job) => (Array.isArray(job?.destinations) ? job.destinations : []);

const resultTones = { verified: "ok", failed: "bad", pending: "muted" };
const resultMarks = { verified: "✓ ", failed: "✗ ", pending: "" };

/**
 * Where a job's copies ended up, one entry per destination ("B2: verified", "S3: failed" with the error), for
 * runs that had a second destination; [] for B2 alone, whose result is the job's own.
 */
export function destinationResults(job) {
  const list = jobDestinations(job);
  if (list.length < 2) return [];
  return list.map((destination) => {
    const state = destination.state in resultTones ? destination.state : "pending";
    return {
      id: destination.id,
      state,
      tone: resultTones[state],
      mark: resultMarks[state],
      text: t("copy_result", { where: shortName(destination.id), result: t(`copy_${state}`) }),
      error: destination.error ?? null,
    };
  });
}
