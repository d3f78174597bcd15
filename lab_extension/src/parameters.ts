/**
 * The notebook's parameters: the cell tagged `parameters` (papermill's convention),
 * its simple assignments, and the values people type. Pure: no JupyterLab imports.
 */

/** One assignment found in the parameters cell. */
export interface IParameter {
  name: string;
  /** the default as written in the cell, e.g. `0.01` or `"resnet50"` */
  text: string;
  /** whether `text` is a literal we can turn into JSON (numbers, strings, lists ...) */
  literal: boolean;
}

interface ICell {
  cell_type?: string;
  source?: string | string[];
  metadata?: { tags?: string[] } & Record<string, unknown>;
}

/** The source of the first code cell tagged `parameters`, or null when there is none. */
export function parametersCell(notebook: { cells?: ICell[] } | null | undefined): string | null {
  for (const cell of notebook?.cells ?? []) {
    const tags = cell.metadata?.tags;
    if (cell.cell_type === 'code' && Array.isArray(tags) && tags.includes('parameters')) {
      return Array.isArray(cell.source) ? cell.source.join('') : cell.source ?? '';
    }
  }
  return null;
}

const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*[^=]+?)?\s*=(?!=)\s*(.+)$/;

/** Top-level `name = value` lines (annotations allowed); comments stripped. */
export function parseParameters(source: string): IParameter[] {
  const found = new Map<string, IParameter>();
  for (const raw of source.split('\n')) {
    if (/^\s/.test(raw)) {
      continue; // inside a block: not a top-level parameter
    }
    const m = ASSIGNMENT.exec(stripComment(raw).trim());
    if (!m) {
      continue;
    }
    const text = m[2].trim();
    found.set(m[1], { name: m[1], text, literal: pythonLiteral(text).ok });
  }
  return [...found.values()];
}

/** A line without its trailing `# comment` (a `#` inside a string stays). */
export function stripComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === '\\') {
        i++;
      } else if (c === quote) {
        quote = null;
      }
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#') {
      return line.slice(0, i);
    }
  }
  return line;
}

export type Parsed = { ok: true; value: unknown } | { ok: false };

/** A Python literal (numbers, strings, True/False/None, lists, tuples, dicts) as JSON. */
export function pythonLiteral(text: string): Parsed {
  const p = new LiteralParser(text);
  try {
    const value = p.value();
    p.space();
    return p.done() ? { ok: true, value } : { ok: false };
  } catch {
    return { ok: false };
  }
}

/**
 * What a typed value means: a Python or JSON literal when it is one (`3`, `0.5`, `True`,
 * `"a"`, `[1, 2]`), otherwise the text itself as a string (`resnet50`).
 */
export function typedValue(text: string): unknown {
  const t = text.trim();
  const py = pythonLiteral(t);
  if (py.ok) {
    return py.value;
  }
  try {
    return JSON.parse(t);
  } catch {
    return text;
  }
}

/** A JSON value shown as the Python literal people would write. */
export function toPython(value: unknown): string {
  if (value === null || value === undefined) {
    return 'None';
  }
  if (value === true) {
    return 'True';
  }
  if (value === false) {
    return 'False';
  }
  if (typeof value === 'string') {
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map(toPython).join(', ')}]`;
  }
  if (typeof value === 'object') {
    const items = Object.entries(value as Record<string, unknown>).map(
      ([k, v]) => `${JSON.stringify(k)}: ${toPython(v)}`
    );
    return `{${items.join(', ')}}`;
  }
  return String(value);
}

/**
 * The parameters to send: the values that differ from the notebook's defaults (papermill
 * injects them after the parameters cell). `edited` maps names to what the user typed.
 */
export function overrides(detected: IParameter[], edited: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of detected) {
    const typed = edited[p.name];
    if (typed === undefined || typed.trim() === '' || typed.trim() === p.text) {
      continue;
    }
    out[p.name] = typedValue(typed);
  }
  return out;
}

class LiteralParser {
  private i = 0;
  constructor(private readonly s: string) {}

  done(): boolean {
    return this.i >= this.s.length;
  }

  space(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i])) {
      this.i++;
    }
  }

  value(): unknown {
    this.space();
    const c = this.s[this.i];
    if (c === '[' || c === '(') {
      return this.sequence(c === '[' ? ']' : ')');
    }
    if (c === '{') {
      return this.mapping();
    }
    if (c === '"' || c === "'") {
      return this.string();
    }
    const word = /^(True|False|None)\b/.exec(this.s.slice(this.i));
    if (word) {
      this.i += word[1].length;
      return word[1] === 'True' ? true : word[1] === 'False' ? false : null;
    }
    const num = /^[-+]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][-+]?\d+)?/.exec(this.s.slice(this.i));
    if (num && num[0] !== '-' && num[0] !== '+') {
      this.i += num[0].length;
      const n = Number(num[0].replace(/_/g, ''));
      if (Number.isNaN(n)) {
        throw new Error('not a number');
      }
      return n;
    }
    throw new Error(`unexpected ${c}`);
  }

  private expect(c: string): void {
    this.space();
    if (this.s[this.i] !== c) {
      throw new Error(`expected ${c}`);
    }
    this.i++;
  }

  private sequence(close: string): unknown[] {
    this.i++;
    const out: unknown[] = [];
    for (;;) {
      this.space();
      if (this.s[this.i] === close) {
        this.i++;
        return out;
      }
      out.push(this.value());
      this.space();
      if (this.s[this.i] === ',') {
        this.i++;
      } else {
        this.expect(close);
        return out;
      }
    }
  }

  private mapping(): Record<string, unknown> {
    this.i++;
    const out: Record<string, unknown> = {};
    for (;;) {
      this.space();
      if (this.s[this.i] === '}') {
        this.i++;
        return out;
      }
      const key = this.value();
      if (typeof key !== 'string' && typeof key !== 'number') {
        throw new Error('keys must be strings or numbers');
      }
      this.expect(':');
      out[String(key)] = this.value();
      this.space();
      if (this.s[this.i] === ',') {
        this.i++;
      } else {
        this.expect('}');
        return out;
      }
    }
  }

  private string(): string {
    const quote = this.s[this.i];
    const triple = this.s.startsWith(quote.repeat(3), this.i);
    const end = triple ? quote.repeat(3) : quote;
    this.i += end.length;
    let out = '';
    const escapes: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
    while (this.i < this.s.length) {
      if (this.s.startsWith(end, this.i)) {
        this.i += end.length;
        return out;
      }
      const c = this.s[this.i++];
      if (c === '\\') {
        const e = this.s[this.i++];
        out += escapes[e] ?? `\\${e}`;
      } else {
        out += c;
      }
    }
    throw new Error('unterminated string');
  }
}
