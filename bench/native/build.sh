#!/usr/bin/env bash
# Builds the native benchmark servers and clients (TLS and DTLS), and heap_sites (what OpenSSL
# keeps per idle connection, by call site).
#   bash bench/native/build.sh [build-dir]   (default: bench/native/build/)
# Exits 3 when there is no C compiler or no OpenSSL development headers.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/build}"

cc="${CC:-}"
if [[ -z "$cc" ]]; then
  for candidate in cc gcc clang; do
    if command -v "$candidate" >/dev/null 2>&1; then cc="$candidate"; break; fi
  done
fi
if [[ -z "$cc" ]] || ! command -v "$cc" >/dev/null 2>&1; then
  echo "bench/native/build.sh: no C compiler found (install gcc or set CC)" >&2
  exit 3
fi
if ! printf '#include <openssl/ssl.h>\nint main(void){return OPENSSL_VERSION_NUMBER < 0x10101000L;}\n' \
  | "$cc" -x c - -o /dev/null -lssl -lcrypto >/dev/null 2>&1; then
  echo "bench/native/build.sh: OpenSSL >= 1.1.1 headers/libraries not found (install libssl-dev)" >&2
  exit 3
fi

mkdir -p "$out"
"$cc" -O2 -Wall -Wextra -o "$out/server" "$here/server.c" -lssl -lcrypto -pthread
"$cc" -O2 -Wall -Wextra -o "$out/client" "$here/client.c" -lssl -lcrypto
"$cc" -O2 -Wall -Wextra -o "$out/dtls_server" "$here/dtls_server.c" -lssl -lcrypto -pthread
"$cc" -O2 -Wall -Wextra -o "$out/dtls_client" "$here/dtls_client.c" -lssl -lcrypto
"$cc" -O2 -Wall -Wextra -o "$out/heap_sites" "$here/heap_sites.c" -lssl -lcrypto
echo "built $out/server $out/client $out/dtls_server $out/dtls_client $out/heap_sites"
