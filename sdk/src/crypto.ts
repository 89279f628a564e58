/**
 * At-rest encryption with WebCrypto only (`crypto.subtle`, present in
 * Android WebViews and Node 20).
 *
 * * A random 256-bit AES-GCM **data key** encrypts every record body, every
 *   outbox mutation and every photo. It lives in memory while unlocked.
 * * It is stored only **wrapped** (AES-GCM key wrap): (a) by a key derived
 *   from the director's PIN with PBKDF2-SHA256 (random 16-byte salt, at
 *   least 200 000 iterations), and (b) by the server's `device_key`, which
 *   is returned only on a password sign-in and never stored here — so a
 *   forgotten PIN is recovered by signing in again, and someone holding the
 *   phone without PIN or password reads nothing.
 * * Each sealed value carries a fresh 12-byte IV and is bound to its row by
 *   additional data (the row key), so a ciphertext moved to another row
 *   does not decrypt.
 */

const subtle = (): SubtleCrypto => {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new Error('WebCrypto (crypto.subtle) is not available; a secure context (https) is needed');
  return s;
};

/** PBKDF2 iterations never go below this. */
export const MIN_PIN_ITERATIONS = 200_000;
export const DEFAULT_PIN_ITERATIONS = 310_000;

/** An encrypted value as stored: IV and ciphertext. */
export interface Sealed {
  iv: Uint8Array;
  ct: ArrayBuffer;
}

/** A data key wrapped by another key. */
export interface WrappedKey {
  iv: Uint8Array;
  wrapped: ArrayBuffer;
}

export interface PinWrap extends WrappedKey {
  salt: Uint8Array;
  iterations: number;
}

export function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(new ArrayBuffer(n));
  globalThis.crypto.getRandomValues(out);
  return out;
}

export async function newDataKey(): Promise<CryptoKey> {
  return subtle().generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']);
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export async function sealBytes(key: CryptoKey, bytes: Uint8Array, aad: string): Promise<Sealed> {
  const iv = randomBytes(12);
  const ct = await subtle().encrypt({ name: 'AES-GCM', iv, additionalData: enc.encode(aad) }, key, bytes as Uint8Array<ArrayBuffer>);
  return { iv, ct };
}

export async function openBytes(key: CryptoKey, sealed: Sealed, aad: string): Promise<Uint8Array> {
  const plain = await subtle().decrypt(
    { name: 'AES-GCM', iv: sealed.iv as Uint8Array<ArrayBuffer>, additionalData: enc.encode(aad) },
    key,
    sealed.ct,
  );
  return new Uint8Array(plain);
}

export async function seal(key: CryptoKey, value: unknown, aad: string): Promise<Sealed> {
  return sealBytes(key, enc.encode(JSON.stringify(value)), aad);
}

export async function open<T>(key: CryptoKey, sealed: Sealed, aad: string): Promise<T> {
  return JSON.parse(dec.decode(await openBytes(key, sealed, aad))) as T;
}

async function pinKey(pin: string, salt: Uint8Array, iterations: number): Promise<CryptoKey> {
  const material = await subtle().importKey('raw', enc.encode(pin), 'PBKDF2', false, ['deriveKey']);
  return subtle().deriveKey(
    { name: 'PBKDF2', hash: 'SHA-256', salt: salt as Uint8Array<ArrayBuffer>, iterations },
    material,
    { name: 'AES-GCM', length: 256 },
    false,
    ['wrapKey', 'unwrapKey'],
  );
}

async function wrapWith(dataKey: CryptoKey, wrappingKey: CryptoKey): Promise<WrappedKey> {
  const iv = randomBytes(12);
  const wrapped = await subtle().wrapKey('raw', dataKey, wrappingKey, { name: 'AES-GCM', iv });
  return { iv, wrapped };
}

async function unwrapWith(w: WrappedKey, wrappingKey: CryptoKey): Promise<CryptoKey | null> {
  try {
    return await subtle().unwrapKey(
      'raw',
      w.wrapped,
      wrappingKey,
      { name: 'AES-GCM', iv: w.iv as Uint8Array<ArrayBuffer> },
      { name: 'AES-GCM', length: 256 },
      true,
      ['encrypt', 'decrypt'],
    );
  } catch {
    return null;
  }
}

export async function wrapWithPin(dataKey: CryptoKey, pin: string, iterations: number): Promise<PinWrap> {
  const n = Math.max(iterations, MIN_PIN_ITERATIONS);
  const salt = randomBytes(16);
  return { salt, iterations: n, ...(await wrapWith(dataKey, await pinKey(pin, salt, n))) };
}

/** The data key, or null for a wrong PIN. */
export async function unwrapWithPin(w: PinWrap, pin: string): Promise<CryptoKey | null> {
  return unwrapWith(w, await pinKey(pin, w.salt, w.iterations));
}

function deviceWrappingKey(deviceKeyB64: string): Promise<CryptoKey> {
  const raw = base64ToBytes(deviceKeyB64);
  if (raw.length !== 32) throw new Error('device_key is not 32 bytes');
  return subtle().importKey('raw', raw, { name: 'AES-GCM' }, false, ['wrapKey', 'unwrapKey']);
}

export async function wrapWithDeviceKey(dataKey: CryptoKey, deviceKeyB64: string): Promise<WrappedKey> {
  return wrapWith(dataKey, await deviceWrappingKey(deviceKeyB64));
}

export async function unwrapWithDeviceKey(w: WrappedKey, deviceKeyB64: string): Promise<CryptoKey | null> {
  return unwrapWith(w, await deviceWrappingKey(deviceKeyB64));
}

export function base64ToBytes(b64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(b64);
  const out = new Uint8Array(new ArrayBuffer(bin.length));
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await subtle().digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** A random (v4) UUID: `crypto.randomUUID` where the WebView has it (Chrome 92+), else from `getRandomValues`. */
export function uuid(): string {
  const c = globalThis.crypto as Crypto & { randomUUID?: () => string };
  if (typeof c.randomUUID === 'function') return c.randomUUID();
  const b = randomBytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
