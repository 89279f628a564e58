/**
 * Hybrid logical clocks exactly as `sync_core::clock`: the text form
 * `{wall_ms:015}-{counter:08x}-{node:32 hex}`, which sorts like the clock,
 * `tick` for a local write and `observe` for a received clock, which
 * refuses to adopt one more than `maxForwardSkewMs` (default 5 minutes)
 * ahead of the phone's wall time. Time is passed in, never read.
 */

/** Default bound on how far a remote clock may run ahead: 5 minutes. */
export const DEFAULT_MAX_FORWARD_SKEW_MS = 5 * 60 * 1000;
/** Largest wall time that fits the 15-digit text form. */
export const MAX_WALL_MS = 999_999_999_999_999;
const MAX_COUNTER = 0xffff_ffff;

export interface Hlc {
  wallMs: number;
  counter: number;
  /** 32 lowercase hex digits (a UUID without dashes). */
  node: string;
}

const NIL_NODE = '0'.repeat(32);
export const HLC_ZERO: Hlc = { wallMs: 0, counter: 0, node: NIL_NODE };

/** A UUID in any common form as the 32 lowercase hex digits of a node. */
export function nodeOf(uuid: string): string {
  const hex = uuid.replace(/-/g, '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new Error(`not a UUID: ${uuid}`);
  return hex;
}

export function formatHlc(h: Hlc): string {
  return `${String(h.wallMs).padStart(15, '0')}-${h.counter.toString(16).padStart(8, '0')}-${h.node}`;
}

/** Parses the text form; throws on anything sync-core would refuse. */
export function parseHlc(text: string): Hlc {
  const m = /^([0-9]{15})-([0-9a-f]{8})-([0-9a-f]{32})$/.exec(text);
  if (!m) throw new Error(`invalid clock: ${JSON.stringify(text)}`);
  return { wallMs: Number(m[1]), counter: parseInt(m[2]!, 16), node: m[3]! };
}

export function tryParseHlc(text: string): Hlc | null {
  try {
    return parseHlc(text);
  } catch {
    return null;
  }
}

/** Orders by wall time, counter, then node: -1, 0 or 1. */
export function compareHlc(a: Hlc, b: Hlc): number {
  if (a.wallMs !== b.wallMs) return a.wallMs < b.wallMs ? -1 : 1;
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
  if (a.node !== b.node) return a.node < b.node ? -1 : 1;
  return 0;
}

export interface Observed {
  local: Hlc;
  skewed: boolean;
}

/** The clock state of one device (`sync_core::clock::HlcClock`). */
export class HlcClock {
  private lastValue: Hlc;
  readonly maxForwardSkewMs: number;

  constructor(node: string, maxForwardSkewMs = DEFAULT_MAX_FORWARD_SKEW_MS, last?: Hlc) {
    this.lastValue = last ?? { wallMs: 0, counter: 0, node: nodeOf(node) };
    this.maxForwardSkewMs = maxForwardSkewMs;
  }

  /** Restores a clock from its last issued value. */
  static resume(last: Hlc, maxForwardSkewMs = DEFAULT_MAX_FORWARD_SKEW_MS): HlcClock {
    return new HlcClock(last.node, maxForwardSkewMs, last);
  }

  last(): Hlc {
    return this.lastValue;
  }

  /** A new clock for a local write at `nowMs`, greater than all before. */
  tick(nowMs: number): Hlc {
    const now = Math.min(Math.max(0, Math.floor(nowMs)), MAX_WALL_MS);
    this.lastValue =
      now > this.lastValue.wallMs
        ? { wallMs: now, counter: 0, node: this.lastValue.node }
        : this.bump(this.lastValue.wallMs, this.lastValue.counter);
    return this.lastValue;
  }

  /** Receives a remote clock at `nowMs`; one beyond the skew bound is not adopted. */
  observe(remote: Hlc, nowMs: number): Observed {
    const now = Math.min(Math.max(0, Math.floor(nowMs)), MAX_WALL_MS);
    if (remote.wallMs > now + this.maxForwardSkewMs) {
      return { local: this.tick(now), skewed: true };
    }
    const last = this.lastValue;
    const wall = Math.max(now, last.wallMs, remote.wallMs);
    const isLast = wall === last.wallMs;
    const isRemote = wall === remote.wallMs;
    let counter: number | null;
    if (isLast && isRemote) counter = Math.max(last.counter, remote.counter);
    else if (isLast) counter = last.counter;
    else if (isRemote) counter = remote.counter;
    else counter = null;
    this.lastValue = counter === null ? { wallMs: wall, counter: 0, node: last.node } : this.bump(wall, counter);
    return { local: this.lastValue, skewed: false };
  }

  private bump(wall: number, counter: number): Hlc {
    return counter < MAX_COUNTER
      ? { wallMs: wall, counter: counter + 1, node: this.lastValue.node }
      : { wallMs: wall + 1, counter: 0, node: this.lastValue.node };
  }
}
