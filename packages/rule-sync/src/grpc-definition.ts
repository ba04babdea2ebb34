import type { ServiceDefinition } from '@grpc/grpc-js';
import { ControlMessage, SidecarMessage } from './gen/httpmesh/rulesync/v1/rule_sync.js';

/**
 * grpc-js service definition built from the ts-proto codecs. The server uses grpc-js directly (not
 * nice-grpc's server) because the mTLS identity check needs the call's peer certificate
 * (`call.getAuthContext()`), which nice-grpc's CallContext does not expose.
 */
export const ruleSyncGrpcDefinition: ServiceDefinition = {
  stream: {
    path: '/httpmesh.rulesync.v1.RuleSync/Stream',
    requestStream: true,
    responseStream: true,
    requestSerialize: (message: SidecarMessage) => Buffer.from(SidecarMessage.encode(message).finish()),
    requestDeserialize: (bytes: Buffer) => SidecarMessage.decode(bytes),
    responseSerialize: (message: ControlMessage) => Buffer.from(ControlMessage.encode(message).finish()),
    responseDeserialize: (bytes: Buffer) => ControlMessage.decode(bytes),
    originalName: 'stream',
  },
};
