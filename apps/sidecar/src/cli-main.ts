import type { Writable } from 'node:stream';
import { TrafficCapture } from '@httpmesh/traffic-capture';
import type { Logger } from 'pino';
import { chown, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fetchIntermediateCa, installTrust, loadOrCreateCa, trustAnchorPath } from './ca.js';
import { followInterceptFile, readInterceptFile } from './intercept-file.js';
import { UsageError } from './errors.js';
import { createLogger } from './logger.js';
import { type CommandName, helpText, resolveOptions, type SidecarOptions, TOP_HELP } from './options.js';
import { loadRulesFile } from './rules.js';
import { capYoungGeneration } from './v8-flags.js';

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
        if (resolved.options.youngGenerationMb > 0) {
          capYoungGeneration(resolved.options.youngGenerationMb * 1024 * 1024);
        }
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
  // --rules wins (it is what the operator named); without it, what the proxy last published.
  const fromFile = o.rules === undefined ? null : await loadRulesFile(o.rules);
  const published =
    fromFile !== null
      ? null
      : await readInterceptFile(o.interceptFile).catch((e: Error) => {
          log.warn({ event: 'intercept-file.rejected', err: e.message }, 'intercept file ignored');
          return null;
        });
  const rules = fromFile ?? published;
  await prepareInterceptDir(o.interceptFile, o.proxyUid, log);
  const status = await capture.install(rules?.intercept ?? []);
  log.info({ event: 'init-net.installed', ...status }, 'capture installed');
  io.stdout.write(`${JSON.stringify(status)}\n`);
  if (!o.follow) return 0;

  // --follow: stay up (root) and move dnsmasq/ipset along with the rules the proxy publishes.
  const follower = followInterceptFile(
    o.interceptFile,
    fromFile?.hash ?? published?.version ?? null,
    async (content) => {
      const result = await capture.update(content.intercept);
      log.info(
        { event: 'init-net.followed', version: content.version, ...result },
        'capture follows the intercept rules',
      );
    },
    (e) => {
      const err = e as Error & { code?: string };
      log.error({ event: 'init-net.follow_failed', code: err.code, err: err.message }, 'not applied');
    },
  );
  log.info({ event: 'init-net.following', file: o.interceptFile }, 'following the intercept file');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  follower.close();
  log.info({ event: 'init-net.follow_stopped' }, 'stopped following; capture stays installed');
  return 0;
}

/**
 * The proxy (uid `proxyUid`) writes the intercept file: create its directory for it when missing, so
 * the default path works as is. Never in the capture state directory, which holds the root dnsmasq's
 * config and must stay root-only.
 */
async function prepareInterceptDir(file: string, proxyUid: number, log: Logger): Promise<void> {
  const dir = dirname(file);
  const exists = await stat(dir).then(
    () => true,
    () => false,
  );
  if (exists || process.getuid?.() !== 0) return;
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await chown(dir, proxyUid, proxyUid);
  log.info({ event: 'init-net.intercept_dir', dir, owner: proxyUid }, 'created the intercept file directory');
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
    await CertificateAuthority.loadFromDir(o.caDir); // fails loudly on a broken CA directory
    // What clients must trust: the CA itself, or the control plane's root for a fetched intermediate.
    const pem = await readFile(await trustAnchorPath(o.caDir), 'utf8');
    io.stdout.write(pem.endsWith('\n') ? pem : `${pem}\n`);
    return 0;
  }
  const hasCa = await stat(`${o.caDir}/ca.crt`).then(
    () => true,
    () => false,
  );
  const ca =
    sub === 'init' && !hasCa && o.controlPlaneApi !== undefined
      ? await fetchIntermediateCa(
          o.caDir,
          {
            api: o.controlPlaneApi,
            token: o.controlPlaneToken,
            nodeId: o.nodeId ?? `sidecar-${process.pid}`,
            domains: (o.rules === undefined ? [] : (await loadRulesFile(o.rules)).intercept)
              .filter((r) => r.action === 'intercept')
              .map((r) => r.domain),
          },
          log,
        )
      : await loadOrCreateCa(o.caDir, log);
  if (sub === 'init') {
    io.stdout.write(
      `${JSON.stringify({ caDir: o.caDir, subject: ca.subject, notAfter: ca.notAfter, trustAnchor: await trustAnchorPath(o.caDir) })}\n`,
    );
    return 0;
  }
  const results = await installTrust(o.caDir, o.trust, o.trustEnvFile, log, o.javaTruststore);
  io.stdout.write(`${JSON.stringify(results)}\n`);
  return 0;
}
