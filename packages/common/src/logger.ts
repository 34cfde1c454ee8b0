import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/** A structured JSON logger (pino) on stderr-compatible stdout, one per process. */
export function createLogger(level: LevelWithSilent | string = "info", name = "hangar"): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}

/** A logger that drops everything; for library code used outside a server. */
export const silentLogger: Logger = pino({ level: "silent" });
