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
async function showSetup() {
  const setup = document.getElementById("setup");
  try {
    const response = await fetch("api/status", { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : "HTTP " + response.status);
    const missing = body.setup.missing_options;
    setup.textContent = missing.length === 0
      ? "B2 bucket \u201c" + body.setup.bucket + "\u201d, folder \u201c" + body.setup.prefix + "\u201d."
      : "Still to set on the Configuration tab: " + missing.join(", ") + ". Then restart the add-on.";
    setup.className = missing.length === 0 ? "status ok" : "status bad";
  } catch (error) {
    setup.textContent = "Cannot read the setup: " + error.message;
    setup.className = "status bad";
  }
}
refresh();
showSetup();
setInterval(refresh, 30000);
