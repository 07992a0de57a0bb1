/**
 * The command line: `synfin run [options]` (the default command) and `synfin demo`.
 * Bad options and unusable devices end in one line on stderr and exit code 2, never a stack trace.
 */
import { Command, CommanderError, Option } from 'commander';
import { OPTION_SPECS, resolveConfig, type RawOptions } from './config.js';
import { SynfinError } from './errors.js';

const VERSION = '0.1.0';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function buildProgram(onRun: (flags: RawOptions, configFile: string | undefined) => Promise<void>, onDemo: (flags: RawOptions) => Promise<void>): Command {
  const program = new Command('synfin')
    .description('Tunneling proxy with an observable TCP lifecycle: terminates every TCP connection arriving on a TUN device,\nproxies it to its destination over a kernel socket, and exports every state transition as metrics.')
    .version(VERSION)
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: () => {} });

  const run = program
    .command('run', { isDefault: true })
    .description('run the proxy (the default command)')
    .option('--config <FILE>', 'read options from a YAML or JSON file (flags and SYNFIN_* variables win)');
  for (const spec of OPTION_SPECS) {
    const opt = new Option(spec.kind === 'boolean' ? `--${spec.flag}` : `--${spec.flag} <${spec.placeholder}>`, spec.help);
    if (spec.kind === 'list') opt.argParser(collect);
    run.addOption(opt);
  }
  run.addHelpText(
    'after',
    '\nEvery option can also be given as an environment variable SYNFIN_<NAME> (e.g. SYNFIN_LISTEN=0.0.0.0:9477;\nlists comma-separated). Precedence: flag > environment > --config file > default.\n\nCapabilities: creating the TUN device, or changing it (--mtu, --address, --route, bringing it up)\nneeds CAP_NET_ADMIN; attaching to a device owned by synfin\u2019s uid that is already in the state\nasked for needs none (synfin then changes nothing). Once the device is ready synfin gives up every\ncapability (it re-executes itself without them) before it listens or dials; it keeps only\nCAP_NET_BIND_SERVICE, and only when --listen is on a port below net.ipv4.ip_unprivileged_port_start.\n\nExamples:\n  sudo synfin run --tun synfin0 --address 198.18.0.1/15 --route 198.18.0.0/15\n  sudo synfin run --msl 0.5 --idle-timeout 300 --deny 169.254.169.254/32',
  );
  run.action(async (opts: Record<string, string | string[] | undefined>) => {
    const { config, ...flags } = opts;
    await onRun(toFlagNames(flags), typeof config === 'string' ? config : undefined);
  });

  program
    .command('demo')
    .description('a self-contained demonstration (needs root): a namespace whose traffic goes through synfin, real connections, metrics and the live page')
    .option('--listen <HOST:PORT>', 'HTTP server for metrics, the API and the live page', '127.0.0.1:9477')
    .option('--log-level <LEVEL>', 'log level', 'info')
    .action(async (opts: Record<string, string>) => {
      await onDemo(toFlagNames(opts));
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
  const program = buildProgram(
    async (flags, configFile) => {
      const config = resolveConfig(flags, process.env, configFile);
      const { runProxy } = await import('./main.js');
      await runProxy(config);
    },
    async (flags) => {
      const { runDemo } = await import('./demo.js');
      await runDemo(flags);
    },
  );
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        process.exitCode = 0;
        return;
      }
      fail(err.message.replace(/^error: /, ''));
      return;
    }
    if (err instanceof SynfinError) {
      fail(err.message);
      return;
    }
    throw err;
  }
}

function fail(message: string): void {
  process.stderr.write(`synfin: ${message}\n`);
  process.exitCode = 2;
}
