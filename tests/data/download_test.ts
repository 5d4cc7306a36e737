import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { gzipSync, zipSync } from "fflate";
import { extractTar, safeEntryPath, tarBytes } from "../../src/data/archive.ts";
import { CUB_ARCHIVE, fetchDataset, resolveSpec, TIN_ARCHIVE } from "../../src/data/download.ts";
import { fetchCli } from "../../src/data/fetch_cli.ts";
import { loadCub } from "../../src/data/cub.ts";
import { FIXTURES } from "./_fixture_copy.ts";

async function filesUnder(root: string, prefix = ""): Promise<[string, Uint8Array][]> {
  const out: [string, Uint8Array][] = [];
  for await (const e of Deno.readDir(`${root}/${prefix}`)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await filesUnder(root, rel));
    else out.push([rel, await Deno.readFile(`${root}/${rel}`)]);
  }
  return out.sort((a, b) => a[0].localeCompare(b[0]));
}

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");

/** The fixture dataset packed the official way: zip for TIN, tar.gz for CUB. */
async function fixtureArchives(): Promise<{ zip: Uint8Array; tgz: Uint8Array }> {
  const tin = await filesUnder(FIXTURES, "tiny-imagenet-200");
  const zip = zipSync(Object.fromEntries(tin.map(([p, b]) => [p, b])), {
    level: 6,
    mtime: new Date(2020, 0, 1),
  });
  const cub = await filesUnder(FIXTURES, "CUB_200_2011");
  return { zip, tgz: gzipSync(tarBytes(cub)) };
}

interface Server {
  base: string;
  requests: { path: string; range: string | null }[];
  close: () => Promise<void>;
}

/** A loopback server: /tin.zip, /cub.tgz (Range-aware), /flaky.tgz (first response dies halfway), 404 otherwise. */
function serve(zip: Uint8Array, tgz: Uint8Array): Server {
  const requests: Server["requests"] = [];
  let flakyServed = false;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    const range = req.headers.get("range");
    requests.push({ path, range });
    const body = path === "/tin.zip"
      ? zip
      : path === "/cub.tgz" || path === "/flaky.tgz"
      ? tgz
      : null;
    if (!body) return new Response("not found", { status: 404 });
    if (path === "/flaky.tgz" && !flakyServed) {
      flakyServed = true;
      const half = body.subarray(0, body.length >> 1);
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(half);
          setTimeout(() => c.error(new Error("connection dropped")), 20);
        },
      });
      return new Response(stream, { headers: { "content-length": String(body.length) } });
    }
    const m = range?.match(/^bytes=(\d+)-$/);
    if (m) {
      const from = Number(m[1]);
      if (from >= body.length) return new Response(null, { status: 416 });
      return new Response(body.slice(from), {
        status: 206,
        headers: { "content-range": `bytes ${from}-${body.length - 1}/${body.length}` },
      });
    }
    return new Response(body.slice());
  });
  const addr = server.addr as Deno.NetAddr;
  return { base: `http://127.0.0.1:${addr.port}`, requests, close: () => server.shutdown() };
}

Deno.test("safeEntryPath() refuses archive entries that escape the destination", () => {
  assert.equal(safeEntryPath("./a/b.txt", "x.tar"), "a/b.txt");
  assert.throws(
    () => safeEntryPath("../etc/passwd", "x.tar"),
    /x\.tar: entry "\.\.\/etc\/passwd" would be written outside/,
  );
  assert.throws(() => safeEntryPath("/abs", "x.tar"), /outside/);
});

