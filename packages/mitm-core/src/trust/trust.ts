import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { accessSync, constants, existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join, resolve } from 'node:path';
import { TrustApplyError, TrustCaInvalidError, TrustOptionsInvalidError } from './errors.js';

export type TrustRuntime = 'debian' | 'java' | 'env';

export const TRUST_ENV_VARIABLES = [
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'REQUESTS_CA_BUNDLE',
  'CURL_CA_BUNDLE',
] as const;
export type TrustEnvVariable = (typeof TRUST_ENV_VARIABLES)[number];

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program without a shell; never rejects for a non-zero exit (ENOENT gives code 127). */
export type CommandRunner = (command: string, args: readonly string[]) => Promise<CommandResult>;

export interface TrustOptions {
  /** Prefix for every system path (a temp dir in tests, or an image root). Default "/". */
  readonly root?: string;
  /** File and alias name, [A-Za-z0-9._-]. Default "httpmesh-ca". */
  readonly name?: string;
  /** Runtimes to handle. Default all three. */
  readonly runtimes?: readonly TrustRuntime[];
  /** Env file (KEY=value lines, docker/systemd compatible) to create or update. Default <root>/etc/httpmesh/ca.env. */
  readonly envFile?: string;
  /** Java: keystore file; default the JDK's own store (`keytool -cacerts`). */
  readonly javaKeystore?: string;
  /** Java: store password. Default "changeit" (the JDK default for cacerts). */
  readonly javaStorePassword?: string;
  /** Injectable process runner (tests). Default: child_process.execFile. */
  readonly runCommand?: CommandRunner;
  /** Injectable lookup of a program on PATH (tests). Default: searches PATH. */
  readonly findExecutable?: (name: string) => string | null;
}

export interface TrustStep {
  readonly runtime: TrustRuntime;
  /** False when the runtime's tool is missing here (the commands are still shown). */
  readonly available: boolean;
  readonly description: string;
  /** Programs to run, as argv arrays (no shell). */
  readonly commands: readonly (readonly string[])[];
  /** For 'env': the variables and their values. */
  readonly env?: Readonly<Record<TrustEnvVariable, string>>;
}

export interface TrustInstructions {
  readonly caCertPath: string;
  readonly steps: readonly TrustStep[];
  /** Human-readable shell rendering of the steps. */
  readonly text: string;
}

export interface TrustStepResult {
  readonly runtime: TrustRuntime;
  readonly status: 'applied' | 'removed' | 'skipped' | 'failed';
  readonly detail: string;
}

