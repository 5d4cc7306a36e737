/**
 * Unpacking of the two official archive formats: tar (read as a stream, so a
 * 1.1 GB .tgz never sits in memory; gunzip through DecompressionStream) and
 * zip (central directory, deflate through fflate). Entry names are checked so
 * nothing lands outside the destination. `tarBytes` writes a tar for tests.
 *
 * @module
 */

import { inflateSync } from "fflate";

/** Rejects absolute paths and `..` components; returns the cleaned relative path. */
export function safeEntryPath(name: string, archive: string): string {
  const clean = name.replace(/^\.\/+/, "");
  if (clean.startsWith("/") || clean.split("/").some((p) => p === "..")) {
    throw new Error(
      `${archive}: entry ${JSON.stringify(name)} would be written outside the destination`,
    );
  }
  return clean;
}

async function ensureParent(path: string): Promise<void> {
  const i = path.lastIndexOf("/");
  if (i > 0) await Deno.mkdir(path.slice(0, i), { recursive: true });
}

/** Buffered exact reads over a byte stream. */
class ByteReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buf: Uint8Array = new Uint8Array(0);
  #pos = 0;
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }
  /** Up to `max` bytes (fewer only at the end of the stream; empty at the end). */
  async read(max: number): Promise<Uint8Array> {
    if (this.#pos >= this.#buf.length) {
      const { value, done } = await this.#reader.read();
      if (done) return new Uint8Array(0);
      this.#buf = value;
      this.#pos = 0;
    }
    const n = Math.min(max, this.#buf.length - this.#pos);
    const out = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }
  /** Exactly `n` bytes, or throws `eofError` if the stream ends first. */
  async exact(n: number, eofError: () => Error): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const part = await this.read(n - got);
      if (part.length === 0) throw eofError();
      out.set(part, got);
      got += part.length;
    }
    return out;
  }
}

const dec = new TextDecoder();
function field(h: Uint8Array, off: number, len: number): string {
  const s = h.subarray(off, off + len);
  const z = s.indexOf(0);
  return dec.decode(z >= 0 ? s.subarray(0, z) : s);
}
function octal(h: Uint8Array, off: number, len: number): number {
  if (h[off] & 0x80) { // GNU base-256 for sizes >= 8 GiB
    let v = 0;
    for (let i = 1; i < len; i++) v = v * 256 + h[off + i];
    return v;
  }
  const s = field(h, off, len).trim();
  return s === "" ? 0 : parseInt(s, 8);
}

/**
 * Extracts a tar stream (already decompressed) into `dest`; regular files and
 * directories only (links are skipped). Returns the number of files written.
 * `archive` names the source in errors.
 */
export async function extractTar(
  stream: ReadableStream<Uint8Array>,
  dest: string,
  archive: string,
): Promise<number> {
  const r = new ByteReader(stream);
  const truncated = () => new Error(`${archive}: truncated tar archive`);
  let files = 0;
  let longName: string | null = null;
  for (;;) {
    const first = await r.read(512);
    if (first.length === 0) break; // end of stream without the zero blocks: accept
    let h = first;
    if (first.length < 512) {
      h = new Uint8Array(512);
      h.set(first);
      h.set(await r.exact(512 - first.length, truncated), first.length);
    }
    if (h.every((b) => b === 0)) break;
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
    if (sum !== octal(h, 148, 8)) {
      throw new Error(`${archive}: corrupt tar header (checksum mismatch)`);
    }
    const size = octal(h, 124, 12);
    const type = String.fromCharCode(h[156] || 0x30);
    const prefix = dec.decode(h.subarray(257, 263)).startsWith("ustar") ? field(h, 345, 155) : "";
    let name = longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    longName = null;
    const padded = Math.ceil(size / 512) * 512;
    if (type === "L" || type === "x") { // GNU long name / pax header: the next entry's path
      const body = await r.exact(padded, truncated);
      const text = dec.decode(body.subarray(0, size));
      if (type === "L") longName = text.replace(/\0.*$/s, "");
      else {
        const m = text.match(/\d+ path=([^\n]*)\n/);
        if (m) longName = m[1];
      }
      continue;
    }
    name = safeEntryPath(name, archive);
    if (type === "5") {
      if (name) await Deno.mkdir(`${dest}/${name}`, { recursive: true });
      await r.exact(padded, truncated);
      continue;
    }
    if (type !== "0" && type !== "7") { // links, devices, global pax: skip the body
      await r.exact(padded, truncated);
      continue;
    }
    const path = `${dest}/${name}`;
    await ensureParent(path);
    const f = await Deno.open(path, { write: true, create: true, truncate: true });
    try {
      let left = size;
      while (left > 0) {
        const part = await r.read(Math.min(left, 1 << 20));
        if (part.length === 0) throw truncated();
        let w = 0;
        while (w < part.length) w += await f.write(part.subarray(w));
        left -= part.length;
      }
    } finally {
      f.close();
    }
    if (padded > size) await r.exact(padded - size, truncated);
    files++;
  }
  return files;
}

