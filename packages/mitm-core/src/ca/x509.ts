// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the Reflect metadata API
// loaded before it. Every module in this package imports x509 through this file so the order is guaranteed.
// The package imports it only from x509-issuer.ts, which is loaded dynamically (certificate-der.ts says why).
import 'reflect-metadata';

export {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '@peculiar/x509';
export type { JsonName } from '@peculiar/x509';
