export { CertificateAuthority } from './ca/index.js';
export type {
  CaKeyAlgorithm,
  CaPem,
  CaFileNames,
  CaFiles,
  CaStats,
  CreateCaOptions,
  IssueIntermediateOptions,
  IssuedLeaf,
  LeafKeyAlgorithm,
  LeafPolicy,
  NormalizedName,
  WebCryptoProvider,
} from './ca/index.js';
export {
  CaCertificateInvalidError,
  CaError,
  CaExpiredError,
  CaFileError,
  CaHostnameInvalidError,
  CaKeyInvalidError,
  CaKeyMismatchError,
  CaKeyUnsupportedError,
  CaNameNotPermittedError,
  CaNotAuthorityError,
  CaOptionsInvalidError,
  normalizeHostname,
} from './ca/index.js';
export {
  createOriginalDestinationReader,
  getOriginalDestination,
  originalDestinationSupported,
} from './native/index.js';
export type {
  OriginalDestination,
  OriginalDestinationLogger,
  OriginalDestinationReader,
  OriginalDestinationReaderOptions,
} from './native/index.js';
