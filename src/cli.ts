/**
 * The command line: `synfin run [options]` (the default command), `synfin check`, `synfin connections`,
 * `synfin version` and `synfin demo`. Bad options and unusable devices end in one line on stderr and
 * exit code 2, never a stack trace; an unreachable synfin (connections) or an unexpected error exit 1.
 */
import { Command, CommanderError, Option } from 'commander';
import { envName, OPTION_SPECS, resolveConfig, type Config, type LogLevel, type RawOptions } from './config.js';
import { ApiClientError, SynfinError } from './errors.js';

const VERSION = '0.1.0';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

const RUN_HELP_AFTER =
  '\nEvery option can also be given as an environment variable SYNFIN_<NAME> (shown in brackets;\nlists comma-separated), and SYNFIN_CONFIG names the --config file. Precedence: flag >\nenvironment > --config file > default.\n\nCapabilities: creating the TUN device, or changing it (--mtu, --address, --route, bringing it up)\nneeds CAP_NET_ADMIN; attaching to a device owned by synfin\u2019s uid that is already in the state\nasked for needs none (synfin then changes nothing). Once the device is ready synfin gives up every\ncapability (it re-executes itself without them) before it listens or dials; it keeps only\nCAP_NET_BIND_SERVICE, and only when --listen is on a port below net.ipv4.ip_unprivileged_port_start.\n\nExamples:\n  sudo synfin run --tun synfin0 --address 198.18.0.1/15 --route 198.18.0.0/15\n  sudo synfin run --msl 0.5 --idle-timeout 300 --deny 169.254.169.254/32';

const EXIT_CODES =
  '\nExit codes: 0 done (run: stopped by SIGTERM/SIGINT; a second one ends the grace period, a third\nexits at once with 128 + its number); 1 failed at run time (an unexpected error, or synfin\nunreachable for `connections`); 2 bad usage, a bad option or config file, an unusable device.';

/** Options whose help sits under a heading of their own, apart from the options users tune. */
const TESTING_OPTIONS = new Set(['impair']);

/** `run`'s options (and `check`'s, which validates the same): each with its SYNFIN_* variable. */
function addRunOptions(cmd: Command): Command {
  cmd.option('--config <FILE>', `read options from a YAML or JSON file (flags and SYNFIN_* variables win) [${envName('config')}]`);
  for (const spec of OPTION_SPECS) {
    const opt = new Option(spec.kind === 'boolean' ? `--${spec.flag}` : `--${spec.flag} <${spec.placeholder}>`, `${spec.help} [${envName(spec.flag)}]`);
    if (spec.kind === 'list') opt.argParser(collect);
    if (TESTING_OPTIONS.has(spec.flag)) opt.helpGroup('Testing aid (not for production):');
    cmd.addOption(opt);
  }
  return cmd;
}

interface Handlers {
  run(flags: RawOptions, configFile: string | undefined): Promise<void>;
  demo(flags: RawOptions): Promise<void>;
  check(flags: RawOptions, configFile: string | undefined): Promise<void>;
  version(): Promise<void>;
  connections(opts: Record<string, string | boolean | undefined>): Promise<void>;
}

function buildProgram(handlers: Handlers): Command {
  const program = new Command('synfin')
    .description('Tunneling proxy with an observable TCP lifecycle: terminates every TCP connection arriving on a TUN device,\nproxies it to its destination over a kernel socket, and exports every state transition as metrics.')
    .version(VERSION)
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: () => {} });

  const run = addRunOptions(program.command('run', { isDefault: true }).description('run the proxy (the default command)'));
  run.addHelpText('after', RUN_HELP_AFTER + '\n' + EXIT_CODES);
  run.action(async (opts: Record<string, string | string[] | undefined>) => {
    const { config, ...flags } = opts;
    await handlers.run(toFlagNames(flags), typeof config === 'string' ? config : undefined);
  });

  const check = addRunOptions(
    program.command('check').description("validate run's options, SYNFIN_* variables and the config file without touching any device or the network; exit 0 or 2"),
  );
  check.action(async (opts: Record<string, string | string[] | undefined>) => {
    const { config, ...flags } = opts;
    await handlers.check(toFlagNames(flags), typeof config === 'string' ? config : undefined);
  });

  program
    .command('connections')
    .description("print the connection table of a running synfin (from its API), like ss; works from kubectl exec")
    .option('--listen <HOST:PORT>', `where synfin's HTTP server is (default 127.0.0.1:9477) [${envName('listen')}]`)
    .option('--waiting-on <SIDE>', 'only connections waiting on app or upstream')
    .option('--service <NAME>', 'only connections of this service')
    .option('--state <STATE>', 'only connections in this state of synfin\u2019s stack (e.g. FIN_WAIT_2)')
    .option('--watch [SECONDS]', 'refresh every SECONDS (default 2) until Ctrl-C')
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      await handlers.connections(opts);
    });

  program
    .command('version')
    .description('print the version of synfin and Node.js, and whether the native addon loads')
    .action(async () => {
      await handlers.version();
    });

  program
    .command('demo')
    .description('a self-contained demonstration (needs root): a namespace whose traffic goes through synfin, real connections, metrics and the live page')
    .option('--listen <HOST:PORT>', 'HTTP server for metrics, the API and the live page', '127.0.0.1:9477')
    .option('--log-level <LEVEL>', 'log level', 'info')
    .action(async (opts: Record<string, string>) => {
      await handlers.demo(toFlagNames(opts));
    });

  // `synfin --help` shows what `synfin` alone runs: run's options, under their own heading.
  program.addHelpText('after', () => {
    const runHelp = run.helpInformation();
    const options = runHelp.slice(runHelp.indexOf('Options:'));
    return `\nOptions of "synfin run" (the default command; also taken by "synfin check"):\n${options.replace(/^Options:\n/, '')}${RUN_HELP_AFTER}\n${EXIT_CODES}`;
  });
  return program;
}

