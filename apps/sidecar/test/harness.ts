/**
 * Shared by the tests that run the sidecar in this process (`startSidecar`): a JSON log sink and the sidecar on
 * loopback port 0. Kept apart from plugins-harness.ts, which the tests spawning the built bin import, so that
 * those do not load the sidecar's sources.
 */
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, resolveOptions } from '../src/index.js';
import { type SidecarRuntime, startSidecar } from '../src/run.js';
import { loopbackRunArgs } from './plugins-harness.js';

/** A destination for the sidecar's logger that parses each JSON line into `lines`. */
function jsonLogSink(): { readonly stream: Writable; readonly lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n'))
        if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { stream, lines };
}

export interface InProcessSidecar {
  readonly runtime: SidecarRuntime;
  /** Its log lines (level info), parsed. */
  readonly logLines: Record<string, unknown>[];
}

/**
 * `run` in this process: `loopbackRunArgs` (CA in `dir`/ca) followed by `args`, options resolved with `env`
 * and `dir` as the working directory, logging at info into `logLines`.
 */
export async function startInProcessSidecar(
  dir: string,
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<InProcessSidecar> {
  const sink = jsonLogSink();
  const { options } = resolveOptions('run', [...loopbackRunArgs(join(dir, 'ca')), ...args], env, dir);
  const runtime = await startSidecar(options, createLogger('info', sink.stream));
  return { runtime, logLines: sink.lines };
}
