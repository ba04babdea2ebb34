import { webcrypto } from 'node:crypto';

/** A WebCrypto implementation (Node's built-in one, or a compatible provider such as @peculiar/webcrypto). */
export type WebCryptoProvider = webcrypto.Crypto;

/**
 * Node's built-in WebCrypto (OpenSSL underneath). bench/webcrypto.ts compares it with @peculiar/webcrypto;
 * the built-in one measured faster for every operation we use (see README), so it is the default.
 */
export const defaultCryptoProvider: WebCryptoProvider = webcrypto;
