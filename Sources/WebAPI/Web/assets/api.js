// The add-on's REST API. Every URL is relative: under ingress the page lives below
// /api/hassio_ingress/<token>/, and the ingress proxy authenticates, so no token is ever sent.

export class APIError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** Calls the API; resolves to the decoded JSON body, rejects with an APIError carrying the API's error code. */
export async function api(path, { method = "GET", body } = {}) {
  const init = { method, cache: "no-store", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new APIError(0, "offline", error.message);
  }
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!response.ok) {
    const error = json?.error ?? {};
    throw new APIError(response.status, error.code ?? `http_${response.status}`, error.message ?? response.statusText, error);
  }
  return json;
}

const slugPath = (slug) => `api/backups/${encodeURIComponent(slug)}`;

export const getStatus = () => api("api/status");
export const getJob = (id) => api(`api/jobs/${encodeURIComponent(id)}`);
export const getJobs = (limit) => api(`api/jobs?limit=${limit}`);
export const getBackups = () => api("api/backups");
export const getSetupCheck = () => api("api/setup-check");
export const startBackup = (request) => api("api/backups", { method: "POST", body: request });
export const pin = (slug, pinned) => api(`${slugPath(slug)}/${pinned ? "pin" : "unpin"}`, { method: "POST" });
/** destination "s3" checks the S3 copy; without it, B2's (the only one older add-ons know). */
export const verify = (slug, destination) =>
  api(`${slugPath(slug)}/verify${destination ? `?destination=${encodeURIComponent(destination)}` : ""}`, { method: "POST" });
/** source ("auto", "b2" or "s3") only when the page offers the choice: older add-ons take no body for a pull. */
export const pull = (slug, source) => api(`${slugPath(slug)}/pull`, { method: "POST", body: source ? { source } : undefined });
export const restore = (slug, request) => api(`${slugPath(slug)}/restore`, { method: "POST", body: request });
export const remove = (slug, location, force) =>
  api(`${slugPath(slug)}?location=${encodeURIComponent(location)}${force ? "&force=true" : ""}`, { method: "DELETE" });
