// The engine loads only undici's Agent and connector, not its index (which also loads fetch, WebSocket,
// the cache and mocks: ~9 MB more resident memory). undici 7 has no exports map, so the files are importable
// by path; their types are the index's.
declare module 'undici/lib/dispatcher/agent.js' {
  import type { Agent } from 'undici';
  const AgentClass: typeof Agent;
  export default AgentClass;
}

declare module 'undici/lib/core/connect.js' {
  import type { buildConnector } from 'undici';
  const build: typeof buildConnector;
  export default build;
}
