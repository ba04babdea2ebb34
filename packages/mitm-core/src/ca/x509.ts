// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the Reflect metadata API
// loaded before it. Every module in this package imports x509 through this file so the order is guaranteed.
import 'reflect-metadata';

export {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '@peculiar/x509';
export type { JsonGeneralName, JsonName } from '@peculiar/x509';
