/**
 * A Dockerfile read into stages of instructions: enough to check deploy/Dockerfile against the
 * code (continuation lines joined, comments and parser directives dropped, ARG defaults
 * substituted, exec-form JSON arrays decoded).
 */

export interface Instruction {
  keyword: string;
  /** Everything after the keyword, continuation lines joined with a space. */
  args: string;
  line: number;
}

export interface Stage {
  /** The image, with ARG defaults substituted. */
  from: string;
  name: string | null;
  instructions: Instruction[];
  /** ARG defaults visible in the stage (global ones redeclared or not, as Docker scopes them). */
  args: Map<string, string>;
}

export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  let pending: { keyword: string; parts: string[]; line: number } | null = null;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    if (pending === null && (trimmed === '' || trimmed.startsWith('#'))) continue;
    if (pending !== null && trimmed.startsWith('#')) continue; // comments inside continuations
    const continued = trimmed.endsWith('\\');
    const body = continued ? trimmed.slice(0, -1).trim() : trimmed;
    if (pending === null) {
      const m = /^(\S+)\s*(.*)$/.exec(body);
      if (m === null) continue;
      pending = { keyword: m[1]!.toUpperCase(), parts: [m[2]!], line: i + 1 };
    } else if (body !== '') {
      pending.parts.push(body);
    }
    if (!continued) {
      out.push({ keyword: pending.keyword, args: pending.parts.filter((p) => p !== '').join(' '), line: pending.line });
      pending = null;
    }
  }
  if (pending !== null) out.push({ keyword: pending.keyword, args: pending.parts.join(' '), line: pending.line });
  return out;
}

/** `${NAME}` and `$NAME` replaced by their ARG defaults (unknown names are left as they are). */
export function substitute(text: string, args: ReadonlyMap<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, a: string | undefined, b: string | undefined) => {
    const v = args.get((a ?? b)!);
    return v === undefined ? whole : v;
  });
}

function argDefault(args: string): [string, string | undefined] {
  const eq = args.indexOf('=');
  return eq === -1 ? [args.trim(), undefined] : [args.slice(0, eq).trim(), args.slice(eq + 1).trim()];
}

export function stages(instructions: readonly Instruction[]): Stage[] {
  const globalArgs = new Map<string, string>();
  const out: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'ARG' && out.length === 0) {
      const [k, v] = argDefault(ins.args);
      if (v !== undefined) globalArgs.set(k, v);
      continue;
    }
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (m === null) throw new Error(`line ${ins.line}: cannot read FROM ${ins.args}`);
      out.push({ from: substitute(m[1]!, globalArgs), name: m[2] ?? null, instructions: [], args: new Map() });
      continue;
    }
    const stage = out[out.length - 1];
    if (stage === undefined) throw new Error(`line ${ins.line}: ${ins.keyword} before FROM`);
    if (ins.keyword === 'ARG') {
      const [k, v] = argDefault(ins.args);
      const value = v ?? globalArgs.get(k);
      if (value !== undefined) stage.args.set(k, value);
    }
    stage.instructions.push(ins);
  }
  return out;
}

/** The JSON array of an exec-form instruction (ENTRYPOINT ["a", "b"]), or null for shell form. */
export function execForm(args: string): string[] | null {
  const t = args.trim();
  if (!t.startsWith('[')) return null;
  const parsed: unknown = JSON.parse(t);
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) throw new Error(`not a string array: ${t}`);
  return parsed as string[];
}

/** `KEY=value KEY2=value` (or the legacy `KEY value`) of an ENV instruction. */
export function envPairs(args: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!args.includes('=')) {
    const m = /^(\S+)\s+(.*)$/.exec(args.trim());
    if (m !== null) out.set(m[1]!, m[2]!);
    return out;
  }
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    const v = m[2]!;
    out.set(m[1]!, v.startsWith('"') ? (JSON.parse(v) as string) : v);
  }
  return out;
}

/**
 * `key="value" key2=value` of a LABEL instruction. Keys may hold dots and dashes
 * (org.opencontainers.image.title), values may be quoted.
 */
export function labelPairs(args: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of args.matchAll(/([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    const v = m[2]!;
    out.set(m[1]!, v.startsWith('"') ? (JSON.parse(v) as string) : v);
  }
  return out;
}

/**
 * End of life of Node.js's LTS lines (github.com/nodejs/Release, schedule.json): an image on a
 * line past its date gets no security fixes.
 */
export const NODE_LTS_END_OF_LIFE: Readonly<Record<number, string>> = {
  18: '2025-04-30',
  20: '2026-04-30',
  22: '2027-04-30',
  24: '2028-04-30',
  26: '2029-04-30',
};
