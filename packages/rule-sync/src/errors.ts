/** Base of every rule-sync error; callers match on `code`, never on the message. */
export abstract class RuleSyncError extends Error {
  abstract readonly code: string;
}

/** The first message on a stream was not a Hello, or the Hello lacks identity/subscriptions. */
export class InvalidHelloError extends RuleSyncError {
  override readonly name = 'InvalidHelloError';
  readonly code = 'HTTPMESH_RULESYNC_HELLO_INVALID';
}

/** The node id in the Hello does not match the client certificate. */
export class IdentityMismatchError extends RuleSyncError {
  override readonly name = 'IdentityMismatchError';
  readonly code = 'HTTPMESH_RULESYNC_IDENTITY_MISMATCH';
}

/** A peer sent a message that breaks the protocol (duplicate Hello, empty message, wrong body type). */
export class ProtocolViolationError extends RuleSyncError {
  override readonly name = 'ProtocolViolationError';
  readonly code = 'HTTPMESH_RULESYNC_PROTOCOL_VIOLATION';
}

/** An Ack echoed a nonce this stream never issued (reported in-stream, not fatal). */
export class UnknownNonceError extends RuleSyncError {
  override readonly name = 'UnknownNonceError';
  readonly code = 'HTTPMESH_RULESYNC_UNKNOWN_NONCE';
}

/** A sidecar did not drain its stream or answer a push in time; it was disconnected. */
export class SlowConsumerError extends RuleSyncError {
  override readonly name = 'SlowConsumerError';
  readonly code = 'HTTPMESH_RULESYNC_SLOW_CONSUMER';
}

/** Plaintext was requested on an address that is not loopback. */
export class InsecureNonLoopbackError extends RuleSyncError {
  override readonly name = 'InsecureNonLoopbackError';
  readonly code = 'HTTPMESH_RULESYNC_INSECURE_NON_LOOPBACK';
}

/** A resource given to the server or pushed to a client is malformed. */
export class InvalidResourceError extends RuleSyncError {
  override readonly name = 'InvalidResourceError';
  readonly code = 'HTTPMESH_RULESYNC_RESOURCE_INVALID';
}

/** The validate callback rejected a push (sent as the NACK's error detail). */
export class ValidationRejectedError extends RuleSyncError {
  override readonly name = 'ValidationRejectedError';
  readonly code = 'HTTPMESH_RULESYNC_VALIDATION_REJECTED';
}

/** The persisted state file is truncated, has a bad checksum or cannot be decoded; it is ignored. */
export class PersistedStateCorruptError extends RuleSyncError {
  override readonly name = 'PersistedStateCorruptError';
  readonly code = 'HTTPMESH_RULESYNC_STATE_CORRUPT';
}

/** The client or server was closed while an operation was pending. */
export class RuleSyncClosedError extends RuleSyncError {
  override readonly name = 'RuleSyncClosedError';
  readonly code = 'HTTPMESH_RULESYNC_CLOSED';
}

/** The server ended the stream on purpose (superseded by a newer stream of the same node, or evicted). */
export class SidecarEvictedError extends RuleSyncError {
  override readonly name = 'SidecarEvictedError';
  readonly code = 'HTTPMESH_RULESYNC_EVICTED';
}

/** The peer sent nothing (no message, no heartbeat echo) for longer than the configured timeout. */
export class PeerSilentError extends RuleSyncError {
  override readonly name = 'PeerSilentError';
  readonly code = 'HTTPMESH_RULESYNC_PEER_SILENT';
}

/**
 * The TLS credentials could not be loaded: the `tls` function threw, or what it returned is not a usable
 * certificate/key/CA (garbage PEM, a key that does not match the certificate).
 */
export class CredentialsUnavailableError extends RuleSyncError {
  override readonly name = 'CredentialsUnavailableError';
  readonly code = 'HTTPMESH_RULESYNC_CREDENTIALS_UNAVAILABLE';
}
