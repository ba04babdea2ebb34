import type { Writable } from 'node:stream';
import { TrafficCapture } from '@httpmesh/traffic-capture';
import type { Logger } from 'pino';
import { installTrust, loadOrCreateCa } from './ca.js';
import { UsageError } from './errors.js';
import { createLogger } from './logger.js';
import { type CommandName, helpText, resolveOptions, type SidecarOptions, TOP_HELP } from './options.js';
import { loadRulesFile } from './rules.js';

export interface CliIo {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** Log destination; default stderr (fd 2). */
  readonly logDestination?: NodeJS.WritableStream | number;
}

const COMMANDS: readonly CommandName[] = ['run', 'init-net', 'ca'];

/** Exit codes: 0 ok, 1 the command failed, 2 usage/configuration error. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    (command === undefined ? io.stderr : io.stdout).write(TOP_HELP);
    return command === undefined ? 2 : 0;
  }
  let log: Logger | undefined;
  try {
    if (!(COMMANDS as readonly string[]).includes(command)) {
      throw new UsageError(`unknown command ${JSON.stringify(command)} (run, init-net, ca)`);
    }
    const cmd = command as CommandName;
    const resolved = resolveOptions(cmd, rest, io.env, io.cwd);
    if (resolved.help) {
      io.stdout.write(helpText(cmd));
      return 0;
    }
    log = createLogger(resolved.options.logLevel, io.logDestination ?? 2);
    switch (cmd) {
      case 'init-net':
        return await initNet(resolved.options, log, io);
      case 'ca':
        return await caCommand(resolved.positionals, resolved.options, log, io);
      case 'run': {
        const { runSidecar } = await import('./run.js');
        return await runSidecar(resolved.options, resolved.sources, log);
      }
    }
  } catch (e) {
    const err = e as Error & { code?: string };
    const usage = [
      'HTTPMESH_SIDECAR_FLAG_UNKNOWN',
      'HTTPMESH_SIDECAR_OPTION_INVALID',
      'HTTPMESH_SIDECAR_CONFIG_INVALID',
      'HTTPMESH_SIDECAR_USAGE',
      'HTTPMESH_SIDECAR_RULES_INVALID',
    ];
    if (log) log.error({ event: 'command.failed', code: err.code, err: err.message }, 'command failed');
    io.stderr.write(`httpmesh-sidecar: ${err.message}${err.code ? ` [${err.code}]` : ''}\n`);
    return err.code !== undefined && usage.includes(err.code) ? 2 : 1;
  }
}

async function initNet(o: SidecarOptions, log: Logger, io: CliIo): Promise<number> {
  const capture = new TrafficCapture({
    outboundPort: o.outboundPort,
    inboundPort: o.inboundPort,
    proxyUid: o.proxyUid,
    outboundHttpPorts: o.outboundHttpPorts,
    outboundTlsPorts: o.outboundTlsPorts,
    inboundPorts: o.inboundPorts,
    excludeCidrs: o.excludeCidrs,
    ...(o.netns === undefined ? {} : { netns: o.netns }),
    ...(o.stateDir === undefined ? {} : { stateDir: o.stateDir }),
    ...(o.dnsUpstream === undefined ? {} : { dnsUpstream: o.dnsUpstream }),
    onEvent: (event) => log.debug(event, event.event),
  });
  if (o.remove) {
    await capture.remove();
    log.info({ event: 'init-net.removed' }, 'capture removed');
    io.stdout.write(`${JSON.stringify(await capture.status())}\n`);
    return 0;
  }
  const rules = o.rules === undefined ? null : await loadRulesFile(o.rules);
  const status = await capture.install(rules?.intercept ?? []);
  log.info({ event: 'init-net.installed', ...status }, 'capture installed');
  io.stdout.write(`${JSON.stringify(status)}\n`);
  return 0;
}

async function caCommand(
  positionals: readonly string[],
  o: SidecarOptions,
  log: Logger,
  io: CliIo,
): Promise<number> {
  const [sub, ...extra] = positionals;
  if (extra.length > 0 || (sub !== 'init' && sub !== 'show' && sub !== 'trust')) {
    throw new UsageError('usage: httpmesh-sidecar ca init|show|trust [flags]');
  }
  if (sub === 'show') {
    const { CertificateAuthority } = await import('@httpmesh/mitm-core');
    const ca = await CertificateAuthority.loadFromDir(o.caDir);
    io.stdout.write(ca.certPem.endsWith('\n') ? ca.certPem : `${ca.certPem}\n`);
    return 0;
  }
  const ca = await loadOrCreateCa(o.caDir, log);
  if (sub === 'init') {
    io.stdout.write(`${JSON.stringify({ caDir: o.caDir, subject: ca.subject, notAfter: ca.notAfter })}\n`);
    return 0;
  }
  const results = await installTrust(o.caDir, o.trust, o.trustEnvFile, log);
  io.stdout.write(`${JSON.stringify(results)}\n`);
  return 0;
}
