/**
 * The one entry point from `src/` into `ffi/`: the loader, the constants, the callback
 * signatures and the contract types. Nothing above `ffi/` imports another file of it.
 *
 * @module
 */
export { backend } from "./backend.ts";
export { libraryCandidates, loadOpenSsl, loadOpenSslWith } from "./library.ts";
export type { LoadFailure, LoadResult, OpenSsl } from "./library.ts";
export { cString, sizeT } from "./macros.ts";
export { nativeHeapInUse } from "./heap.ts";
export { ERRNO, loadSockets } from "./sockets.ts";
export type { Poller, SocketAddress, SocketOption, Sockets } from "./sockets.ts";
export * from "./constants.ts";
export * from "./callback_signatures.ts";
export type { Backend, CallbackDef, NativeCallback, Pointer } from "./types.ts";
