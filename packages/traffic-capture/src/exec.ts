import { spawn } from 'node:child_process';
import { CaptureCommandError } from './errors.js';

export interface CommandResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs argv (no shell), feeding `input` on stdin; resolves with the exit code and output. */
export function runCommand(argv: readonly string[], input?: string): Promise<CommandResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new TypeError('empty command'));
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(
        new CaptureCommandError(argv.join(' '), null, e.code === 'ENOENT' ? `${cmd}: not found` : e.message),
      );
    });
    child.on('close', (code) => {
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.on('error', () => {
      // The command may exit before reading its input; its exit code tells what happened.
    });
    child.stdin.end(input ?? '');
  });
}

/** Like {@link runCommand} but throws {@link CaptureCommandError} on a non-zero exit. */
export async function mustRun(argv: readonly string[], input?: string): Promise<CommandResult> {
  const result = await runCommand(argv, input);
  if (result.code !== 0) throw new CaptureCommandError(argv.join(' '), result.code, result.stderr);
  return result;
}
