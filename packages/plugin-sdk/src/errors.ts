/** Base of every error this package raises or reports; callers match on `code`. */
export class PluginError extends Error {
  readonly code: string;
  /** Name of the plugin involved, when known. */
  readonly plugin: string | undefined;
  constructor(code: string, message: string, plugin?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PluginError';
    this.code = code;
    this.plugin = plugin;
  }
}

/** The plugin did not answer a message within the per-message timeout. */
export class PluginTimeoutError extends PluginError {
  constructor(plugin: string, timeoutMs: number) {
    super('HTTPMESH_PLUGIN_TIMEOUT', `plugin ${plugin} did not answer within ${timeoutMs} ms`, plugin);
    this.name = 'PluginTimeoutError';
  }
}

/** The plugin is not running, not reachable, or its stream broke. */
export class PluginUnavailableError extends PluginError {
  constructor(plugin: string, detail: string, options?: ErrorOptions) {
    super('HTTPMESH_PLUGIN_UNAVAILABLE', `plugin ${plugin} unavailable: ${detail}`, plugin, options);
    this.name = 'PluginUnavailableError';
  }
}

/** A reply could not be decoded or carries no action / an action not allowed in its phase. */
export class PluginReplyMalformedError extends PluginError {
  constructor(plugin: string, detail: string) {
    super('HTTPMESH_PLUGIN_REPLY_MALFORMED', `plugin ${plugin} sent a malformed reply: ${detail}`, plugin);
    this.name = 'PluginReplyMalformedError';
  }
}

/** A reply answers a different phase than the one pending. */
export class PluginReplyWrongPhaseError extends PluginError {
  constructor(plugin: string, expected: string, got: string) {
    super(
      'HTTPMESH_PLUGIN_REPLY_WRONG_PHASE',
      `plugin ${plugin} answered phase ${got} while ${expected} was pending`,
      plugin,
    );
    this.name = 'PluginReplyWrongPhaseError';
  }
}

/** A reply sets a header with an invalid name/value (CR, LF, NUL, non-token) or a forbidden name. */
export class PluginReplyInvalidHeaderError extends PluginError {
  constructor(plugin: string, detail: string) {
    super(
      'HTTPMESH_PLUGIN_REPLY_INVALID_HEADER',
      `plugin ${plugin} sent an invalid header: ${detail}`,
      plugin,
    );
    this.name = 'PluginReplyInvalidHeaderError';
  }
}

/** A reply carries a body larger than the host allows. */
export class PluginReplyBodyTooLargeError extends PluginError {
  constructor(plugin: string, size: number, limit: number) {
    super(
      'HTTPMESH_PLUGIN_REPLY_BODY_TOO_LARGE',
      `plugin ${plugin} replied with a ${size}-byte body, over the ${limit}-byte limit`,
      plugin,
    );
    this.name = 'PluginReplyBodyTooLargeError';
  }
}

/** An immediate response carries a status outside 200-599. */
export class PluginReplyInvalidStatusError extends PluginError {
  constructor(plugin: string, status: number) {
    super('HTTPMESH_PLUGIN_REPLY_INVALID_STATUS', `plugin ${plugin} replied with status ${status}`, plugin);
    this.name = 'PluginReplyInvalidStatusError';
  }
}

/** The plugin reported that its own handler threw. */
export class PluginHandlerError extends PluginError {
  constructor(plugin: string, detail: string) {
    super('HTTPMESH_PLUGIN_HANDLER_ERROR', `plugin ${plugin} handler failed: ${detail}`, plugin);
    this.name = 'PluginHandlerError';
  }
}

/** A body the plugin asked to receive BUFFERED exceeds the byte limit it declared. */
export class PluginBodyTooLargeError extends PluginError {
  constructor(plugin: string, size: number, limit: number) {
    super(
      'HTTPMESH_PLUGIN_BODY_TOO_LARGE',
      `body of ${size}+ bytes exceeds plugin ${plugin}'s buffered limit of ${limit} bytes`,
      plugin,
    );
    this.name = 'PluginBodyTooLargeError';
  }
}

/** The handshake failed or declared something invalid (protocol version, name, phases). */
export class PluginHandshakeError extends PluginError {
  constructor(plugin: string, detail: string, options?: ErrorOptions) {
    super(
      'HTTPMESH_PLUGIN_HANDSHAKE_FAILED',
      `handshake with plugin ${plugin} failed: ${detail}`,
      plugin,
      options,
    );
    this.name = 'PluginHandshakeError';
  }
}

/** A plugin definition, chain config or supervisor spec is invalid. */
export class PluginConfigError extends PluginError {
  constructor(detail: string, plugin?: string, options?: ErrorOptions) {
    super('HTTPMESH_PLUGIN_CONFIG_INVALID', detail, plugin, options);
    this.name = 'PluginConfigError';
  }
}

/** The supervisor could not start a plugin process or it never became ready. */
export class PluginStartError extends PluginError {
  constructor(plugin: string, detail: string, options?: ErrorOptions) {
    super('HTTPMESH_PLUGIN_START_FAILED', `plugin ${plugin} failed to start: ${detail}`, plugin, options);
    this.name = 'PluginStartError';
  }
}

/** The host used an exchange wrongly (a message while one is pending, or after completion). */
export class PluginExchangeStateError extends PluginError {
  constructor(plugin: string, detail: string) {
    super('HTTPMESH_PLUGIN_EXCHANGE_STATE', detail, plugin);
    this.name = 'PluginExchangeStateError';
  }
}
