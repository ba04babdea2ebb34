// `@httpmesh/plugin-sdk/config`: validate plugin configuration without loading gRPC (see config.ts).
export { parsePluginConfig } from './config.js';
export type { PluginConfig } from './config.js';
export { PluginConfigError, PluginError } from './errors.js';
