// Timers that stop counting while the sandbox is frozen (standby), so a process timeout measures the
// time the sandbox actually ran.

export class PausableTimer {
  private handle: NodeJS.Timeout | null = null;
  private remaining: number;
  private startedAt = 0;
  private fired = false;
  private cancelled = false;

  constructor(
    delayMs: number,
    private readonly callback: () => void,
    paused = false,
  ) {
    this.remaining = Math.max(0, delayMs);
    if (!paused) this.arm();
  }

  private arm(): void {
    this.startedAt = Date.now();
    this.handle = setTimeout(() => {
      this.handle = null;
      this.fired = true;
      this.callback();
    }, this.remaining);
    this.handle.unref?.();
  }

  get expired(): boolean {
    return this.fired;
  }

  /** Milliseconds left before the callback runs. */
  get left(): number {
    if (this.fired || this.cancelled) return 0;
    if (!this.handle) return this.remaining;
    return Math.max(0, this.remaining - (Date.now() - this.startedAt));
  }

  pause(): void {
    if (!this.handle) return;
    clearTimeout(this.handle);
    this.handle = null;
    this.remaining = Math.max(0, this.remaining - (Date.now() - this.startedAt));
  }

  resume(): void {
    if (this.handle || this.fired || this.cancelled) return;
    this.arm();
  }

  cancel(): void {
    this.cancelled = true;
    if (this.handle) clearTimeout(this.handle);
    this.handle = null;
  }
}

/** Resolves after `ms` (for polling loops); rejects never. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
