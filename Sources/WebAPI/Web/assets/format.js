// Numbers, sizes, dates and durations in the reader's locale and time zone.
import { locale, t } from "./i18n.js";

/** B2's list price: $6 per TB-month, i.e. 0.006 USD per GB-month (decimal units, as Backblaze bills). */
export const usdPerGBMonth = 0.006;

export function number(value, digits = 0) {
  return new Intl.NumberFormat(locale, { maximumFractionDigits: digits, minimumFractionDigits: 0 }).format(value);
}

/** Decimal units, as Backblaze and Home Assistant show them. */
export function bytes(value) {
  if (value == null) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let unit = 0;
  let scaled = value;
  while (scaled >= 1000 && unit < units.length - 1) { scaled /= 1000; unit += 1; }
  return `${number(scaled, unit === 0 ? 0 : scaled < 10 ? 1 : 0)} ${units[unit]}`;
}

export function rate(bytesPerSecond) {
  return t("per_second", { value: bytes(bytesPerSecond) });
}

export function monthlyCost(totalBytes) {
  const dollars = (totalBytes / 1e9) * usdPerGBMonth;
  if (dollars < 0.005) return t("cost_below_cent");
  const amount = new Intl.NumberFormat(locale, { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(dollars);
  return t("cost_about", { amount });
}

export function dateTime(iso) {
  if (!iso) return "–";
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
}

export function shortDate(iso) {
  return new Intl.DateTimeFormat(locale, { day: "numeric", month: "short" }).format(new Date(iso));
}

export function shortTime(iso) {
  return new Intl.DateTimeFormat(locale, { hour: "numeric", minute: "2-digit" }).format(new Date(iso));
}

/** "in 5 minutes", "3 hours ago". */
export function relative(iso, now = Date.now()) {
  if (!iso) return "";
  const seconds = (new Date(iso).getTime() - now) / 1000;
  const format = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });
  const steps = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];
  for (const [unit, size] of steps) {
    if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
  }
  return format.format(Math.round(seconds), "second");
}

/** "42 s", "3 min 5 s", "1 h 12 min". */
export function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "–";
  const whole = Math.max(0, Math.round(seconds));
  if (whole < 60) return t("duration_s", { s: whole });
  if (whole < 3600) return t("duration_m", { m: Math.floor(whole / 60), s: whole % 60 });
  return t("duration_h", { h: Math.floor(whole / 3600), m: Math.floor((whole % 3600) / 60) });
}
