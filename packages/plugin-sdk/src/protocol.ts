import { BodyMode, Phase } from './gen/plugin.js';

// The header helpers live in headers.ts so that `@httpmesh/plugin-sdk/headers` loads no gRPC code.
export {
  headerListFromRecord,
  headerListToRecord,
  isForbiddenHeader,
  isValidHeaderName,
  isValidHeaderValue,
} from './headers.js';
export type { HeaderList, HeaderRecord } from './headers.js';

/** Protocol version spoken by this package; a plugin must declare the same major version. */
export const PROTOCOL_VERSION = 1;

export type PhaseName =
  | 'requestHeaders'
  | 'requestBody'
  | 'requestTrailers'
  | 'responseHeaders'
  | 'responseBody'
  | 'responseTrailers'
  | 'complete';

export const PHASE_NAMES: readonly PhaseName[] = [
  'requestHeaders',
  'requestBody',
  'requestTrailers',
  'responseHeaders',
  'responseBody',
  'responseTrailers',
  'complete',
];

export type BodyModeName = 'none' | 'streamed' | 'buffered';

export const PHASE_TO_WIRE: Readonly<Record<PhaseName, Phase>> = {
  requestHeaders: Phase.PHASE_REQUEST_HEADERS,
  requestBody: Phase.PHASE_REQUEST_BODY,
  requestTrailers: Phase.PHASE_REQUEST_TRAILERS,
  responseHeaders: Phase.PHASE_RESPONSE_HEADERS,
  responseBody: Phase.PHASE_RESPONSE_BODY,
  responseTrailers: Phase.PHASE_RESPONSE_TRAILERS,
  complete: Phase.PHASE_COMPLETE,
};

export function phaseFromWire(phase: Phase): PhaseName | undefined {
  switch (phase) {
    case Phase.PHASE_REQUEST_HEADERS:
      return 'requestHeaders';
    case Phase.PHASE_REQUEST_BODY:
      return 'requestBody';
    case Phase.PHASE_REQUEST_TRAILERS:
      return 'requestTrailers';
    case Phase.PHASE_RESPONSE_HEADERS:
      return 'responseHeaders';
    case Phase.PHASE_RESPONSE_BODY:
      return 'responseBody';
    case Phase.PHASE_RESPONSE_TRAILERS:
      return 'responseTrailers';
    case Phase.PHASE_COMPLETE:
      return 'complete';
    default:
      return undefined;
  }
}

export const BODY_MODE_TO_WIRE: Readonly<Record<BodyModeName, BodyMode>> = {
  none: BodyMode.BODY_MODE_NONE,
  streamed: BodyMode.BODY_MODE_STREAMED,
  buffered: BodyMode.BODY_MODE_BUFFERED,
};

export function bodyModeFromWire(mode: BodyMode): BodyModeName | undefined {
  switch (mode) {
    case BodyMode.BODY_MODE_NONE:
      return 'none';
    case BodyMode.BODY_MODE_STREAMED:
      return 'streamed';
    case BodyMode.BODY_MODE_BUFFERED:
      return 'buffered';
    default:
      return undefined;
  }
}

export function isBodyPhase(phase: PhaseName): boolean {
  return phase === 'requestBody' || phase === 'responseBody';
}

export function isHeaderPhase(phase: PhaseName): boolean {
  return (
    phase === 'requestHeaders' ||
    phase === 'responseHeaders' ||
    phase === 'requestTrailers' ||
    phase === 'responseTrailers'
  );
}
