// What to do about an error code, in one short line (the API's own message is shown beside it).
import { t } from "./i18n.js";

const known = new Set([
  "backup_failed", "supervisor_refused", "supervisor_unreachable", "supervisor_timeout", "supervisor_unauthorized",
  "supervisor_invalid_response", "supervisor_job_unknown", "b2_auth_failed", "b2_cap_exceeded", "b2_unreachable",
  "b2_unavailable", "b2_invalid_response", "verify_mismatch", "interrupted", "local_storage", "not_restorable",
  "restore_failed", "download_incomplete", "backup_lost", "slug_mismatch", "not_configured", "offline",
]);

const aliases = { supervisor_timeout: "supervisor_unreachable", b2_unavailable: "b2_unreachable", supervisor_job_unknown: "supervisor_invalid_response" };

export function advice(code) {
  if (!known.has(code)) return t("advice_default");
  return t(`advice_${aliases[code] ?? code}`);
}
