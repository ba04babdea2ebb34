import { parseArgs } from 'node:util';
import { startDemo } from './orchestrator.js';

const HELP = `httpmesh demo: control plane + sidecar + two demo services + traffic, all on 127.0.0.1

Usage: npm start [-- options]
  --http-port PORT   control plane API and dashboard port (default 8080; 0 = any free port)
  --rate N           demo requests per second (default 20, at most 200)
  --data-dir DIR     demo state: store, CAs, logs (default .httpmesh/demo; emptied at start)
  --help
Stops cleanly on Ctrl-C (SIGINT) or SIGTERM.`;

/**
 * `npm start`: runs the demo until SIGINT/SIGTERM, then stops every child and resolves with the exit
 * code (0 clean; 1 when startup failed or a component died).
 */
export async function runDemoCli(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  let values: { 'http-port'?: string; rate?: string; 'data-dir'?: string; help?: boolean };
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        'http-port': { type: 'string' },
        rate: { type: 'string' },
        'data-dir': { type: 'string' },
        help: { type: 'boolean' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const httpPort = values['http-port'] === undefined ? 8080 : Number(values['http-port']);
  const rate = values.rate === undefined ? 20 : Number(values.rate);
  if (!Number.isInteger(httpPort) || httpPort < 0 || httpPort > 65_535 || !(rate > 0 && rate <= 200)) {
    process.stderr.write(`--http-port must be 0-65535 and --rate 0-200\n\n${HELP}\n`);
    return 2;
  }
  const say = (line: string) => process.stdout.write(`[demo] ${line}\n`);
  let stopSignal: (name: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => {
    stopSignal = resolve;
  });
  const onSignal = (signal: NodeJS.Signals) => stopSignal(signal);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let failed = false;
  try {
    const demo = await startDemo({
      dataDir: values['data-dir'] ?? '.httpmesh/demo',
      httpPort,
      ratePerSecond: rate,
      log: say,
      onChildExit: (name, code, signal) => {
        failed = true;
        say(`${name} exited unexpectedly (${code ?? signal}); stopping the demo`);
        stopSignal('child-exit');
      },
    });
    say(`logs: ${demo.children.map((c) => c.logFile).join(', ')}`);
    say(`child pids: ${demo.pids.join(' ')}`);
    process.stdout.write(
      `\n  Dashboard: ${demo.dashboardUrl}\n  API:       ${demo.apiUrl}/api  (admin token: ${demo.adminToken})\n  Proxy:     http://${demo.proxy.host}:${demo.proxy.port}\n\n  Press Ctrl-C to stop.\n\n`,
    );
    const reason = await stopped;
    say(`stopping (${reason})…`);
    await demo.stop();
    say(`stopped; ${demo.traffic.stats.completed} requests answered, ${demo.traffic.stats.failed} failed`);
  } catch (err) {
    process.stderr.write(`[demo] failed: ${(err as Error).message}\n`);
    failed = true;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return failed ? 1 : 0;
}
