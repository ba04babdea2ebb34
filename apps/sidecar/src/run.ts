import type { Logger } from 'pino';
import type { OptionKey, SidecarOptions } from './options.js';

/** `run`: composes the proxy, rules and admin endpoint. */
export async function runSidecar(
  options: SidecarOptions,
  sources: Readonly<Record<OptionKey, string>>,
  log: Logger,
): Promise<number> {
  log.error({ event: 'run.unavailable', mode: options.mode, sources }, 'run is not composed yet');
  return 1;
}
