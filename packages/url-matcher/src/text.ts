/** Percent-decodes; a malformed escape (`%zz`, broken UTF-8) leaves the input as it was instead of throwing. */
export function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** Folds A-Z only, so folding never changes a string's length (offsets stay valid). */
export function asciiLower(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 65 && c <= 90) return foldFrom(value);
  }
  return value;
}

function foldFrom(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    out += c >= 65 && c <= 90 ? String.fromCharCode(c + 32) : value[i];
  }
  return out;
}

/** Rolling hash of `value.slice(start, end)`, without the slice. */
export function hashRange(value: string, start: number, end: number): number {
  let hash = 0;
  for (let i = start; i < end; i++) hash = (Math.imul(hash, 31) + value.charCodeAt(i)) | 0;
  return hash;
}

export function hashString(value: string): number {
  return hashRange(value, 0, value.length);
}

/** True when `text` occurs at `offset` in `source`, comparing A-Z case-insensitively. `text` is lower-case. */
export function regionEqualsFolded(source: string, offset: number, text: string): boolean {
  if (offset < 0 || offset + text.length > source.length) return false;
  for (let i = 0; i < text.length; i++) {
    let c = source.charCodeAt(offset + i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== text.charCodeAt(i)) return false;
  }
  return true;
}