/** Extracts a gzipped tar file into `dest`. */
export async function extractTgz(path: string, dest: string): Promise<number> {
  const f = await Deno.open(path);
  const stream = f.readable.pipeThrough(new DecompressionStream("gzip"));
  try {
    return await extractTar(stream, dest, path);
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(msg.startsWith(path) ? msg : `${path}: cannot unpack (${msg})`);
  }
}

/** Extracts a zip file (stored or deflated entries) into `dest`; returns the number of files. */
export async function extractZip(path: string, dest: string): Promise<number> {
  const z = await Deno.readFile(path);
  const v = new DataView(z.buffer, z.byteOffset, z.byteLength);
  let eocd = -1;
  for (let i = z.length - 22; i >= Math.max(0, z.length - 22 - 65535); i--) {
    if (v.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${path}: not a zip archive (no end-of-central-directory record)`);
  const count = v.getUint16(eocd + 10, true);
  let p = v.getUint32(eocd + 16, true);
  let files = 0;
  for (let k = 0; k < count; k++) {
    if (p + 46 > z.length || v.getUint32(p, true) !== 0x02014b50) {
      throw new Error(`${path}: corrupt zip central directory`);
    }
    const method = v.getUint16(p + 10, true);
    const csize = v.getUint32(p + 20, true);
    const usize = v.getUint32(p + 24, true);
    const nlen = v.getUint16(p + 28, true),
      xlen = v.getUint16(p + 30, true),
      clen = v.getUint16(p + 32, true);
    const local = v.getUint32(p + 42, true);
    const name = safeEntryPath(dec.decode(z.subarray(p + 46, p + 46 + nlen)), path);
    p += 46 + nlen + xlen + clen;
    if (local + 30 > z.length || v.getUint32(local, true) !== 0x04034b50) {
      throw new Error(`${path}: corrupt zip entry ${name}`);
    }
    const dataOff = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
    if (dataOff + csize > z.length) throw new Error(`${path}: truncated zip entry ${name}`);
    if (name.endsWith("/")) {
      await Deno.mkdir(`${dest}/${name}`, { recursive: true });
      continue;
    }
    const raw = z.subarray(dataOff, dataOff + csize);
    let data: Uint8Array;
    if (method === 0) data = raw;
    else if (method === 8) {
      try {
        data = inflateSync(raw, { out: new Uint8Array(usize) });
      } catch (e) {
        throw new Error(`${path}: corrupt zip entry ${name} (${(e as Error).message})`);
      }
    } else {throw new Error(
        `${path}: zip entry ${name} uses unsupported compression method ${method}`,
      );}
    const out = `${dest}/${name}`;
    await ensureParent(out);
    await Deno.writeFile(out, data);
    files++;
  }
  return files;
}

/** Builds an uncompressed ustar archive of `files` (path, bytes); for tests and fixtures. */
export function tarBytes(files: [string, Uint8Array][]): Uint8Array<ArrayBuffer> {
  const te = new TextEncoder();
  const blocks: Uint8Array[] = [];
  for (const [name, data] of files) {
    const h = new Uint8Array(512);
    const put = (s: string, off: number) => h.set(te.encode(s), off);
    let nm = name, prefix = "";
    if (te.encode(nm).length > 100) {
      const cut = nm.lastIndexOf("/");
      prefix = nm.slice(0, cut);
      nm = nm.slice(cut + 1);
    }
    put(nm, 0);
    put("0000644\0", 100);
    put("0000000\0", 108);
    put("0000000\0", 116);
    put(data.length.toString(8).padStart(11, "0") + "\0", 124);
    put("00000000000\0", 136);
    put("        ", 148);
    h[156] = 0x30;
    put("ustar\0", 257);
    put("00", 263);
    put(prefix, 345);
    let sum = 0;
    for (const b of h) sum += b;
    put(sum.toString(8).padStart(6, "0") + "\0 ", 148);
    blocks.push(h, data, new Uint8Array((512 - (data.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((s, b) => s + b.length, 0));
  let o = 0;
  for (const b of blocks) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}
