/**
 * Visit photos: downscaled on the phone (longest side 1600 px, JPEG),
 * named by their SHA-256, stored sealed, referenced from the visit's
 * `photos` set as `{"id", "sha256"}`, and uploaded in resumable 512 KiB
 * chunks (`GET …/status`, then `PUT` with `Content-Range` from
 * `received_bytes`) whenever the phone has signal (docs/API.md).
 */

import { ApiError } from './api.ts';
import { sealBytes, sha256Hex, uuid } from './crypto.ts';
import type { Seedling } from './seedling.ts';
import { SeedlingError } from './types.ts';
import type { AttachmentStatusWire } from './wire.ts';

/** Chunk size on mobile data (docs/API.md). */
export const CHUNK_BYTES = 512 * 1024;
/** Longest side of a stored photo. */
export const MAX_SIDE_PX = 1600;

/** Browser downscale: createImageBitmap + OffscreenCanvas (or a canvas) → JPEG. Without them, the blob as it is. */
export async function defaultDownscale(blob: Blob): Promise<Blob> {
  const g = globalThis as unknown as {
    createImageBitmap?: (b: Blob) => Promise<ImageBitmap>;
    OffscreenCanvas?: typeof OffscreenCanvas;
    document?: Document;
  };
  if (!g.createImageBitmap) return blob;
  const bitmap = await g.createImageBitmap(blob);
  const scale = Math.min(1, MAX_SIDE_PX / Math.max(bitmap.width, bitmap.height));
  const w = Math.max(1, Math.round(bitmap.width * scale));
  const h = Math.max(1, Math.round(bitmap.height * scale));
  if (g.OffscreenCanvas) {
    const canvas = new g.OffscreenCanvas(w, h);
    canvas.getContext('2d')!.drawImage(bitmap, 0, 0, w, h);
    bitmap.close();
    return canvas.convertToBlob({ type: 'image/jpeg', quality: 0.85 });
  }
  if (!g.document) return blob;
  const canvas = g.document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  canvas.getContext('2d')!.drawImage(bitmap, 0, 0, w, h);
  bitmap.close();
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('canvas toBlob failed'))), 'image/jpeg', 0.85),
  );
}

/** The content type from the first bytes, when the blob does not say. */
export function sniffType(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return 'image/jpeg';
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'image/png';
  if (bytes[8] === 0x57 && bytes[9] === 0x45 && bytes[10] === 0x42 && bytes[11] === 0x50) return 'image/webp';
  return 'image/jpeg';
}

export async function addPhoto(s: Seedling, visitId: string, blob: Blob): Promise<{ id: string; sha256: string }> {
  const store = s.requireStore();
  const v = await s.visit(visitId);
  if (!v) throw new SeedlingError('not_found', '找不到该走访记录');
  if (v.review_status === 'approved') throw new SeedlingError('locked', '该走访记录已审核通过，不能再修改');
  const small = await s.opts.downscale(blob);
  const bytes = new Uint8Array(await small.arrayBuffer());
  const sha256 = await sha256Hex(bytes);
  const contentType = small.type && small.type.startsWith('image/') ? small.type : sniffType(bytes);
  const sealed = await sealBytes(store.key, bytes, `photo:${sha256}`);
  const existing = await s.db.photos.get(sha256);
  await s.db.photos.put({
    sha256,
    visit_id: visitId,
    content_type: contentType,
    size: bytes.length,
    state: existing?.state === 'complete' ? 'complete' : 'pending',
    body: sealed,
  });
  const ref = { id: uuid(), sha256 };
  await s.saveVisit(
    { id: v.id, child_id: v.child_id, kind: v.kind, visited_at: v.visited_at, photos: [...v.photos, ref] },
    { submit: false },
  );
  await s.refreshCounts();
  return ref;
}

export async function photoUrl(s: Seedling, sha256: string): Promise<string | null> {
  const row = await s.db.photos.get(sha256);
  if (!row) return null;
  const bytes = await s.decryptPhoto(row.body, sha256);
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: row.content_type }));
  s.objectUrls.add(url);
  return url;
}

/** Uploads every pending photo, resuming each from what the server holds. */
export async function uploadPhotos(s: Seedling): Promise<void> {
  const rows = await s.db.photos.where('state').equals('pending').toArray();
  for (const row of rows) {
    const path = `/api/v1/attachments/${row.sha256}`;
    const status = await s.api.json<AttachmentStatusWire>('GET', `${path}/status`);
    if (status.status === 'complete') {
      await s.db.photos.update(row.sha256, { state: 'complete' });
      continue;
    }
    const bytes = await s.decryptPhoto(row.body, row.sha256);
    const total = bytes.length;
    let at = Math.min(status.received_bytes, total);
    // Every byte arrived but the join did not happen (507): send the last chunk again.
    if (at >= total) at = Math.max(0, total - CHUNK_BYTES);
    for (;;) {
      const end = Math.min(at + CHUNK_BYTES, total);
      let res: Response;
      try {
        res = await s.api.request('PUT', path, {
          body: bytes.slice(at, end),
          headers: { 'content-type': row.content_type, 'content-range': `bytes ${at}-${end - 1}/${total}` },
        });
      } catch (e) {
        // A photo the server refuses (bad hash, type) must not stop the visits' sync.
        if (e instanceof ApiError && e.kind === 'fatal') {
          s.photoErrors.set(row.sha256, { code: e.code, message: e.message });
          break;
        }
        throw e;
      }
      const st = (await res.json()) as AttachmentStatusWire;
      if (st.status === 'complete') {
        await s.db.photos.update(row.sha256, { state: 'complete' });
        await s.refreshCounts();
        break;
      }
      if (st.received_bytes <= at) throw new ApiError('retryable', res.status, 'no_progress', 'the upload made no progress');
      at = st.received_bytes;
    }
  }
}
