export { TrustApplyError, TrustCaInvalidError, TrustError, TrustOptionsInvalidError } from './errors.js';
export {
  TRUST_ENV_VARIABLES,
  applyTrust,
  defaultCommandRunner,
  findOnPath,
  removeTrust,
  trustInstructions,
} from './trust.js';
export type {
  CommandResult,
  CommandRunner,
  TrustEnvVariable,
  TrustInstructions,
  TrustOptions,
  TrustRuntime,
  TrustStep,
  TrustStepResult,
} from './trust.js';
