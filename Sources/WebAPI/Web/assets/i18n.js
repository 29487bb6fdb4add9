// Translations: one dictionary per language in lang/, chosen from navigator.languages, English as fallback.
// Strings take {name} placeholders; a plural string is an object keyed by Intl.PluralRules categories.
export const languages = ["en", "de", "nl", "fr", "es"];

let dictionary = {};
let english = {};
let plurals = new Intl.PluralRules("en");
/** The BCP 47 tag used for numbers and dates, e.g. "de-AT" when the browser prefers it. */
export let locale = "en";

/** The first of the browser's languages that we have, or English. */
export function pickLanguage(preferred) {
  for (const tag of preferred) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (languages.includes(base)) return { language: base, tag };
  }
  return { language: "en", tag: "en" };
}

export async function loadLanguage(preferred = navigator.languages?.length ? navigator.languages : [navigator.language || "en"]) {
  const { language, tag } = pickLanguage(preferred);
  english = (await import("./lang/en.js")).default;
  dictionary = language === "en" ? english : (await import(`./lang/${language}.js`)).default;
  try { locale = Intl.getCanonicalLocales(tag)[0]; } catch { locale = language; }
  plurals = new Intl.PluralRules(locale);
  document.documentElement.lang = language;
  return language;
}

/** The translation of key with {placeholders} filled in; vars.n picks the plural form. */
export function t(key, vars = {}) {
  let text = dictionary[key] ?? english[key] ?? key;
  if (typeof text === "object") text = text[plurals.select(vars.n ?? 0)] ?? text.other;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in vars ? String(vars[name]) : match));
}

/** Translates the static page: data-i18n sets the text, data-i18n-label the aria-label. */
export function translatePage(root = document) {
  for (const element of root.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of root.querySelectorAll("[data-i18n-label]")) element.setAttribute("aria-label", t(element.dataset.i18nLabel));
}
