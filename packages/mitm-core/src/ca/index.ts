export {
  CertificateAuthority,
  SPIFFE_NODE_PREFIX,
  isMeshNodeId,
  spiffeNodeUri,
} from './certificate-authority.js';
export type {
  CaKeyAlgorithm,
  CaPem,
  CaStats,
  CreateCaOptions,
  IssueClientLeafOptions,
  IssueIntermediateOptions,
  IssuedClientLeaf,
  IssuedLeaf,
  LeafKeyAlgorithm,
  LeafPolicy,
} from './certificate-authority.js';
export {
  CaCertificateInvalidError,
  CaError,
  CaExpiredError,
  CaFileError,
  CaHostnameInvalidError,
  CaIssuerUnavailableError,
  CaKeyInvalidError,
  CaKeyMismatchError,
  CaKeyUnsupportedError,
  CaNameNotPermittedError,
  CaNotAuthorityError,
  CaOptionsInvalidError,
} from './errors.js';
export type { CaFileNames, CaFiles } from './files.js';
export { normalizeHostname } from './hostname.js';
export type { NormalizedName } from './hostname.js';
export type { WebCryptoProvider } from './crypto-provider.js';