/** Commander camelCases option names; the config layer speaks flag names. */
function toFlagNames(opts: Record<string, string | string[] | undefined>): RawOptions {
  const out: RawOptions = {};
  for (const [k, v] of Object.entries(opts)) out[k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)] = v;
  return out;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram({
    async run(flags, configFile) {
      const config = resolveConfig(flags, process.env, configFile);
      const { runProxy } = await import('./main.js');
      await runProxy(config);
    },
    async demo(flags) {
      const { runDemo } = await import('./demo.js');
      await runDemo(flags);
    },
    async check(flags, configFile) {
      const config = resolveConfig(flags, process.env, configFile);
      process.stdout.write(`${checkSummary(config, configFile ?? (process.env[envName('config')] || undefined))}\n`);
    },
    async version() {
      process.stdout.write(`synfin ${VERSION}\nnode ${process.version}\n`);
      const { loadAddon, ADDON_PATH } = await import('./native/addon.js');
      try {
        loadAddon();
        process.stdout.write(`addon ok (${ADDON_PATH})\n`);
      } catch (err) {
        process.stdout.write(`addon failed: ${(err as Error).message.split('\n')[0]}\n`);
        process.exitCode = 1;
      }
    },
    async connections(opts) {
      const { showConnections } = await import('./connections-client.js');
      const watch = opts.watch;
      const watchSeconds = watch === undefined || watch === false ? null : watch === true ? 2 : Number(watch);
      await showConnections({
        listen: typeof opts.listen === 'string' ? opts.listen : process.env[envName('listen')] || '127.0.0.1:9477',
        waitingOn: typeof opts.waitingOn === 'string' ? opts.waitingOn : undefined,
        service: typeof opts.service === 'string' ? opts.service : undefined,
        state: typeof opts.state === 'string' ? opts.state : undefined,
        watchSeconds,
      });
    },
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        process.exitCode = 0;
        return;
      }
      // `run` is the default command, so a mistyped command reaches it as an argument.
      const first = argv[0];
      const known = program.commands.map((c) => c.name());
      if (err.code === 'commander.excessArguments' && first !== undefined && !first.startsWith('-') && !known.includes(first)) {
        fail(`unknown command "${first}" (commands: ${known.join(', ')}; see synfin --help)`, 2);
        return;
      }
      fail(err.message.replace(/^error: /, ''), 2);
      return;
    }
    // The command was right but the other end failed (synfin unreachable): 1.
    if (err instanceof ApiClientError) {
      fail(err.message, 1);
      return;
    }
    if (err instanceof SynfinError) {
      fail(err.message, 2);
      return;
    }
    await unexpected(err, argv);
  }
}

/** One line saying what `check` accepted. */
function checkSummary(c: Config, configFile: string | undefined): string {
  const listen = c.listenHost.includes(':') ? `[${c.listenHost}]:${c.listenPort}` : `${c.listenHost}:${c.listenPort}`;
  const parts = [
    `tun ${c.tun}`,
    `listen ${listen}`,
    `${c.addresses.length} address${c.addresses.length === 1 ? '' : 'es'}`,
    `${c.routes.length} route${c.routes.length === 1 ? '' : 's'}`,
    `${c.allow.length} allow, ${c.deny.length} deny, ${c.map.length} map rules`,
    `max-connections ${c.maxConnections}`,
    `workers ${c.workers}`,
    `log-level ${c.logLevel}`,
  ];
  return `synfin: configuration ok${configFile !== undefined ? ` (${configFile})` : ''}: ${parts.join(', ')}`;
}

/** The log level asked for on the command line or in SYNFIN_LOG_LEVEL, for an error before or without a config. */
function requestedLogLevel(argv: readonly string[]): string {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--log-level' && i + 1 < argv.length) return argv[i + 1]!;
    if (a.startsWith('--log-level=')) return a.slice('--log-level='.length);
  }
  return process.env[envName('log-level')] || 'info';
}

/**
 * A bug or an environment nobody planned for: one line on stderr and exit 1 (2 stays the code of
 * bad usage); the stack goes to the log at debug (--log-level debug or SYNFIN_LOG_LEVEL=debug).
 */
async function unexpected(err: unknown, argv: readonly string[]): Promise<void> {
  const message = err instanceof Error ? err.message : String(err);
  const level = requestedLogLevel(argv);
  process.stderr.write(`synfin: unexpected error: ${message.split('\n')[0]}${level === 'debug' || level === 'trace' ? '' : ' (--log-level debug logs the stack)'}\n`);
  process.exitCode = 1;
  const { createLogger, LOG_LEVELS } = await import('./observability/log.js');
  if (!(LOG_LEVELS as readonly string[]).includes(level)) return;
  createLogger(level as LogLevel).debug({ err }, 'unexpected error');
}

function fail(message: string, code: 1 | 2): void {
  process.stderr.write(`synfin: ${message}\n`);
  process.exitCode = code;
}
