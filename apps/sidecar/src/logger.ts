import { type Logger, pino } from 'pino';
import type { SidecarOptions } from './options.js';

/**
 * JSON logs, one line per event, on stderr: stdout is kept for command output (`ca show` prints PEM).
 * Synchronous writes so a log line written just before exit is not lost.
 */
export function createLogger(
  level: SidecarOptions['logLevel'],
  destination: NodeJS.WritableStream | number = 2,
): Logger {
  const stream =
    typeof destination === 'number' ? pino.destination({ fd: destination, sync: true }) : destination;
  return pino({ level, base: { app: 'httpmesh-sidecar' }, timestamp: pino.stdTimeFunctions.isoTime }, stream);
}