interface ResolvedTrustOptions {
  readonly root: string;
  readonly name: string;
  readonly runtimes: readonly TrustRuntime[];
  readonly envFile: string;
  readonly javaKeystore: string | undefined;
  readonly javaStorePassword: string;
  readonly runCommand: CommandRunner;
  readonly findExecutable: (name: string) => string | null;
  readonly localCertsDir: string;
  readonly etcCertsDir: string;
  readonly systemBundle: string;
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$/;

export const defaultCommandRunner: CommandRunner = (command, args) =>
  new Promise((resolvePromise) => {
    execFile(command, [...args], { encoding: 'utf8', timeout: 120_000 }, (error, stdout, stderr) => {
      const code =
        error === null ? 0 : typeof error.code === 'number' ? error.code : error.code === 'ENOENT' ? 127 : 1;
      resolvePromise({
        code,
        stdout,
        stderr: stderr || (error && typeof error.code !== 'number' ? error.message : ''),
      });
    });
  });

export function findOnPath(name: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

function at(root: string, path: string): string {
  return root === '/' ? path : join(root, path);
}

function resolveOptions(options: TrustOptions | undefined): ResolvedTrustOptions {
  const root = resolve(options?.root ?? '/');
  const name = options?.name ?? 'httpmesh-ca';
  if (!NAME_PATTERN.test(name))
    throw new TrustOptionsInvalidError(`name ${JSON.stringify(name)} must match ${NAME_PATTERN}`);
  const runtimes = options?.runtimes ?? ['debian', 'java', 'env'];
  for (const runtime of runtimes) {
    if (runtime !== 'debian' && runtime !== 'java' && runtime !== 'env') {
      throw new TrustOptionsInvalidError(`unknown runtime ${JSON.stringify(runtime)}`);
    }
  }
  const envFile = resolve(options?.envFile ?? at(root, '/etc/httpmesh/ca.env'));
  for (const path of [root, envFile, options?.javaKeystore ?? '']) {
    if (/[\r\n]/.test(path)) throw new TrustOptionsInvalidError('paths must not contain line breaks');
  }
  return {
    root,
    name,
    runtimes,
    envFile,
    javaKeystore: options?.javaKeystore === undefined ? undefined : resolve(options.javaKeystore),
    javaStorePassword: options?.javaStorePassword ?? 'changeit',
    runCommand: options?.runCommand ?? defaultCommandRunner,
    findExecutable: options?.findExecutable ?? findOnPath,
    localCertsDir: at(root, '/usr/local/share/ca-certificates'),
    etcCertsDir: at(root, '/etc/ssl/certs'),
    systemBundle: at(root, '/etc/ssl/certs/ca-certificates.crt'),
  };
}

/** update-ca-certificates, pointed at <root> when it is not "/" (the Debian script accepts directory options). */
function updateCaCertificatesCommand(resolved: ResolvedTrustOptions, executable: string): string[] {
  if (resolved.root === '/') return [executable];
  return [
    executable,
    '--certsconf',
    at(resolved.root, '/etc/ca-certificates.conf'),
    '--certsdir',
    at(resolved.root, '/usr/share/ca-certificates'),
    '--localcertsdir',
    resolved.localCertsDir,
    '--etccertsdir',
    resolved.etcCertsDir,
    '--hooksdir',
    at(resolved.root, '/etc/ca-certificates/update.d'),
  ];
}

function keytoolTarget(resolved: ResolvedTrustOptions): string[] {
  return resolved.javaKeystore === undefined ? ['-cacerts'] : ['-keystore', resolved.javaKeystore];
}

/** Combined bundle written beside the env file when the system store is not updated in the same run. */
function envBundlePath(resolved: ResolvedTrustOptions): string {
  return join(dirname(resolved.envFile), `${resolved.name}-bundle.pem`);
}

function plan(caCertPath: string, resolved: ResolvedTrustOptions): TrustStep[] {
  const steps: TrustStep[] = [];
  const installed = join(resolved.localCertsDir, `${resolved.name}.crt`);
  const debianWanted = resolved.runtimes.includes('debian');
  for (const runtime of resolved.runtimes) {
    if (runtime === 'debian') {
      const executable = resolved.findExecutable('update-ca-certificates');
      steps.push({
        runtime,
        available: executable !== null,
        description: `Debian/Ubuntu system store: copy to ${installed}, then update-ca-certificates`,
        commands: [
          ['install', '-m', '0644', caCertPath, installed],
          updateCaCertificatesCommand(resolved, executable ?? 'update-ca-certificates'),
        ],
      });
    } else if (runtime === 'java') {
      const keytool = resolved.findExecutable('keytool');
      const target = keytoolTarget(resolved);
      steps.push({
        runtime,
        available: keytool !== null,
        description: `Java: import into ${resolved.javaKeystore ?? 'the JDK cacerts store'} with keytool (alias ${resolved.name})`,
        commands: [
          [
            keytool ?? 'keytool',
            '-importcert',
            '-noprompt',
            '-trustcacerts',
            '-alias',
            resolved.name,
            '-file',
            caCertPath,
            ...target,
            '-storepass',
            resolved.javaStorePassword,
          ],
        ],
      });
    } else {
      // Node adds NODE_EXTRA_CA_CERTS to its own roots; the other three *replace* the roots, so they must
      // point at a full bundle that also contains the mesh CA.
      const bundle = debianWanted ? resolved.systemBundle : envBundlePath(resolved);
      const env = {
        NODE_EXTRA_CA_CERTS: debianWanted ? installed : caCertPath,
        SSL_CERT_FILE: bundle,
        REQUESTS_CA_BUNDLE: bundle,
        CURL_CA_BUNDLE: bundle,
      };
      steps.push({
        runtime,
        available: true,
        description: `Environment (Node, OpenSSL, Python requests, curl): written to ${resolved.envFile}`,
        commands: [],
        env,
      });
    }
  }
  return steps;
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function render(steps: readonly TrustStep[]): string {
  const lines: string[] = [];
  for (const step of steps) {
    lines.push(`# ${step.description}${step.available ? '' : ' (tool not found on this machine)'}`);
    for (const command of step.commands) lines.push(command.map(shellQuote).join(' '));
    if (step.env)
      for (const [key, value] of Object.entries(step.env)) lines.push(`export ${key}=${shellQuote(value)}`);
    lines.push('');
  }
  return lines.join('\n');
}

async function readCaCertificate(caCertPath: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(caCertPath, 'utf8');
  } catch (error) {
    throw new TrustCaInvalidError(caCertPath, `cannot read (${(error as NodeJS.ErrnoException).code})`, {
      cause: error,
    });
  }
  try {
    const cert = new X509Certificate(pem);
    if (!cert.ca) throw new TrustCaInvalidError(caCertPath, 'certificate is not a CA');
  } catch (error) {
    if (error instanceof TrustCaInvalidError) throw error;
    throw new TrustCaInvalidError(caCertPath, 'not a PEM X.509 certificate', { cause: error });
  }
  return pem;
}

/** What each runtime needs to trust the CA, without changing anything. */
export function trustInstructions(caCertPath: string, options?: TrustOptions): TrustInstructions {
  const resolved = resolveOptions(options);
  const absolute = resolve(caCertPath);
  const steps = plan(absolute, resolved);
  return { caCertPath: absolute, steps, text: render(steps) };
}

function describeFailure(command: readonly string[], result: CommandResult): string {
  const output = `${result.stderr}\n${result.stdout}`.trim().split('\n').slice(-3).join(' | ');
  return `${command[0]} exited ${result.code}: ${output}`;
}

/** Replaces (or adds) the trust variables in an env file, keeping every other line. */
async function updateEnvFile(path: string, values: Readonly<Record<string, string>> | null): Promise<void> {
  let existing = '';
  try {
    existing = await readFile(path, 'utf8');
  } catch {
    // a new file
  }
  const managed = new Set<string>(TRUST_ENV_VARIABLES);
  const kept = existing
    .split('\n')
    .filter(
      (line) => line !== '' && !managed.has(line.slice(0, line.indexOf('=')).replace(/^export\s+/, '')),
    );
  const added = values === null ? [] : Object.entries(values).map(([key, value]) => `${key}=${value}`);
  const content = [...kept, ...added].join('\n');
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content === '' ? '' : `${content}\n`, { mode: 0o644 });
}

/**
 * Makes each runtime trust the CA: Debian system store, Java keystore (when keytool exists) and an env file
 * with NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE. Idempotent.
 * Rejects with TrustApplyError (results attached) if any available runtime failed.
 */
export async function applyTrust(caCertPath: string, options?: TrustOptions): Promise<TrustStepResult[]> {
  const resolved = resolveOptions(options);
  const absolute = resolve(caCertPath);
  const caPem = await readCaCertificate(absolute);
  const results: TrustStepResult[] = [];
  for (const step of plan(absolute, resolved)) {
    if (!step.available) {
      results.push({ runtime: step.runtime, status: 'skipped', detail: 'tool not found' });
      continue;
    }
    if (step.runtime === 'debian') {
      const installed = join(resolved.localCertsDir, `${resolved.name}.crt`);
      await mkdir(resolved.localCertsDir, { recursive: true });
      await copyFile(absolute, installed);
      await chmod(installed, 0o644);
      const command = step.commands[1] ?? [];
      const result = await resolved.runCommand(command[0] ?? '', command.slice(1));
      results.push(
        result.code === 0
          ? { runtime: 'debian', status: 'applied', detail: installed }
          : { runtime: 'debian', status: 'failed', detail: describeFailure(command, result) },
      );
    } else if (step.runtime === 'java') {
      const command = step.commands[0] ?? [];
      const keytool = command[0] ?? 'keytool';
      // Re-importing under an existing alias fails, so a previous import is removed first (idempotence).
      await resolved.runCommand(keytool, [
        '-delete',
        '-alias',
        resolved.name,
        ...keytoolTarget(resolved),
        '-storepass',
        resolved.javaStorePassword,
      ]);
      const result = await resolved.runCommand(keytool, command.slice(1));
      results.push(
        result.code === 0
          ? { runtime: 'java', status: 'applied', detail: resolved.javaKeystore ?? 'cacerts' }
          : { runtime: 'java', status: 'failed', detail: describeFailure(command, result) },
      );
    } else if (step.env) {
      const debianApplied = results.some(
        (result) => result.runtime === 'debian' && result.status === 'applied',
      );
      const env = { ...step.env };
      if (!debianApplied) {
        // The system bundle does not contain the CA: write our own bundle (system roots + CA).
        const bundle = envBundlePath(resolved);
        let system = '';
        try {
          system = await readFile(resolved.systemBundle, 'utf8');
        } catch {
          // no system bundle: the CA alone
        }
        await mkdir(dirname(bundle), { recursive: true });
        await writeFile(bundle, `${system}${system === '' || system.endsWith('\n') ? '' : '\n'}${caPem}`, {
          mode: 0o644,
        });
        env.NODE_EXTRA_CA_CERTS = absolute;
        env.SSL_CERT_FILE = bundle;
        env.REQUESTS_CA_BUNDLE = bundle;
        env.CURL_CA_BUNDLE = bundle;
      }
      await updateEnvFile(resolved.envFile, env);
      results.push({ runtime: 'env', status: 'applied', detail: resolved.envFile });
    }
  }
  if (results.some((result) => result.status === 'failed')) throw new TrustApplyError(results);
  return results;
}

/** Undoes applyTrust: removes the CA from the system store, the Java keystore and the env file. */
export async function removeTrust(options?: TrustOptions): Promise<TrustStepResult[]> {
  const resolved = resolveOptions(options);
  const results: TrustStepResult[] = [];
  for (const step of plan('/dev/null', resolved)) {
    if (!step.available) {
      results.push({ runtime: step.runtime, status: 'skipped', detail: 'tool not found' });
      continue;
    }
    if (step.runtime === 'debian') {
      await rm(join(resolved.localCertsDir, `${resolved.name}.crt`), { force: true });
      const command = step.commands[1] ?? [];
      // --fresh rebuilds the bundle and symlinks from scratch, so nothing of the removed CA survives.
      const result = await resolved.runCommand(command[0] ?? '', [...command.slice(1), '--fresh']);
      results.push(
        result.code === 0
          ? { runtime: 'debian', status: 'removed', detail: resolved.localCertsDir }
          : { runtime: 'debian', status: 'failed', detail: describeFailure(command, result) },
      );
    } else if (step.runtime === 'java') {
      const keytool = step.commands[0]?.[0] ?? 'keytool';
      const args = [
        '-delete',
        '-alias',
        resolved.name,
        ...keytoolTarget(resolved),
        '-storepass',
        resolved.javaStorePassword,
      ];
      const result = await resolved.runCommand(keytool, args);
      const absent = /does not exist/i.test(result.stdout + result.stderr);
      results.push(
        result.code === 0 || absent
          ? { runtime: 'java', status: 'removed', detail: resolved.javaKeystore ?? 'cacerts' }
          : { runtime: 'java', status: 'failed', detail: describeFailure([keytool, ...args], result) },
      );
    } else {
      if (existsSync(resolved.envFile)) await updateEnvFile(resolved.envFile, null);
      await rm(envBundlePath(resolved), { force: true });
      results.push({ runtime: 'env', status: 'removed', detail: resolved.envFile });
    }
  }
  if (results.some((result) => result.status === 'failed')) throw new TrustApplyError(results);
  return results;
}
