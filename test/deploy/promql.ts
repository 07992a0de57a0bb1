/**
 * Just enough PromQL to check dashboards and alert rules against synfin's metrics: finds every
 * series selector in an expression (metric name and label matchers), skipping function and
 * aggregation names, grouping label lists (by, without, on, ignoring, group_left/right), string
 * literals, range and subquery brackets, numbers and durations, and Grafana variables ($name,
 * ${name}). An identifier that is followed by "(" but is not a PromQL function is an error, so
 * a typo in a function name does not pass as a metric.
 *
 *   selectors('sum by (le) (rate(x_bucket{job=~"$job",result="ok"}[5m]))')
 *   // → [{ metric: 'x_bucket', matchers: [{ name: 'job', op: '=~', value: '$job' }, { name: 'result', op: '=', value: 'ok' }] }]
 */

export type MatchOp = '=' | '!=' | '=~' | '!~';

export interface Matcher {
  name: string;
  op: MatchOp;
  value: string;
}

export interface Selector {
  /** The metric name ('' for a bare `{...}` selector without __name__). */
  metric: string;
  matchers: Matcher[];
}

export class PromQLScanError extends Error {
  readonly code = 'ERR_PROMQL_SCAN';
  constructor(message: string, expr: string, at: number) {
    super(`${message} at ${at} in: ${expr}`);
    this.name = 'PromQLScanError';
  }
}

/** Aggregation operators (they take `by`/`without` before or after their arguments). */
const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);

/** PromQL functions (Prometheus 2.x/3.x). */
const FUNCTIONS = new Set([
  'abs', 'absent', 'absent_over_time', 'acos', 'acosh', 'asin', 'asinh', 'atan', 'atanh', 'avg_over_time',
  'ceil', 'changes', 'clamp', 'clamp_max', 'clamp_min', 'cos', 'cosh', 'count_over_time', 'day_of_month',
  'day_of_week', 'day_of_year', 'days_in_month', 'deg', 'delta', 'deriv', 'exp', 'floor', 'histogram_avg',
  'histogram_count', 'histogram_fraction', 'histogram_quantile', 'histogram_stddev', 'histogram_stdvar',
  'histogram_sum', 'holt_winters', 'double_exponential_smoothing', 'hour', 'idelta', 'increase', 'irate',
  'label_join', 'label_replace', 'last_over_time', 'ln', 'log10', 'log2', 'mad_over_time', 'max_over_time',
  'min_over_time', 'minute', 'month', 'pi', 'predict_linear', 'present_over_time', 'quantile_over_time',
  'rad', 'rate', 'resets', 'round', 'scalar', 'sgn', 'sin', 'sinh', 'sort', 'sort_desc', 'sort_by_label',
  'sort_by_label_desc', 'sqrt', 'stddev_over_time', 'stdvar_over_time', 'sum_over_time', 'tan', 'tanh',
  'time', 'timestamp', 'vector', 'year', 'start', 'end',
]);

/** Keywords that are neither metrics nor functions. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);
/** Keywords followed by a parenthesised list of label names. */
const LABEL_LIST_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

