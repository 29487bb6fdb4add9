// The setup check: one green or red line per capability, with the fix; hidden when the add-on has none.
import { t } from "./i18n.js";
import { getSetupCheck } from "./api.js";
import { h } from "./dom.js";

const card = document.getElementById("setup-card");
const list = document.getElementById("setup-checks");

export async function loadSetupCheck() {
  list.setAttribute("aria-busy", "true");
  try {
    const { checks } = await getSetupCheck();
    card.hidden = false;
    list.replaceChildren(...checks.map((check) => h("li", { class: check.ok ? "ok" : "bad", dataset: { check: check.id } },
      h("span", { class: "icon", "aria-hidden": "true" }, check.ok ? "✓" : "✗"),
      h("div", {},
        h("span", { class: "strong" }, check.title),
        h("span", { class: "sr-only" }, check.ok ? t("check_ok") : t("check_failed")),
        check.detail ? h("span", { class: "muted small block" }, check.detail) : null,
        !check.ok && check.fix ? h("span", { class: "fix small block" }, t("fix", { fix: check.fix })) : null))));
  } catch (error) {
    if (error.status === 404) card.hidden = true;
    else if (!card.hidden) list.replaceChildren(h("li", { class: "bad" }, error.message));
  } finally {
    list.removeAttribute("aria-busy");
  }
}

document.getElementById("setup-refresh").addEventListener("click", loadSetupCheck);
