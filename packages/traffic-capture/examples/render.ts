// Prints the iptables-restore input and the dnsmasq configuration for a capture, without touching the
// system (no root needed): `npx tsx examples/render.ts` after building.
import {
  interceptSuffixes,
  renderDnsmasqConf,
  renderIptablesRestore,
  resolveCaptureConfig,
} from '@httpmesh/traffic-capture';

const config = resolveCaptureConfig({ inboundPorts: [8080], excludeCidrs: ['169.254.169.254'] });
const suffixes = interceptSuffixes([
  { domain: '*.partner.com' },
  { domain: 'bank.example', action: 'passthrough' },
]);
console.log(renderIptablesRestore(config));
console.log(
  renderDnsmasqConf(config, { upstream: '10.0.0.2', suffixes, pidFile: '/run/httpmesh/capture/dnsmasq.pid' }),
);