Deno.test("extractTar() round-trips files written by tarBytes(), including a name over 100 bytes", async () => {
  const dir = await Deno.makeTempDir();
  const long = `top/${"d".repeat(90)}/${"f".repeat(40)}.txt`;
  const files: [string, Uint8Array][] = [["top/a.txt", new TextEncoder().encode("hello")], [
    long,
    new Uint8Array(1000).fill(7),
  ]];
  const n = await extractTar(new Blob([tarBytes(files)]).stream(), dir, "t.tar");
  assert.equal(n, 2);
  assert.equal(await Deno.readTextFile(`${dir}/top/a.txt`), "hello");
  assert.deepEqual(await Deno.readFile(`${dir}/${long}`), files[1][1]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("data:tin downloads the fixture zip from a loopback server, verifies it, unpacks it and builds the cache", async () => {
  const { zip, tgz } = await fixtureArchives();
  const srv = serve(zip, tgz);
  const dir = await Deno.makeTempDir();
  try {
    const root = await fetchCli([
      "tin",
      "--data-dir",
      `${dir}/data`,
      "--cache-dir",
      `${dir}/cache`,
      "--url",
      `${srv.base}/tin.zip`,
      "--md5",
      md5(zip),
    ]);
    assert.equal(root, `${dir}/data/tiny-imagenet-200`);
    assert.deepEqual(await filesUnder(root), await filesUnder(`${FIXTURES}tiny-imagenet-200`));
    const caches = [...Deno.readDirSync(`${dir}/cache`)].map((e) => e.name).sort();
    assert.deepEqual(caches, [
      "tiny-imagenet-200-test.u8cache",
      "tiny-imagenet-200-train.u8cache",
      "tiny-imagenet-200-val.u8cache",
    ]);
    assert.deepEqual([...Deno.readDirSync(`${dir}/data`)].map((e) => e.name).sort(), [
      "tiny-imagenet-200",
      "tiny-imagenet-200.zip",
    ]);
  } finally {
    await srv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fetchDataset() resumes an interrupted CUB download with a Range request", async () => {
  const { zip, tgz } = await fixtureArchives();
  const srv = serve(zip, tgz);
  const dir = await Deno.makeTempDir();
  const spec = resolveSpec(CUB_ARCHIVE, { url: `${srv.base}/flaky.tgz`, md5: md5(tgz) });
  try {
    await assert.rejects(
      () => fetchDataset(spec, { dataDir: dir }),
      /download of .*flaky\.tgz interrupted .*rerun to resume/,
    );
    assert.ok(
      !(await Deno.stat(`${dir}/CUB_200_2011`).catch(() => null)),
      "no dataset folder after a failure",
    );
    const partSize = (await Deno.stat(`${dir}/CUB_200_2011.tgz.part`)).size;
    assert.equal(partSize, tgz.length >> 1);
    const root = await fetchDataset(spec, { dataDir: dir });
    assert.equal(srv.requests.at(-1)?.range, `bytes=${partSize}-`);
    const test = await loadCub("test", { root, cacheDir: null });
    assert.equal(test.count, 8);
  } finally {
    await srv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fetchDataset() fails with one clear error and leaves nothing on a checksum mismatch", async () => {
  const { zip, tgz } = await fixtureArchives();
  const srv = serve(zip, tgz);
  const dir = await Deno.makeTempDir();
  try {
    const spec = resolveSpec(TIN_ARCHIVE, { url: `${srv.base}/tin.zip`, md5: "0".repeat(32) });
    await assert.rejects(
      () => fetchDataset(spec, { dataDir: dir }),
      (e: Error) =>
        e.message.startsWith(
          `${dir}/tiny-imagenet-200.zip: checksum mismatch (md5 ${md5(zip)}, expected ${
            "0".repeat(32)
          })`,
        ),
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await srv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fetchDataset() reports an unreachable host and an HTTP 404 as one clear error each", async () => {
  const { zip, tgz } = await fixtureArchives();
  const srv = serve(zip, tgz);
  const dir = await Deno.makeTempDir();
  try {
    // Port 9 (discard) is closed on the loopback interface: connection refused, as when offline.
    const offline = resolveSpec(TIN_ARCHIVE, { url: "http://127.0.0.1:9/tiny-imagenet-200.zip" });
    await assert.rejects(
      () => fetchDataset(offline, { dataDir: dir }),
      /cannot download http:\/\/127\.0\.0\.1:9\/tiny-imagenet-200\.zip .*offline or host unreachable/,
    );
    const missing = resolveSpec(TIN_ARCHIVE, { url: `${srv.base}/nope.zip` });
    await assert.rejects(
      () => fetchDataset(missing, { dataDir: dir }),
      /cannot download .*nope\.zip: HTTP 404/,
    );
    assert.ok(!(await Deno.stat(`${dir}/tiny-imagenet-200`).catch(() => null)));
  } finally {
    await srv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fetchDataset() rejects an archive without the expected top folder and leaves no dataset", async () => {
  const bogus = zipSync({ "other/readme.txt": new TextEncoder().encode("hi") });
  const srv = serve(bogus, new Uint8Array(0));
  const dir = await Deno.makeTempDir();
  try {
    const spec = resolveSpec(TIN_ARCHIVE, { url: `${srv.base}/tin.zip`, md5: md5(bogus) });
    await assert.rejects(
      () => fetchDataset(spec, { dataDir: dir }),
      /tiny-imagenet-200\.zip: archive has no top folder tiny-imagenet-200\//,
    );
    const left = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(left, ["tiny-imagenet-200.zip"], "only the verified archive remains");
  } finally {
    await srv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("extractTgz() names the archive when the gzip stream is corrupt", async () => {
  const { extractTgz } = await import("../../src/data/archive.ts");
  const dir = await Deno.makeTempDir();
  try {
    const good = gzipSync(tarBytes([["a/b.txt", new Uint8Array(5000).fill(1)]]));
    const bad = good.slice(0, good.length >> 1);
    await Deno.writeFile(`${dir}/x.tgz`, bad);
    await assert.rejects(
      () => extractTgz(`${dir}/x.tgz`, `${dir}/out`),
      (e: Error) => e.message.startsWith(`${dir}/x.tgz: `),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
