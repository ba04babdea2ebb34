export {
  createOriginalDestinationReader,
  getOriginalDestination,
  originalDestinationSupported,
} from './original-destination.js';
export type {
  OriginalDestination,
  OriginalDestinationLogger,
  OriginalDestinationReader,
  OriginalDestinationReaderOptions,
} from './original-destination.js';
