import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PersistedState } from './gen/httpmesh/rulesync/v1/rule_sync.js';
import { PersistedStateCorruptError } from './errors.js';

// Layout: 8-byte magic, uint32 BE payload length, 32-byte SHA-256 of the payload, payload.
const MAGIC = Buffer.from('HMRSYNC1', 'latin1');
const HEADER_BYTES = MAGIC.length + 4 + 32;

export function encodeStateFile(state: PersistedState): Buffer {
  const payload = PersistedState.encode(state).finish();
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32BE(payload.length, MAGIC.length);
  createHash('sha256')
    .update(payload)
    .digest()
    .copy(header, MAGIC.length + 4);
  return Buffer.concat([header, payload]);
}

/** Decodes a state file; throws PersistedStateCorruptError for any truncation, bad checksum or bad payload. */
export function decodeStateFile(bytes: Uint8Array): PersistedState {
  const file = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (file.length < HEADER_BYTES) {
    throw new PersistedStateCorruptError(
      `file is ${file.length} bytes, shorter than the ${HEADER_BYTES}-byte header`,
    );
  }
  if (!file.subarray(0, MAGIC.length).equals(MAGIC)) throw new PersistedStateCorruptError('bad magic');
  const length = file.readUInt32BE(MAGIC.length);
  const payload = file.subarray(HEADER_BYTES);
  if (payload.length !== length) {
    throw new PersistedStateCorruptError(
      `payload is ${payload.length} bytes, header says ${length} (partial write?)`,
    );
  }
  const expected = file.subarray(MAGIC.length + 4, HEADER_BYTES);
  if (!createHash('sha256').update(payload).digest().equals(expected)) {
    throw new PersistedStateCorruptError('checksum mismatch');
  }
  try {
    return PersistedState.decode(payload);
  } catch (err) {
    throw new PersistedStateCorruptError(`payload does not decode: ${(err as Error).message}`);
  }
}

/** Reads the state file; undefined when it does not exist. Corruption throws PersistedStateCorruptError. */
export async function readStateFile(path: string): Promise<PersistedState | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return decodeStateFile(bytes);
}

/** Crash-safe write: temp file in the same directory, fsync, rename over the target, fsync the directory. */
export async function writeStateFile(path: string, state: PersistedState): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile(encodeStateFile(state));
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  await rename(temp, path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
