import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ChannelCredentials,
  type ChannelOptions,
  type Client as GrpcClient,
  type ClientDuplexStream,
  credentials as grpcCredentials,
  makeGenericClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';
import {
  ControlMessage,
  InterceptRule_Action,
  ruleSyncGrpcDefinition,
  SidecarMessage,
  ResourceType,
  type Resource,
  type RuleSyncLogger,
} from '../src/index.js';

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `rule-sync-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Polls `condition` until it holds or `timeoutMs` passes (bounded, no fixed sleeps). */
export async function waitFor(
  condition: () => boolean,
  timeoutMs = 5_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export interface MemoryLogger extends RuleSyncLogger {
  lines: string[];
}

export function memoryLogger(): MemoryLogger {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
  };
}

export function interceptRule(name: string, domain: string, version = ''): Resource {
  return {
    name,
    version,
    body: {
      $case: 'interceptRule',
      value: { name, domain, action: InterceptRule_Action.ACTION_INTERCEPT, upstreamTlsVerify: undefined },
    },
  };
}

export function routeSet(name: string, host: string, patterns: string[]): Resource {
  return {
    name,
    version: '',
    body: {
      $case: 'routeSet',
      value: { name, host, routes: patterns.map((pattern) => ({ pattern, methods: ['GET'] })) },
    },
  };
}

export const INTERCEPT = ResourceType.RESOURCE_TYPE_INTERCEPT_RULE;
export const ROUTES = ResourceType.RESOURCE_TYPE_ROUTE_SET;

export interface Pki {
  ca: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  client(nodeId: string, mode?: 'spiffe' | 'cn'): { cert: Buffer; key: Buffer };
  cleanup(): void;
}

/** Real certificates from the openssl CLI: a CA, a server cert for 127.0.0.1, client certs per node. */
export function createPki(): Pki {
  const { dir, cleanup } = tempDir('pki');
  const run = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key']);
  run([
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/CN=httpmesh test CA',
    '-days',
    '2',
    '-out',
    'ca.pem',
  ]);
  const issue = (name: string, subject: string, ext: string): { cert: Buffer; key: Buffer } => {
    run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`]);
    run(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`]);
    writeFileSync(join(dir, `${name}.ext`), ext);
    run([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    ]);
    return { cert: readFileSync(join(dir, `${name}.pem`)), key: readFileSync(join(dir, `${name}.key`)) };
  };
  const server = issue(
    'server',
    '/CN=control-plane',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  let serial = 0;
  return {
    ca: readFileSync(join(dir, 'ca.pem')),
    serverCert: server.cert,
    serverKey: server.key,
    client: (nodeId, mode = 'spiffe') =>
      issue(
        `client${++serial}`,
        mode === 'cn' ? `/CN=${nodeId}` : '/CN=sidecar',
        `${mode === 'spiffe' ? `subjectAltName=URI:spiffe://httpmesh/node/${nodeId}\n` : ''}extendedKeyUsage=clientAuth\n`,
      ),
    cleanup,
  };
}

/** A raw grpc-js peer speaking the protocol directly, for malformed-input and slow-consumer tests. */
export function rawStream(
  address: string,
  credentials: ChannelCredentials = credentialsInsecure(),
  options: ChannelOptions = {},
): { call: ClientDuplexStream<SidecarMessage, ControlMessage>; client: GrpcClient } {
  const Ctor = makeGenericClientConstructor(ruleSyncGrpcDefinition, 'RuleSync');
  const client = new Ctor(address, credentials, options);
  const call = client.makeBidiStreamRequest(
    '/httpmesh.rulesync.v1.RuleSync/Stream',
    (m: SidecarMessage) => Buffer.from(SidecarMessage.encode(m).finish()),
    (b: Buffer) => ControlMessage.decode(b),
  ) as ClientDuplexStream<SidecarMessage, ControlMessage>;
  // Tests assert on errors explicitly (streamError); a cancel at cleanup must not be an uncaught error.
  call.on('error', () => undefined);
  return { call, client };
}

function credentialsInsecure(): ChannelCredentials {
  return grpcCredentials.createInsecure();
}

/** Resolves with the gRPC status error that ends `call`. */
export function streamError(call: ClientDuplexStream<SidecarMessage, ControlMessage>): Promise<ServiceError> {
  return new Promise((resolve, reject) => {
    call.on('error', (err: ServiceError) => resolve(err));
    call.on('end', () => reject(new Error('stream ended without an error')));
    call.on('data', () => undefined);
  });
}
