/** Minimal logging sink; defaults to console with a `rule-sync:` prefix. */
export interface RuleSyncLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const consoleLogger: RuleSyncLogger = {
  info: (message) => console.info(`rule-sync: ${message}`),
  warn: (message) => console.warn(`rule-sync: ${message}`),
  error: (message) => console.error(`rule-sync: ${message}`),
};