const IDENT_START = /[A-Za-z_:]/;
const IDENT_PART = /[A-Za-z0-9_:]/;
const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function selectors(expr: string): Selector[] {
  const out: Selector[] = [];
  let i = 0;
  const n = expr.length;

  const skipSpace = (): void => {
    while (i < n) {
      const c = expr[i]!;
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') i++;
      else if (c === '#') while (i < n && expr[i] !== '\n') i++;
      else break;
    }
  };
  const readString = (): string => {
    const quote = expr[i]!;
    const start = i;
    i++;
    let value = '';
    while (i < n && expr[i] !== quote) {
      if (expr[i] === '\\' && quote !== '`') {
        value += expr[i + 1] ?? '';
        i += 2;
      } else {
        value += expr[i];
        i++;
      }
    }
    if (i >= n) throw new PromQLScanError('unterminated string', expr, start);
    i++;
    return value;
  };
  const readIdent = (): string => {
    const start = i;
    while (i < n && IDENT_PART.test(expr[i]!)) i++;
    return expr.slice(start, i);
  };
  /** Skips a balanced (...) or [...] group starting at expr[i]. */
  const skipGroup = (open: string, close: string): void => {
    const start = i;
    let depth = 0;
    while (i < n) {
      const c = expr[i]!;
      if (c === '"' || c === "'" || c === '`') {
        readString();
        continue;
      }
      if (c === open) depth++;
      if (c === close) {
        depth--;
        if (depth === 0) {
          i++;
          return;
        }
      }
      i++;
    }
    throw new PromQLScanError(`unbalanced ${open}`, expr, start);
  };
  const readMatchers = (): Matcher[] => {
    const start = i;
    i++; // {
    const matchers: Matcher[] = [];
    for (;;) {
      skipSpace();
      if (expr[i] === '}') {
        i++;
        return matchers;
      }
      const name = readIdent();
      if (!LABEL_NAME.test(name)) throw new PromQLScanError('expected a label name', expr, i);
      skipSpace();
      const two = expr.slice(i, i + 2);
      let op: MatchOp;
      if (two === '=~' || two === '!~' || two === '!=') {
        op = two;
        i += 2;
      } else if (expr[i] === '=') {
        op = '=';
        i++;
      } else {
        throw new PromQLScanError('expected a matcher operator', expr, i);
      }
      skipSpace();
      const q = expr[i];
      if (q !== '"' && q !== "'" && q !== '`') throw new PromQLScanError('expected a quoted label value', expr, i);
      matchers.push({ name, op, value: readString() });
      skipSpace();
      if (expr[i] === ',') i++;
      else if (expr[i] !== '}') throw new PromQLScanError('expected , or }', expr, i);
      if (i >= n) throw new PromQLScanError('unterminated {', expr, start);
    }
  };

  while (i < n) {
    skipSpace();
    if (i >= n) break;
    const c = expr[i]!;
    if (c === '"' || c === "'" || c === '`') {
      readString();
    } else if (c === '[') {
      skipGroup('[', ']');
    } else if (c === '{') {
      const matchers = readMatchers();
      const name = matchers.find((m) => m.name === '__name__' && m.op === '=');
      out.push({ metric: name?.value ?? '', matchers: matchers.filter((m) => m !== name) });
    } else if (c === '$') {
      // Grafana variable: ${name} or ${name:format} or $name.
      i++;
      if (expr[i] === '{') skipGroup('{', '}');
      else readIdent();
    } else if (/[0-9.]/.test(c)) {
      // Numbers, durations (5m, 1h30m), hex and exponents.
      i++;
      while (i < n && /[0-9A-Za-z_.]/.test(expr[i]!)) {
        if ((expr[i] === 'e' || expr[i] === 'E') && (expr[i + 1] === '+' || expr[i + 1] === '-')) i++;
        i++;
      }
    } else if (IDENT_START.test(c)) {
      const word = readIdent();
      const lower = word.toLowerCase();
      skipSpace();
      if (LABEL_LIST_KEYWORDS.has(lower)) {
        if (expr[i] === '(') skipGroup('(', ')');
      } else if (KEYWORDS.has(lower)) {
        // operator or literal
      } else if (AGGREGATIONS.has(word)) {
        // its argument list (and any by/without) follows
      } else if (expr[i] === '(') {
        if (!FUNCTIONS.has(word)) throw new PromQLScanError(`unknown function ${word}()`, expr, i);
      } else {
        out.push({ metric: word, matchers: expr[i] === '{' ? readMatchers() : [] });
      }
    } else {
      i++; // operators, parentheses, commas, @
    }
  }
  return out;
}

/**
 * The metric of a Grafana `label_values([selector,] label)` variable query (null when the query
 * is something else), and the selectors of its first argument.
 */
export function labelValuesQuery(query: string): { label: string; selectors: Selector[] } | null {
  const m = /^\s*label_values\(\s*(?:(.*),\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/s.exec(query);
  if (m === null) return null;
  return { label: m[2]!, selectors: m[1] === undefined ? [] : selectors(m[1]) };
}
