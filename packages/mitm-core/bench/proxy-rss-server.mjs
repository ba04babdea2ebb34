// Child of bench/proxy-rss.ts: the compiled engine (dist/) in plain node, no tsx loader, so its RSS is what a
// deployment sees. argv: certificate dir, mode (transparent|explicit), upstream port. Prints one JSON line:
// the port and the RSS (MB) before the import, after it, and after loading the CA (PEM) and minting a leaf.
// RSS_DIST: another compiled copy (absolute path to its index.js) for A/B runs.
import { readFileSync } from 'node:fs';
import net from 'node:net';
const mb = () => process.memoryUsage().rss / 1048576;
const [dir, mode, upstreamPort] = process.argv.slice(2);
const bare = mb();
const { CertificateAuthority, createMitmProxy } = await import(process.env.RSS_DIST ?? '../dist/index.js');
const imported = mb();
const file = (n) => readFileSync(`${dir}/${n}`, 'utf8');
const ca = await CertificateAuthority.load(file('proxy-ca.pem'), file('proxy-ca.key'));
await ca.secureContextFor('localhost');
const caLoaded = mb();
const proxy = createMitmProxy({ ca, upstreamCa: [file('upstream-ca.pem')] });
let address;
if (mode === 'explicit') address = await proxy.listen(0, '127.0.0.1');
else {
  const server = net.createServer({ noDelay: true }, (s) =>
    proxy.handleConnection(s, { address: '127.0.0.1', port: Number(upstreamPort), family: 4 }),
  );
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  address = server.address();
}
process.stdout.write(`${JSON.stringify({ port: address.port, bare, imported, caLoaded })}\n`);
process.on('SIGTERM', () => process.exit(0));
