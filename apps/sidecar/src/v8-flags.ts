import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/**
 * Applied by the sidecar's entry points (`dist/cli.js`, the single executable) before any traffic:
 * `--liftoff-only` keeps WebAssembly on V8's baseline compiler. The only WebAssembly here is undici's llhttp
 * (mitm-core's upstream HTTP/1.1 parser), and TurboFan's tier-up of its parser function allocated ~35 MB of
 * compiler memory in the first second of load, which set the process's peak resident size (VmHWM 116–120
 * → 94–113 MB, CPU per request unchanged within the noise; README "Memory"). undici compiles llhttp at its
 * first upstream connection, after this runs.
 */
export function applyMemorySettings(): void {
  setFlagsFromString('--liftoff-only');
}

/**
 * `--young-generation-mb 8`, the memory-first setting measured in the README: ~15–25 MB less resident under
 * load than V8's 32 MB young generation, for ~10 % (HTTP) to ~25 % (HTTPS) more CPU per request.
 */
export const YOUNG_GENERATION_CAP_BYTES = 8 * 1024 * 1024;
const CHECK_INTERVAL_MS = 100;

/**
 * Stops the young generation from growing past `capBytes` (`run --young-generation-mb`). `--max-semi-space-size` would
 * be the direct way, but it only works as a Node option at start-up: Node 20's single executable cannot
 * carry Node options, an `npx` bin should not need them, and set at run time it has no effect. What does
 * work at run time is `--semi-space-growth-factor=1` (V8 reads it at each growth step), so the young
 * generation is left to grow as usual and frozen once it reaches the cap. It grows by doubling after
 * several scavenges, so a 100 ms check sees the cap before the next step (at worst it stops one step later,
 * at twice the cap). The timer is unref'd and ends once the cap is set; a process that never reaches the cap keeps
 * only this cheap check. A `--min-semi-space-size` given to node still sets the starting size.
 */
export function capYoungGeneration(capBytes: number = YOUNG_GENERATION_CAP_BYTES): void {
  const freezeIfReached = (): boolean => {
    const newSpace = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    if (newSpace !== undefined && newSpace.space_size < capBytes) return false;
    setFlagsFromString('--semi-space-growth-factor=1');
    return true;
  };
  if (freezeIfReached()) return;
  const timer = setInterval(() => {
    if (freezeIfReached()) clearInterval(timer);
  }, CHECK_INTERVAL_MS);
  timer.unref();
}
