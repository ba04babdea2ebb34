export { installTrust, loadOrCreateCa, TRUST_STORES } from './ca.js';
export type { TrustResult, TrustStore } from './ca.js';
export { main } from './cli-main.js';
export type { CliIo } from './cli-main.js';
export { ConfigFileError, OptionValueError, RulesFileError, UnknownFlagError, UsageError } from './errors.js';
export { createLogger } from './logger.js';
export {
  helpText,
  OPTION_SPECS,
  parseOptionValue,
  readConfigFile,
  resolveOptions,
  specsFor,
} from './options.js';
export type {
  CommandName,
  HostPort,
  OptionKey,
  OptionSpec,
  ResolvedOptions,
  SidecarOptions,
} from './options.js';
export { loadRulesFile, parseRules, RulesFileWatcher } from './rules.js';
export type { InterceptRuleSpec, RouteSetSpec, RulesDocument, RulesWatcherOptions } from './rules.js';
