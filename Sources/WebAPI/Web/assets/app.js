"use strict";
// All URLs are relative: under ingress the page lives below /api/hassio_ingress/<token>/.
async function refresh() {
  const status = document.getElementById("status");
  const checks = document.getElementById("checks");
  try {
    const response = await fetch("health", { cache: "no-store" });
    const health = await response.json();
    document.getElementById("version").textContent = "Version " + health.version;
    const ok = health.status === "ok";
    status.textContent = ok ? "Running" : "Needs attention";
    status.className = "status " + (ok ? "ok" : "bad");
    checks.replaceChildren(...Object.entries(health.checks).map(([name, result]) => {
      const item = document.createElement("li");
      item.textContent = (result === "ok" ? "✔ " : "✘ ") + name + (result === "ok" ? "" : ": " + result);
      return item;
    }));
  } catch (error) {
    status.textContent = "The add-on does not answer: " + error.message;
    status.className = "status bad";
  }
}
refresh();
setInterval(refresh, 30000);
