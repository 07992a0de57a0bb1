/**
 * --service and --service-file: the services in force, built from the options, and the file
 * re-read when it changes (fs.watch on its directory, which also sees the atomic renames and
 * Kubernetes ConfigMap symlink swaps that replace a file; a stat poll where fs.watch is not
 * available) and on SIGHUP. A bad file at start-up is a ConfigError (one line, exit 2); a bad
 * file later keeps the services of the last good one and logs one error per bad version.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from './errors.js';
import { parseServiceDocument, parseServiceSpec, ServiceCatalogue, type ServiceRule, type Services } from './observability/services.js';

/** The rules of a service file (YAML, or JSON, which YAML reads too). */
export function parseServiceFileText(text: string, file: string): ServiceRule[] {
  return parseServiceFile(text, file).rules;
}

/** The rules, and whether the file holds no document at all (empty, or only comments): no services. */
function parseServiceFile(text: string, file: string): { rules: ServiceRule[]; empty: boolean } {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`--service-file: ${file} is not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  return { rules: parseServiceDocument(doc, `--service-file ${file}`), empty: doc === null || doc === undefined };
}

export function readServiceFile(file: string): { text: string; rules: ServiceRule[]; empty: boolean } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`--service-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return { text, ...parseServiceFile(text, file) };
}

/** The catalogue of the --service rules (first) and the file's (after them, in the file's order). */
export function buildCatalogue(specs: readonly string[], fileRules: readonly ServiceRule[]): ServiceCatalogue {
  return new ServiceCatalogue([...specs.map((s) => parseServiceSpec(s)), ...fileRules]);
}

export interface ServiceFileWatcherOptions {
  file: string;
  /** The --service options, in front of the file's rules. */
  specs: readonly string[];
  services: Services;
  logger: Logger;
  /** Events within this long are one reload (ms; default 200). */
  debounceMs?: number;
  /** 'watch' (fs.watch, falling back to polling where it fails) or 'poll' (stat every pollMs). */
  mode?: 'watch' | 'poll';
  pollMs?: number;
}

export class ServiceFileWatcher {
  private lastText: string | null;
  private lastError: string | null = null;
  private watcher: fs.FSWatcher | null = null;
  private polling = false;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Reloads that replaced the services (tests and logs). */
  reloads = 0;

  /** `initialText`: the file's text the services in force were built from. */
  constructor(
    private readonly opts: ServiceFileWatcherOptions,
    initialText: string | null,
  ) {
    this.lastText = initialText;
  }

  start(): void {
    const { file } = this.opts;
    if (this.opts.mode !== 'poll') {
      try {
        // The directory, not the file: a file replaced by rename (editors, kubectl, ConfigMaps)
        // is a new inode that a watch on the old one never reports.
        this.watcher = fs.watch(path.dirname(path.resolve(file)), { persistent: false }, () => this.schedule());
        this.watcher.on('error', (err) => {
          this.opts.logger.warn({ file, err: { message: err.message } }, 'watching the service file failed; polling it instead');
          this.watcher?.close();
          this.watcher = null;
          this.startPolling();
        });
        return;
      } catch (err) {
        this.opts.logger.warn({ file, err: { message: (err as Error).message } }, 'cannot watch the service file; polling it instead');
      }
    }
    this.startPolling();
  }

  private startPolling(): void {
    if (this.closed || this.polling) return;
    this.polling = true;
    fs.watchFile(this.opts.file, { interval: this.opts.pollMs ?? 2000, persistent: false }, this.onPoll);
    // The poll's first stat is taken later, asynchronously: a change made before it would be its
    // baseline and never reported. One read once it is taken catches that (the text decides).
    this.schedule(this.opts.pollMs ?? 2000);
  }

  private readonly onPoll = (): void => this.schedule();

  private schedule(delayMs = this.opts.debounceMs ?? 200, reason: 'change' | 'SIGHUP' = 'change', emptySettled = false): void {
    if (this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reload(reason, emptySettled);
    }, delayMs);
    this.timer.unref();
  }

  /**
   * Read the file now; replace the services if it changed and is good. Returns whether the
   * services were replaced. `reason` goes into the log lines.
   *
   * A file that has become empty is read again after the debounce before it takes effect (then
   * `emptySettled`): a writer that truncates and then writes (most editors, a shell's `>`) leaves
   * it empty for a moment, and a read in that moment must not drop every service. Still empty
   * then, it was meant: no services from the file.
   */
  reload(reason: 'change' | 'SIGHUP', emptySettled = false): boolean {
    const { file, logger } = this.opts;
    let text: string;
    let catalogue: ServiceCatalogue;
    try {
      const read = readServiceFile(file);
      text = read.text;
      if (text === this.lastText && this.lastError === null) return false;
      if (read.empty && !emptySettled && text !== this.lastText) {
        this.schedule(undefined, reason, true);
        return false;
      }
      catalogue = buildCatalogue(this.opts.specs, read.rules);
    } catch (err) {
      const message = (err as Error).message;
      // One error per bad version of the file, not one per event or per SIGHUP.
      if (message !== this.lastError) {
        this.lastError = message;
        logger.error({ file, reason, err: { message } }, 'service file rejected: keeping the services of the last good one');
      }
      return false;
    }
    this.lastError = null;
    if (text === this.lastText) return false;
    this.lastText = text;
    this.opts.services.replace(catalogue);
    this.reloads++;
    logger.info({ file, reason, services: catalogue.size, rules: catalogue.ruleCount }, 'services reloaded');
    return true;
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.watcher?.close();
    this.watcher = null;
    if (this.polling) fs.unwatchFile(this.opts.file, this.onPoll);
    this.polling = false;
  }
}
