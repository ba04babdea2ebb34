/** OpenTelemetry HTTP semantic-convention names and advised values used by this package. */

export const ATTR_HTTP_REQUEST_METHOD = 'http.request.method';
export const ATTR_HTTP_ROUTE = 'http.route';
export const ATTR_HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
export const ATTR_SERVER_ADDRESS = 'server.address';
export const ATTR_ERROR_TYPE = 'error.type';
export const ATTR_OTEL_METRIC_OVERFLOW = 'otel.metric.overflow';
/** Mesh attributes (not semconv): which side of the sidecar the exchange crossed, and who called. */
export const ATTR_MESH_DIRECTION = 'httpmesh.direction';
export const ATTR_MESH_SOURCE_SERVICE = 'httpmesh.source.service';

/** Advised explicit bucket boundaries (seconds) for http.*.request.duration. */
export const DURATION_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
]);

/** Semconv advises no body-size buckets; powers of four from 64 B to 16 MiB keep the series small. */
export const BODY_SIZE_BUCKETS_BYTES: readonly number[] = Object.freeze([
  0, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
]);

/** Methods semconv knows; anything else (including other casings) is reported as `_OTHER`. */
export const KNOWN_METHODS: readonly string[] = Object.freeze([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
]);
export const OTHER_METHOD = '_OTHER';
export const OTHER_ERROR_TYPE = '_OTHER';

export type Direction = 'inbound' | 'outbound';

export interface InstrumentNames {
  readonly duration: string;
  readonly requestBodySize: string;
  readonly responseBodySize: string;
  readonly activeRequests: string;
}

/** Inbound exchanges are the server side of the mesh service, outbound ones the client side. */
export const INSTRUMENTS: Readonly<Record<Direction, InstrumentNames>> = Object.freeze({
  inbound: Object.freeze({
    duration: 'http.server.request.duration',
    requestBodySize: 'http.server.request.body.size',
    responseBodySize: 'http.server.response.body.size',
    activeRequests: 'http.server.active_requests',
  }),
  outbound: Object.freeze({
    duration: 'http.client.request.duration',
    requestBodySize: 'http.client.request.body.size',
    responseBodySize: 'http.client.response.body.size',
    activeRequests: 'http.client.active_requests',
  }),
});
