export {
  builtBin,
  DEMO_SERVICE,
  DemoStartError,
  freePort,
  patternsWithTraffic,
  startDemo,
} from './orchestrator.js';
export type { DemoChild, DemoOptions, RunningDemo } from './orchestrator.js';
export { runDemoCli } from './cli.js';
export { startTrafficGenerator } from './traffic.js';
export type { TrafficGenerator, TrafficOptions, TrafficStats, TrafficTarget } from './traffic.js';
export { startPaymentsService, startShopService } from './upstreams.js';
export type { DemoRoute, DemoUpstream, HttpsDemoUpstream, UpstreamOptions } from './upstreams.js';
