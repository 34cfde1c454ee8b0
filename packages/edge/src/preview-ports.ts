// Port mode: one listener per preview on the host address, from a range (HANGAR_PREVIEW_PORTS).
// The store holds which preview has which port (a unique column); this keeps the listeners of this
// server in step with it: opened at start and on every allocation, closed on deletion, and
// reconciled every few seconds (previews removed with their sandbox or on expiry, or by another
// server process sharing the store).

import { HangarError, type Logger, silentLogger } from "@hangar/common";
import type { FrontDoor } from "./front-door.js";

export interface PreviewPortRange {
  first: number;
  last: number;
}

export interface PreviewPortListenersOptions {
  /** Address the ports are bound on (the server's own). */
  host: string;
  range: PreviewPortRange;
  /** Every host port the store gives a preview. */
  listPorts: () => Promise<number[]>;
  logger?: Logger;
  intervalMs?: number;
}

/** "20000-20999" → { first, last }; a range of valid ports, first ≤ last. */
export function parsePortRange(text: string, what = "HANGAR_PREVIEW_PORTS"): PreviewPortRange {
  const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1 || last > 65_535 || first > last) throw new Error(`invalid ${what}: ${JSON.stringify(text)} (a port range such as "20000-20999")`);
  return { first, last };
}

export class PreviewPortListeners {
  readonly first: number;
  readonly last: number;
  private front: FrontDoor | null = null;
  private timer: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  private readonly log: Logger;
  /** Ports that failed to bind at the last sync (warned about once each). */
  private readonly failing = new Set<number>();
  /** When each port was last handed to a preview here (a sync that read the store before keeps it). */
  private readonly opened = new Map<number, number>();

  constructor(private readonly opts: PreviewPortListenersOptions) {
    this.first = opts.range.first;
    this.last = opts.range.last;
    this.log = opts.logger ?? silentLogger;
  }

  /** Connects the listeners to the front door, once it exists. */
  attach(front: FrontDoor): void {
    this.front = front;
  }

  open(port: number): Promise<void> {
    if (!this.front) return Promise.reject(new HangarError("not_configured", "preview ports are not served yet"));
    this.opened.set(port, performance.now());
    return this.front.openPort(port, this.opts.host);
  }

  close(port: number): void {
    this.opened.delete(port);
    this.front?.closePort(port);
  }

  /** Opens the store's ports this server does not serve yet, closes the ones no preview holds. */
  sync(): Promise<void> {
    this.syncing ??= this.reconcile().finally(() => (this.syncing = null));
    return this.syncing;
  }

  private async reconcile(): Promise<void> {
    const front = this.front;
    if (!front) return;
    // a port handed to a preview while the store is read (created meanwhile) is not closed
    const started = performance.now();
    const wanted = new Set(await this.opts.listPorts());
    for (const port of front.openPorts()) {
      if (!wanted.has(port) && (this.opened.get(port) ?? 0) < started) {
        this.opened.delete(port);
        front.closePort(port);
      }
    }
    for (const port of wanted) {
      if (front.openPorts().includes(port)) continue;
      try {
        await front.openPort(port, this.opts.host);
        if (this.failing.delete(port)) this.log.info({ port }, "preview port served again");
      } catch (e) {
        if (!this.failing.has(port)) this.log.warn({ err: e, port }, "a preview's port cannot be bound (retrying)");
        this.failing.add(port);
      }
    }
  }

  /** First sync, then one every few seconds. */
  async start(): Promise<void> {
    await this.sync();
    this.timer = setInterval(() => void this.sync().catch((e: unknown) => this.log.warn({ err: e }, "syncing preview ports failed")), this.opts.intervalMs ?? 2_000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
