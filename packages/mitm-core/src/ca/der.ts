/**
 * Minimal DER reading and writing: just what the CA needs to read a CA certificate (the fields node:crypto's
 * X509Certificate does not expose) and to assemble leaves, without loading a general ASN.1 library.
 */

/** One DER element: its tag, where its content starts and where it ends (exclusive). */
export interface DerElement {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

export class DerError extends Error {
  override readonly name = 'DerError';
}

/** Reads the TLV header at `offset` (single-byte tags, definite lengths, as DER requires). */
export function readElement(der: Uint8Array, offset: number, limit = der.length): DerElement {
  if (offset + 2 > limit) throw new DerError('truncated DER');
  const tag = der[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte DER tags are not supported');
  const first = der[offset + 1] as number;
  let contentStart = offset + 2;
  let length = first;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 4) throw new DerError('unsupported DER length');
    if (contentStart + count > limit) throw new DerError('truncated DER');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (der[contentStart + i] as number);
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > limit) throw new DerError('truncated DER');
  return { tag, start: offset, contentStart, end };
}

/** The direct children of a constructed element. */
export function children(der: Uint8Array, parent: DerElement): DerElement[] {
  const result: DerElement[] = [];
  let offset = parent.contentStart;
  while (offset < parent.end) {
    const element = readElement(der, offset, parent.end);
    result.push(element);
    offset = element.end;
  }
  return result;
}

export function expectTag(element: DerElement | undefined, tag: number, what: string): DerElement {
  if (element === undefined || element.tag !== tag) throw new DerError(`expected ${what}`);
  return element;
}

export function contentOf(der: Uint8Array, element: DerElement): Uint8Array {
  return der.subarray(element.contentStart, element.end);
}

/** Dotted text of an OBJECT IDENTIFIER's content bytes. */
export function oidText(content: Uint8Array): string {
  if (content.length === 0) throw new DerError('empty OBJECT IDENTIFIER');
  const arcs: number[] = [];
  let value = 0;
  for (const byte of content) {
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      if (arcs.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2;
        arcs.push(first, value - first * 40);
      } else arcs.push(value);
      value = 0;
    }
  }
  return arcs.join('.');
}

function lengthBytes(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  if (length < 0x100) return Buffer.from([0x81, length]);
  if (length < 0x10000) return Buffer.from([0x82, length >> 8, length & 0xff]);
  return Buffer.from([0x83, length >> 16, (length >> 8) & 0xff, length & 0xff]);
}

/** Encodes one DER element from its tag and the concatenation of `parts`. */
export function tlv(tag: number, ...parts: Uint8Array[]): Buffer {
  let length = 0;
  for (const part of parts) length += part.length;
  return Buffer.concat([Buffer.from([tag]), lengthBytes(length), ...parts]);
}
