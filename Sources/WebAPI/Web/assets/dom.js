// Small DOM helpers: elements built with textContent only (never innerHTML), and modal dialogs.

/** h("p", { class: "x", onclick }, "text", child…): attributes, event handlers (on…), then children. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value == null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(...children.flat().filter((child) => child != null && child !== false));
  return element;
}

const svgNS = "http://www.w3.org/2000/svg";

/** The same for SVG elements. */
export function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(svgNS, tag);
  for (const [name, value] of Object.entries(attributes)) if (value != null) element.setAttribute(name, String(value));
  element.append(...children.flat().filter((child) => child != null));
  return element;
}

/**
 * Opens a modal <dialog> built from content; showModal() keeps focus inside and Escape closes it.
 * Focus goes to the first [autofocus] or field, and back to the element that opened it on close.
 * Resolves with the dialog's returnValue.
 */
export function openDialog({ title, content, className = "" }) {
  const opener = document.activeElement;
  const titleId = `dialog-title-${Math.random().toString(36).slice(2)}`;
  const dialog = h("dialog", { class: `dialog ${className}`, "aria-labelledby": titleId },
    h("h2", { id: titleId }, title), content);
  document.body.append(dialog);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(dialog.returnValue);
    });
    dialog.showModal();
    focusFirst(dialog);
  });
}

/** Moves focus to the first [autofocus] element, else the first field or button, in container. */
export function focusFirst(container) {
  const target = container.querySelector("[autofocus]") ??
    container.querySelector("input:not([disabled]):not([type=hidden]), select, textarea, button:not([disabled])");
  target?.focus();
}

/** Sets an element's text only when it changes, so live regions do not repeat themselves. */
export function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

/** Sets a message element's text and tone (ok, bad or plain). */
export function say(element, text, tone = "") {
  element.textContent = text ?? "";
  element.className = `message ${tone}`;
}
