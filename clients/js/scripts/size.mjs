// Prints the SDK's size: as built, minified (terser, pinned in tests/tools/node) and gzipped.
//   PUSHCLUSTER_NODE_MODULES=~/.cache/pushcluster/tools/node/node_modules node clients/js/scripts/size.mjs
// Output: one JSON line {"raw":…,"min":…,"gzip":…} (bytes).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { gzipSync } from "node:zlib";

const modules = process.env.PUSHCLUSTER_NODE_MODULES;
if (!modules) throw new Error("set PUSHCLUSTER_NODE_MODULES to the node_modules of `make tools`");
const { minify } = createRequire(`${modules}/`)("terser");
const source = readFileSync(new URL("../dist/pushcluster.js", import.meta.url), "utf8");
const { code } = await minify(source, { module: true, compress: { passes: 2 }, mangle: true });
const gzip = gzipSync(code, { level: 9 }).length;
console.log(JSON.stringify({ raw: Buffer.byteLength(source), min: Buffer.byteLength(code), gzip }));
