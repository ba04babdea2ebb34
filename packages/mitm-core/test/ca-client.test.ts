import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:tls';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { afterEach, describe, expect, test } from 'vitest';
import { CertificateAuthority, SPIFFE_NODE_PREFIX, isMeshNodeId, spiffeNodeUri } from '../src/ca/index.js';
import type { IssueClientLeafOptions } from '../src/ca/index.js';

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const SERVER_AUTH_OID = '1.3.6.1.5.5.7.3.1';
const DAY = 86_400_000;

const servers: Array<ReturnType<typeof createServer>> = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

interface MtlsOutcome {
  authorized: boolean;
  authorizationError: string | undefined;
  peer: PeerCertificate | undefined;
}

/**
 * A node:tls server that asks for a client certificate chaining to `trustedCaPem` and reports what it saw.
 * With `enforce` it refuses unverified clients; without, it lets them in so the verification error is visible.
 */
async function startMtlsServer(serverCa: CertificateAuthority, trustedCaPem: string, enforce = true) {
  const leaf = await serverCa.issueLeaf(['localhost']);
  const outcomes: MtlsOutcome[] = [];
  const server = createServer(
    {
      cert: leaf.chainPem,
      key: leaf.keyPem,
      ca: trustedCaPem,
      requestCert: true,
      rejectUnauthorized: enforce,
    },
    (socket: TLSSocket) => {
      const peer = socket.getPeerCertificate();
      outcomes.push({
        authorized: socket.authorized,
        authorizationError: socket.authorizationError?.toString(),
        peer: peer && Object.keys(peer).length > 0 ? peer : undefined,
      });
      socket.end('hello');
    },
  );
  const rejected: Error[] = [];
  server.on('tlsClientError', (error) => rejected.push(error));
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, outcomes, rejected };
}

