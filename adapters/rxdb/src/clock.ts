/**
 * The device's hybrid logical clock (docs/SYNC-PROTOCOL.md §1): text
 * `WWWWWWWWWWWWWWW-CCCCCCCC-<device id, 32 hex>`, which compares in clock
 * order. `tick` stamps a local write; `observe` takes in a clock the server
 * sent, unless it runs more than 5 minutes ahead of this device's time
 * (a wrong clock elsewhere must not drag this one along).
 */

export const MAX_FORWARD_SKEW_MS = 5 * 60 * 1000;

interface Parts {
  wall: number;
  counter: number;
}

function parse(text: string): Parts | null {
  const m = /^(\d{15})-([0-9a-f]{8})-[0-9a-f]{32}$/.exec(text);
  return m ? { wall: Number(m[1]), counter: parseInt(m[2]!, 16) } : null;
}

export class Clock {
  private wall = 0;
  private counter = 0;
  private readonly node: string;

  constructor(
    deviceId: string,
    private readonly now: () => number = Date.now,
  ) {
    this.node = deviceId.replace(/-/g, '').toLowerCase();
  }

  /** The clock of a new local write: later than every clock made or observed. */
  tick(): string {
    const now = this.now();
    if (now > this.wall) {
      this.wall = now;
      this.counter = 0;
    } else {
      this.counter += 1;
    }
    return `${String(this.wall).padStart(15, '0')}-${this.counter.toString(16).padStart(8, '0')}-${this.node}`;
  }

  /** Takes in a clock from the server; false when it was ignored as too far ahead. */
  observe(text: string): boolean {
    const remote = parse(text);
    if (!remote) return false;
    if (remote.wall > this.now() + MAX_FORWARD_SKEW_MS) return false;
    if (remote.wall > this.wall || (remote.wall === this.wall && remote.counter > this.counter)) {
      this.wall = remote.wall;
      this.counter = remote.counter;
    }
    return true;
  }
}
