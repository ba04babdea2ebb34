import { webcrypto } from 'node:crypto';

/** A WebCrypto implementation (Node's built-in one, or a compatible provider such as @peculiar/webcrypto). */
export type WebCryptoProvider = webcrypto.Crypto;

/**
 * Node's built-in WebCrypto (OpenSSL underneath). bench/webcrypto.ts compares it with @peculiar/webcrypto;
 * the built-in one is ~4x faster at leaf minting, the per-new-host hot path (@peculiar/webcrypto only wins
 * one-off ECDSA CA creation), so it is the default; figures in the README.
 */
export const defaultCryptoProvider: WebCryptoProvider = webcrypto;