/** Connects with a client certificate; resolves to the body or rejects with the handshake error. */
async function mtlsRequest(port: number, serverCaPem: string, client: { chainPem: string; keyPem: string }) {
  const socket = connect({
    port,
    host: '127.0.0.1',
    servername: 'localhost',
    ca: serverCaPem,
    cert: client.chainPem,
    key: client.keyPem,
  });
  let body = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    body += chunk;
  });
  await new Promise<void>((resolve, reject) => {
    socket.on('end', resolve);
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
  return body;
}

describe('issueClientLeaf', () => {
  test('completes a real mTLS handshake; the server sees the node in the SPIFFE URI SAN and CN', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'Mesh CA' });
    const { port, outcomes } = await startMtlsServer(ca, ca.certPem);
    const client = await ca.issueClientLeaf({ nodeId: 'edge:node-1' });
    expect(await mtlsRequest(port, ca.certPem, client)).toBe('hello');
    expect(outcomes).toHaveLength(1);
    const seen = outcomes[0];
    expect(seen?.authorized).toBe(true);
    expect(seen?.peer?.subject.CN).toBe('edge:node-1');
    // The id is percent-encoded in the URI, as rule-sync's certificateNodeIds decodes it.
    expect(client.spiffeId).toBe(`${SPIFFE_NODE_PREFIX}edge%3Anode-1`);
    expect(seen?.peer?.subjectaltname).toBe(`URI:${client.spiffeId}`);
    expect(decodeURIComponent(client.spiffeId.slice(SPIFFE_NODE_PREFIX.length))).toBe('edge:node-1');
  });

  test('has clientAuth EKU only, its own key per certificate, and a bounded validity', async () => {
    const now = Date.UTC(2030, 0, 1, 12, 0, 0, 500);
    const ca = await CertificateAuthority.create({
      commonName: 'Mesh CA',
      validityDays: 10,
      clock: () => now,
    });
    const first = await ca.issueClientLeaf({ nodeId: 'a', uris: ['spiffe://other/ns/x'] });
    const second = await ca.issueClientLeaf({ nodeId: 'b', validityDays: 5, keyAlgorithm: 'RSA-2048' });
    const cert = new X509Certificate(first.certPem);
    expect(cert.keyUsage).toEqual([CLIENT_AUTH_OID]);
    expect(cert.ca).toBe(false);
    expect(cert.subjectAltName).toBe(`URI:${spiffeNodeUri('a')}, URI:spiffe://other/ns/x`);
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(first.keyPem).not.toBe(second.keyPem);
    expect(new X509Certificate(second.certPem).publicKey.asymmetricKeyType).toBe('rsa');
    // Default 30 days is capped by the CA's own 10-day lifetime; times are whole seconds.
    expect(first.notAfter.getTime()).toBe(ca.notAfter.getTime());
    expect(first.notBefore.getTime()).toBe(Math.floor(now / 1000) * 1000 - 3_600_000);
    expect(second.notAfter.getTime()).toBe(Math.floor(now / 1000) * 1000 + 5 * DAY);
    expect(new Date(cert.validTo).getTime()).toBe(first.notAfter.getTime());
  });

  test('an intermediate-issued client certificate sends its chain and verifies against the root', async () => {
    const root = await CertificateAuthority.create({ commonName: 'Mesh root' });
    const intermediate = await root.issueIntermediate({ permittedDomains: ['mesh.test'] });
    const { port, outcomes } = await startMtlsServer(root, root.certPem);
    const client = await intermediate.issueClientLeaf({ nodeId: 'node-7' });
    expect(client.chainPem).toBe(client.certPem + intermediate.certPem);
    expect(await mtlsRequest(port, root.certPem, client)).toBe('hello');
    expect(outcomes[0]?.authorized).toBe(true);
    expect(outcomes[0]?.peer?.subject.CN).toBe('node-7');
  });

  test('a server requiring client certificates refuses one from another CA', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'Mesh CA' });
    const stranger = await CertificateAuthority.create({ commonName: 'Stranger CA' });
    const client = await stranger.issueClientLeaf({ nodeId: 'intruder' });
    const enforcing = await startMtlsServer(ca, ca.certPem);
    const body = await mtlsRequest(enforcing.port, ca.certPem, client).catch(() => '');
    expect(body).toBe('');
    expect(enforcing.outcomes).toHaveLength(0);
    const lenient = await startMtlsServer(ca, ca.certPem, false);
    await mtlsRequest(lenient.port, ca.certPem, client);
    expect(lenient.outcomes[0]).toMatchObject({
      authorized: false,
      authorizationError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
  });

  test('a serverAuth-only leaf is refused as a client certificate, a clientAuth leaf as a server one', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'Mesh CA' });
    const lenient = await startMtlsServer(ca, ca.certPem, false);
    const serverLeaf = await ca.issueLeaf(['client.mesh.test']);
    expect(new X509Certificate(serverLeaf.certPem).keyUsage).toEqual([SERVER_AUTH_OID]);
    await mtlsRequest(lenient.port, ca.certPem, serverLeaf);
    expect(lenient.outcomes[0]).toMatchObject({ authorized: false, authorizationError: 'INVALID_PURPOSE' });

    const clientLeaf = await ca.issueClientLeaf({ nodeId: 'localhost' });
    const server = createServer({ cert: clientLeaf.chainPem, key: clientLeaf.keyPem }, (s) => s.end('x'));
    server.on('tlsClientError', () => {});
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const socket = connect({
      port: (server.address() as AddressInfo).port,
      host: '127.0.0.1',
      servername: 'localhost',
      ca: ca.certPem,
    });
    const [error] = (await once(socket, 'error').catch((e: unknown) => [e])) as [NodeJS.ErrnoException];
    expect(error.code).toBe('INVALID_PURPOSE');
  });

  test('isMeshNodeId accepts exactly the ids issueClientLeaf accepts', () => {
    for (const id of ['a', 'node-1', 'edge:node_1.x', 'n'.repeat(128)]) expect(isMeshNodeId(id)).toBe(true);
    for (const id of ['', '.a', '-a', 'a/b', 'a b', 'n'.repeat(129), 42, null, undefined]) {
      expect(isMeshNodeId(id)).toBe(false);
    }
  });

  test.each<[string, unknown]>([
    ['missing node id', {}],
    ['empty node id', { nodeId: '' }],
    ['node id with a slash', { nodeId: 'a/b' }],
    ['node id starting with a dot', { nodeId: '.a' }],
    ['node id over 128 characters', { nodeId: 'n'.repeat(129) }],
    ['non-string node id', { nodeId: 42 }],
    ['relative uri', { nodeId: 'a', uris: ['not a uri'] }],
    ['non-array uris', { nodeId: 'a', uris: 'spiffe://x/y' }],
    ['too many uris', { nodeId: 'a', uris: Array.from({ length: 17 }, (_, i) => `urn:x:${i}`) }],
    ['zero validity', { nodeId: 'a', validityDays: 0 }],
    ['validity over 397 days', { nodeId: 'a', validityDays: 398 }],
    ['NaN validity', { nodeId: 'a', validityDays: Number.NaN }],
    ['unsupported key algorithm', { nodeId: 'a', keyAlgorithm: 'Ed25519' }],
  ])('rejects %s with HTTPMESH_CA_OPTIONS_INVALID', async (_label, options) => {
    const ca = await CertificateAuthority.create({ commonName: 'Mesh CA' });
    await expect(ca.issueClientLeaf(options as IssueClientLeafOptions)).rejects.toMatchObject({
      name: 'CaOptionsInvalidError',
      code: 'HTTPMESH_CA_OPTIONS_INVALID',
    });
    expect(ca.stats().leavesIssued).toBe(0);
  });
});
