/** Small DOM helpers for the dialog and the panel (themed with JupyterLab's classes). */

type Attrs = Record<string, string | number | boolean | undefined>;

/** An element with attributes (`false` / `undefined` left out) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string | null | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) {
      continue;
    }
    if (k === 'className') {
      el.className = String(v);
    } else if (k === 'text') {
      el.textContent = String(v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children) {
    if (c !== null && c !== undefined && c !== false) {
      el.append(c);
    }
  }
  return el;
}

/** A themed <select> with its options; `selected` picks one by value. */
export function select(
  id: string,
  options: { value: string; label: string }[],
  selected?: string | null
): HTMLSelectElement {
  const el = h('select', { id, className: 'jp-mod-styled' });
  for (const o of options) {
    const opt = h('option', { value: o.value, text: o.label });
    opt.selected = o.value === selected;
    el.append(opt);
  }
  return el;
}

/** A JupyterLab-styled button. */
export function button(label: string, attrs: Attrs = {}, onClick?: (e: MouseEvent) => void): HTMLButtonElement {
  const b = h('button', { type: 'button', ...attrs }, label);
  if (onClick) {
    b.addEventListener('click', onClick);
  }
  return b;
}
