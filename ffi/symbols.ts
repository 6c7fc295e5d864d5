/**
 * The runtime-neutral symbol table: every C function this library calls, with its C prototype
 * beside it. Types are the neutral {@link NativeType}s of `types.ts`; each backend maps them to its
 * own FFI vocabulary.
 *
 * Rules kept here:
 * - Hot-path results are declared `i32` where C returns `int` (64-bit results allocate a bigint
 *   on both runtimes before we turn them into numbers).
 * - `unsigned long` and `long` are 64-bit on LP64 (Linux, macOS); on Windows they are 32-bit and
 *   these declarations would be wrong (Windows is documented as untested).
 * - Entries ending in `_buf` are aliases that take a byte buffer where C takes `void *`.
 *
 * @module
 */
import type { FunctionDef, NativeType, Pointer, SymbolTable } from "./types.ts";

/** Functions exported by libcrypto. */
export const cryptoSymbols = {
  // unsigned long OpenSSL_version_num(void);
  OpenSSL_version_num: { args: [], ret: "u64" },
  // const char *OpenSSL_version(int t);
  OpenSSL_version: { args: ["i32"], ret: "ptr" },
  // int OPENSSL_init_crypto(uint64_t opts, const OPENSSL_INIT_SETTINGS *settings);
  OPENSSL_init_crypto: { args: ["u64", "ptr"], ret: "i32" },

  // unsigned long ERR_get_error(void);
  ERR_get_error: { args: [], ret: "u64" },
  // void ERR_clear_error(void);
  ERR_clear_error: { args: [], ret: "void" },
  // unsigned long ERR_peek_error(void); read as u32: error codes are 32-bit (ERR_PACK packs the
  // library into bits 23-30 and ERR_SYSTEM_FLAG is bit 31), and only "zero or not" is asked.
  ERR_peek_error: { args: [], ret: "u32" },
  // void ERR_error_string_n(unsigned long e, char *buf, size_t len);
  ERR_error_string_n: { args: ["u64", "buf", "usize"], ret: "void" },
  // const char *ERR_lib_error_string(unsigned long e);
  ERR_lib_error_string: { args: ["u64"], ret: "ptr" },
  // const char *ERR_reason_error_string(unsigned long e);
  ERR_reason_error_string: { args: ["u64"], ret: "ptr" },

  // const BIO_METHOD *BIO_s_mem(void);
  BIO_s_mem: { args: [], ret: "ptr" },
  // BIO *BIO_new(const BIO_METHOD *type);
  BIO_new: { args: ["ptr"], ret: "ptr" },
  // int BIO_free(BIO *a);
  BIO_free: { args: ["ptr"], ret: "i32" },
  // BIO *BIO_new_mem_buf(const void *buf, int len);  (read-only, over the caller's bytes: no copy)
  BIO_new_mem_buf: { args: ["buf", "i32"], ret: "ptr" },
  // int BIO_read(BIO *b, void *data, int dlen);
  BIO_read: { args: ["ptr", "buf", "i32"], ret: "i32" },
  // int BIO_write(BIO *b, const void *data, int dlen);
  BIO_write: { args: ["ptr", "buf", "i32"], ret: "i32" },
  // long BIO_ctrl(BIO *bp, int cmd, long larg, void *parg);
  BIO_ctrl: { args: ["ptr", "i32", "i64", "ptr"], ret: "i64" },
  // long BIO_ctrl(BIO *bp, int cmd, long larg, void *parg);  (parg as bytes, e.g. the char **
  // out-cell of BIO_get_mem_data)
  BIO_ctrl_buf: { symbol: "BIO_ctrl", args: ["ptr", "i32", "i64", "buf"], ret: "i64" },
  // BIO_ADDR *BIO_ADDR_new(void);  (DTLSv1_listen's out-parameter)
  BIO_ADDR_new: { args: [], ret: "ptr" },
  // void BIO_ADDR_free(BIO_ADDR *ap);
  BIO_ADDR_free: { args: ["ptr"], ret: "void" },
  // size_t BIO_ctrl_pending(BIO *b);  (declared i32: memory BIO contents stay far below 2 GiB)
  BIO_ctrl_pending: { args: ["ptr"], ret: "i32" },

  // X509 *PEM_read_bio_X509(BIO *bp, X509 **x, pem_password_cb *cb, void *u);
  PEM_read_bio_X509: { args: ["ptr", "ptr", "ptr", "ptr"], ret: "ptr" },
  // EVP_PKEY *PEM_read_bio_PrivateKey(BIO *bp, EVP_PKEY **x, pem_password_cb *cb, void *u);
  // With cb NULL, u is the NUL-terminated passphrase (never a terminal prompt when u != NULL).
  PEM_read_bio_PrivateKey_buf: {
    symbol: "PEM_read_bio_PrivateKey",
    args: ["ptr", "ptr", "ptr", "buf"],
    ret: "ptr",
  },
  // The same, with a pem_password_cb (the passphrase as a JS function).
  PEM_read_bio_PrivateKey_cb: {
    symbol: "PEM_read_bio_PrivateKey",
    args: ["ptr", "ptr", "cb", "ptr"],
    ret: "ptr",
  },
  // X509 *d2i_X509_bio(BIO *bp, X509 **x509);
  d2i_X509_bio: { args: ["ptr", "ptr"], ret: "ptr" },
  // EVP_PKEY *d2i_PrivateKey_bio(BIO *bp, EVP_PKEY **a);
  d2i_PrivateKey_bio: { args: ["ptr", "ptr"], ret: "ptr" },
  // int i2d_X509_bio(BIO *bp, const X509 *x509);
  i2d_X509_bio: { args: ["ptr", "ptr"], ret: "i32" },
  // void X509_free(X509 *a);
  X509_free: { args: ["ptr"], ret: "void" },
  // int X509_check_issued(X509 *issuer, X509 *subject);  (X509_V_OK when issuer issued subject)
  X509_check_issued: { args: ["ptr", "ptr"], ret: "i32" },
  // X509_NAME *X509_get_subject_name(const X509 *x);
  X509_get_subject_name: { args: ["ptr"], ret: "ptr" },
  // X509_NAME *X509_get_issuer_name(const X509 *x);
  X509_get_issuer_name: { args: ["ptr"], ret: "ptr" },
  // int X509_NAME_print_ex(BIO *out, const X509_NAME *nm, int indent, unsigned long flags);
  X509_NAME_print_ex: { args: ["ptr", "ptr", "i32", "u64"], ret: "i32" },
  // int i2d_X509_NAME(const X509_NAME *a, unsigned char **out);  (out NULL: the length only)
  i2d_X509_NAME: { args: ["ptr", "ptr"], ret: "i32" },
  // int i2d_X509_NAME(const X509_NAME *a, unsigned char **out);  (out: a pointer to a buffer
  // pointer, advanced past the bytes written)
  i2d_X509_NAME_buf: { symbol: "i2d_X509_NAME", args: ["ptr", "buf"], ret: "i32" },
  // ASN1_INTEGER *X509_get_serialNumber(X509 *x);  (borrowed)
  X509_get_serialNumber: { args: ["ptr"], ret: "ptr" },
  // BIGNUM *ASN1_INTEGER_to_BN(const ASN1_INTEGER *ai, BIGNUM *bn);
  ASN1_INTEGER_to_BN: { args: ["ptr", "ptr"], ret: "ptr" },
  // char *BN_bn2hex(const BIGNUM *a);  (free with OPENSSL_free)
  BN_bn2hex: { args: ["ptr"], ret: "ptr" },
  // void BN_free(BIGNUM *a);
  BN_free: { args: ["ptr"], ret: "void" },
  // const ASN1_TIME *X509_get0_notBefore(const X509 *x);  (borrowed)
  X509_get0_notBefore: { args: ["ptr"], ret: "ptr" },
  // const ASN1_TIME *X509_get0_notAfter(const X509 *x);  (borrowed)
  X509_get0_notAfter: { args: ["ptr"], ret: "ptr" },
  // int ASN1_TIME_to_tm(const ASN1_TIME *s, struct tm *tm);  (tm: 56 bytes on LP64 glibc)
  ASN1_TIME_to_tm: { args: ["ptr", "buf"], ret: "i32" },
  // const EVP_MD *EVP_sha256(void);
  EVP_sha256: { args: [], ret: "ptr" },
  // int X509_digest(const X509 *data, const EVP_MD *type, unsigned char *md, unsigned int *len);
  X509_digest: { args: ["ptr", "ptr", "buf", "buf"], ret: "i32" },
  // void *X509_get_ext_d2i(const X509 *x, int nid, int *crit, int *idx);  (a new object)
  X509_get_ext_d2i: { args: ["ptr", "i32", "ptr", "ptr"], ret: "ptr" },
  // void GENERAL_NAMES_free(GENERAL_NAMES *a);
  GENERAL_NAMES_free: { args: ["ptr"], ret: "void" },
  // const unsigned char *ASN1_STRING_get0_data(const ASN1_STRING *x);
  ASN1_STRING_get0_data: { args: ["ptr"], ret: "ptr" },
  // int ASN1_STRING_length(const ASN1_STRING *x);
  ASN1_STRING_length: { args: ["ptr"], ret: "i32" },
  // void EVP_PKEY_free(EVP_PKEY *pkey);
  EVP_PKEY_free: { args: ["ptr"], ret: "void" },

  // int X509_STORE_add_cert(X509_STORE *ctx, X509 *x);  (takes its own reference)
  X509_STORE_add_cert: { args: ["ptr", "ptr"], ret: "i32" },
  // void *X509_STORE_CTX_get_ex_data(const X509_STORE_CTX *ctx, int idx);
  X509_STORE_CTX_get_ex_data: { args: ["ptr", "i32"], ret: "ptr" },
  // int X509_STORE_CTX_get_error(const X509_STORE_CTX *ctx);
  X509_STORE_CTX_get_error: { args: ["ptr"], ret: "i32" },
  // void X509_STORE_CTX_set_error(X509_STORE_CTX *ctx, int s);
  X509_STORE_CTX_set_error: { args: ["ptr", "i32"], ret: "void" },
  // int X509_STORE_CTX_get_error_depth(const X509_STORE_CTX *ctx);
  X509_STORE_CTX_get_error_depth: { args: ["ptr"], ret: "i32" },
  // X509 *X509_STORE_CTX_get_current_cert(const X509_STORE_CTX *ctx);
  X509_STORE_CTX_get_current_cert: { args: ["ptr"], ret: "ptr" },
  // const char *X509_verify_cert_error_string(long n);
  X509_verify_cert_error_string: { args: ["i64"], ret: "ptr" },
  // int X509_VERIFY_PARAM_set1_ip_asc(X509_VERIFY_PARAM *param, const char *ipasc);
  X509_VERIFY_PARAM_set1_ip_asc: { args: ["ptr", "buf"], ret: "i32" },

  // void *CRYPTO_malloc(size_t num, const char *file, int line);
  CRYPTO_malloc: { args: ["usize", "ptr", "i32"], ret: "ptr" },
  // void CRYPTO_free(void *str, const char *file, int line);
  CRYPTO_free: { args: ["ptr", "ptr", "i32"], ret: "void" },

  // OPENSSL_STACK *OPENSSL_sk_new(OPENSSL_sk_compfunc cmp);
  OPENSSL_sk_new: { args: ["cb"], ret: "ptr" },
  // X509_STORE *X509_STORE_new(void);
  X509_STORE_new: { args: [], ret: "ptr" },
  // void X509_STORE_free(X509_STORE *v);
  X509_STORE_free: { args: ["ptr"], ret: "void" },
  // int X509_STORE_set_flags(X509_STORE *ctx, unsigned long flags);
  X509_STORE_set_flags: { args: ["ptr", "u64"], ret: "i32" },
  // int X509_get_ext_by_NID(const X509 *x, int nid, int lastpos);
  X509_get_ext_by_NID: { args: ["ptr", "i32", "i32"], ret: "i32" },
  // X509_EXTENSION *X509_get_ext(const X509 *x, int loc);  (borrowed)
  X509_get_ext: { args: ["ptr", "i32"], ret: "ptr" },
  // ASN1_OCTET_STRING *X509_EXTENSION_get_data(X509_EXTENSION *ne);  (borrowed)
  X509_EXTENSION_get_data: { args: ["ptr"], ret: "ptr" },
  // STACK_OF(OPENSSL_STRING) *X509_get1_ocsp(X509 *x);  (free with X509_email_free)
  X509_get1_ocsp: { args: ["ptr"], ret: "ptr" },
  // void X509_email_free(STACK_OF(OPENSSL_STRING) *sk);
  X509_email_free: { args: ["ptr"], ret: "void" },

  // ---- Revocation (CRLs) and PKCS#12 (src/handshake/revocation.ts, src/x509/pkcs12.ts) ----
  // X509_CRL *PEM_read_bio_X509_CRL(BIO *bp, X509_CRL **x, pem_password_cb *cb, void *u);
  PEM_read_bio_X509_CRL: { args: ["ptr", "ptr", "ptr", "ptr"], ret: "ptr" },
  // X509_CRL *d2i_X509_CRL_bio(BIO *bp, X509_CRL **crl);
  d2i_X509_CRL_bio: { args: ["ptr", "ptr"], ret: "ptr" },
  // void X509_CRL_free(X509_CRL *a);
  X509_CRL_free: { args: ["ptr"], ret: "void" },
  // int X509_STORE_add_crl(X509_STORE *ctx, X509_CRL *x);  (takes its own reference)
  X509_STORE_add_crl: { args: ["ptr", "ptr"], ret: "i32" },
  // int X509_VERIFY_PARAM_set_flags(X509_VERIFY_PARAM *param, unsigned long flags);  (ORs them in)
  X509_VERIFY_PARAM_set_flags: { args: ["ptr", "u64"], ret: "i32" },
  // PKCS12 *d2i_PKCS12_bio(BIO *bp, PKCS12 **p12);
  d2i_PKCS12_bio: { args: ["ptr", "ptr"], ret: "ptr" },
  // int PKCS12_parse(PKCS12 *p12, const char *pass, EVP_PKEY **pkey, X509 **cert,
  //                  STACK_OF(X509) **ca);  (pass: NUL-terminated; the three out-cells are
  //                  8-byte cells, *ca NULL on entry or the certificates are appended to it)
  PKCS12_parse: { args: ["ptr", "buf", "buf", "buf", "buf"], ret: "i32" },
  // void PKCS12_free(PKCS12 *a);
  PKCS12_free: { args: ["ptr"], ret: "void" },
  // OSSL_PROVIDER *OSSL_PROVIDER_load(OSSL_LIB_CTX *libctx, const char *name);  (3.0+; NULL
  // libctx: the default library context; loaded for the rest of the process)
  OSSL_PROVIDER_load: { args: ["ptr", "buf"], ret: "ptr", optional: true },
  // int OSSL_PROVIDER_available(OSSL_LIB_CTX *libctx, const char *name);  (3.0+)
  OSSL_PROVIDER_available: { args: ["ptr", "buf"], ret: "i32", optional: true },

  // OCSP_RESPONSE *d2i_OCSP_RESPONSE(OCSP_RESPONSE **a, const unsigned char **in, long len);
  // (`in`: an 8-byte cell holding the address of the DER; advanced past what was read)
  d2i_OCSP_RESPONSE: { args: ["ptr", "buf", "i64"], ret: "ptr" },
  // void OCSP_RESPONSE_free(OCSP_RESPONSE *a);
  OCSP_RESPONSE_free: { args: ["ptr"], ret: "void" },
  // int OCSP_response_status(OCSP_RESPONSE *resp);
  OCSP_response_status: { args: ["ptr"], ret: "i32" },
  // OCSP_BASICRESP *OCSP_response_get1_basic(OCSP_RESPONSE *resp);  (a new object)
  OCSP_response_get1_basic: { args: ["ptr"], ret: "ptr" },
  // void OCSP_BASICRESP_free(OCSP_BASICRESP *a);
  OCSP_BASICRESP_free: { args: ["ptr"], ret: "void" },
  // int OCSP_basic_verify(OCSP_BASICRESP *bs, STACK_OF(X509) *certs, X509_STORE *st,
  //                       unsigned long flags);  (1 valid, 0 invalid, -1 error)
  OCSP_basic_verify: { args: ["ptr", "ptr", "ptr", "u64"], ret: "i32" },
  // OCSP_CERTID *OCSP_cert_to_id(const EVP_MD *dgst, const X509 *subject, const X509 *issuer);
  OCSP_cert_to_id: { args: ["ptr", "ptr", "ptr"], ret: "ptr" },
  // void OCSP_CERTID_free(OCSP_CERTID *a);
  OCSP_CERTID_free: { args: ["ptr"], ret: "void" },
  // int OCSP_resp_find_status(OCSP_BASICRESP *bs, OCSP_CERTID *id, int *status, int *reason,
  //     ASN1_GENERALIZEDTIME **revtime, ASN1_GENERALIZEDTIME **thisupd,
  //     ASN1_GENERALIZEDTIME **nextupd);  (the times are borrowed from bs)
  OCSP_resp_find_status: {
    args: ["ptr", "ptr", "buf", "buf", "buf", "buf", "buf"],
    ret: "i32",
  },
  // int OCSP_check_validity(ASN1_GENERALIZEDTIME *thisupd, ASN1_GENERALIZEDTIME *nextupd,
  //                         long sec, long maxsec);
  OCSP_check_validity: { args: ["ptr", "ptr", "i64", "i64"], ret: "i32" },
  // const ASN1_GENERALIZEDTIME *OCSP_resp_get0_produced_at(const OCSP_BASICRESP *bs);
  OCSP_resp_get0_produced_at: { args: ["ptr"], ret: "ptr" },
  // int OCSP_resp_get0_id(const OCSP_BASICRESP *bs, const ASN1_OCTET_STRING **pid,
  //                       const X509_NAME **pname);  (one of the two is set)
  OCSP_resp_get0_id: { args: ["ptr", "buf", "buf"], ret: "i32" },
  // const char *OCSP_crl_reason_str(long s);
  OCSP_crl_reason_str: { args: ["i64"], ret: "ptr" },
  // OCSP_REQUEST *OCSP_REQUEST_new(void);
  OCSP_REQUEST_new: { args: [], ret: "ptr" },
  // void OCSP_REQUEST_free(OCSP_REQUEST *a);
  OCSP_REQUEST_free: { args: ["ptr"], ret: "void" },
  // OCSP_ONEREQ *OCSP_request_add0_id(OCSP_REQUEST *req, OCSP_CERTID *cid);  (takes cid)
  OCSP_request_add0_id: { args: ["ptr", "ptr"], ret: "ptr" },
  // int i2d_OCSP_REQUEST(const OCSP_REQUEST *a, unsigned char **out);  (out NULL: the length)
  i2d_OCSP_REQUEST: { args: ["ptr", "ptr"], ret: "i32" },
  // int i2d_OCSP_REQUEST(const OCSP_REQUEST *a, unsigned char **out);  (out: an 8-byte cell)
  i2d_OCSP_REQUEST_buf: { symbol: "i2d_OCSP_REQUEST", args: ["ptr", "buf"], ret: "i32" },

  // OPENSSL_STACK *OPENSSL_sk_new_null(void);
  OPENSSL_sk_new_null: { args: [], ret: "ptr" },
  // int OPENSSL_sk_push(OPENSSL_STACK *st, const void *data);
  OPENSSL_sk_push: { args: ["ptr", "ptr"], ret: "i32" },
  // int OPENSSL_sk_num(const OPENSSL_STACK *st);
  OPENSSL_sk_num: { args: ["ptr"], ret: "i32" },
  // void *OPENSSL_sk_value(const OPENSSL_STACK *st, int i);
  OPENSSL_sk_value: { args: ["ptr", "i32"], ret: "ptr" },
  // void OPENSSL_sk_sort(OPENSSL_STACK *st);
  OPENSSL_sk_sort: { args: ["ptr"], ret: "void" },
  // void OPENSSL_sk_free(OPENSSL_STACK *st);
  OPENSSL_sk_free: { args: ["ptr"], ret: "void" },

  // const EVP_CIPHER *EVP_aes_256_cbc(void);
  EVP_aes_256_cbc: { args: [], ret: "ptr" },
  // int EVP_EncryptInit_ex(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *type, ENGINE *impl,
  //                        const unsigned char *key, const unsigned char *iv);
  EVP_EncryptInit_ex: { args: ["ptr", "ptr", "ptr", "buf", "ptr"], ret: "i32" },
  // int EVP_DecryptInit_ex(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *type, ENGINE *impl,
  //                        const unsigned char *key, const unsigned char *iv);
  EVP_DecryptInit_ex: { args: ["ptr", "ptr", "ptr", "buf", "ptr"], ret: "i32" },
  // int EVP_MAC_CTX_set_params(EVP_MAC_CTX *ctx, const OSSL_PARAM params[]);  (3.0)
  EVP_MAC_CTX_set_params: { args: ["ptr", "ptr"], ret: "i32", optional: true },

  // int EVP_MD_get_type(const EVP_MD *md);  (3.0; the NID, e.g. NID_sha256 672)
  EVP_MD_get_type: { args: ["ptr"], ret: "i32", optional: true },
  // int EVP_MD_type(const EVP_MD *md);  (1.1.1's name; a macro over EVP_MD_get_type in 3.0)
  EVP_MD_type: { args: ["ptr"], ret: "i32", optional: true },

  // ---- the peer's key type, for its signature scheme's name (algorithms.ts) ----
  // EVP_PKEY *X509_get0_pubkey(const X509 *x);  (borrowed)
  X509_get0_pubkey: { args: ["ptr"], ret: "ptr" },
  // int EVP_PKEY_get_base_id(const EVP_PKEY *pkey);  (3.0; the key type's NID, e.g.
  // NID_rsaEncryption 6 or NID_rsassaPss 912)
  EVP_PKEY_get_base_id: { args: ["ptr"], ret: "i32", optional: true },
} as const satisfies SymbolTable;

/** Functions exported by libssl. */
export const sslSymbols = {
  // unsigned long OpenSSL_version_num(void);  looked up through libssl's handle, which finds it
  // in the libcrypto libssl itself was linked against (its DT_NEEDED): the loader compares it with
  // the libcrypto it opened, so that a pair from two releases is refused.
  libssl_OpenSSL_version_num: { symbol: "OpenSSL_version_num", args: [], ret: "u64" },
  // const SSL_METHOD *TLS_method(void);
  TLS_method: { args: [], ret: "ptr" },
  // SSL_CTX *SSL_CTX_new(const SSL_METHOD *method);
  SSL_CTX_new: { args: ["ptr"], ret: "ptr" },
  // void SSL_CTX_free(SSL_CTX *ctx);
  SSL_CTX_free: { args: ["ptr"], ret: "void" },
  // long SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg);
  SSL_CTX_ctrl: { args: ["ptr", "i32", "i64", "ptr"], ret: "i64" },
  // long SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg);  (parg as bytes)
  SSL_CTX_ctrl_buf: { symbol: "SSL_CTX_ctrl", args: ["ptr", "i32", "i64", "buf"], ret: "i64" },
  // long SSL_CTX_callback_ctrl(SSL_CTX *ctx, int cmd, void (*fp)(void));
  SSL_CTX_callback_ctrl: { args: ["ptr", "i32", "cb"], ret: "i64" },
  // uint64_t SSL_CTX_set_options(SSL_CTX *ctx, uint64_t op);  (a macro over ctrl 32 in 1.1.1)
  // (named _fn here: the macro of the same name in macros.ts picks this or ctrl 32)
  SSL_CTX_set_options_fn: {
    symbol: "SSL_CTX_set_options",
    args: ["ptr", "u64"],
    ret: "u64",
    optional: true,
  },
  // void SSL_CTX_set_verify(SSL_CTX *ctx, int mode, SSL_verify_cb verify_callback);
  SSL_CTX_set_verify: { args: ["ptr", "i32", "cb"], ret: "void" },
  // void SSL_CTX_set_cert_cb(SSL_CTX *c, int (*cert_cb)(SSL *ssl, void *arg), void *arg);
  SSL_CTX_set_cert_cb: { args: ["ptr", "cb", "ptr"], ret: "void" },
  // void SSL_CTX_set_client_hello_cb(SSL_CTX *c, SSL_client_hello_cb_fn *f, void *arg);
  SSL_CTX_set_client_hello_cb: { args: ["ptr", "cb", "ptr"], ret: "void" },
  // int SSL_client_hello_get0_ext(SSL *s, unsigned int type, const unsigned char **out,
  //                               size_t *outlen);  (out and outlen: 8-byte cells)
  SSL_client_hello_get0_ext: { args: ["ptr", "u32", "buf", "buf"], ret: "i32" },
  // int SSL_CTX_set_alpn_protos(SSL_CTX *ctx, const unsigned char *protos,
  //                             unsigned int protos_len);  (returns 0 on success)
  SSL_CTX_set_alpn_protos: { args: ["ptr", "buf", "u32"], ret: "i32" },
  // void SSL_CTX_set_alpn_select_cb(SSL_CTX *ctx, SSL_CTX_alpn_select_cb_func cb, void *arg);
  SSL_CTX_set_alpn_select_cb: { args: ["ptr", "cb", "ptr"], ret: "void" },
  // int SSL_CTX_set_session_id_context(SSL_CTX *ctx, const unsigned char *sid_ctx,
  //                                    unsigned int sid_ctx_len);
  SSL_CTX_set_session_id_context: { args: ["ptr", "buf", "u32"], ret: "i32" },
  // X509 *SSL_CTX_get0_certificate(const SSL_CTX *ctx);  (borrowed)
  SSL_CTX_get0_certificate: { args: ["ptr"], ret: "ptr" },
  // EVP_PKEY *SSL_CTX_get0_privatekey(const SSL_CTX *ctx);  (borrowed)
  SSL_CTX_get0_privatekey: { args: ["ptr"], ret: "ptr" },
  // void SSL_CTX_set_keylog_callback(SSL_CTX *ctx, SSL_CTX_keylog_cb_func cb);
  SSL_CTX_set_keylog_callback: { args: ["ptr", "cb"], ret: "void" },
  // void SSL_CTX_set_info_callback(SSL_CTX *ctx, void (*cb)(const SSL *ssl, int type, int val));
  SSL_CTX_set_info_callback: { args: ["ptr", "cb"], ret: "void" },
  // X509_STORE *SSL_CTX_get_cert_store(const SSL_CTX *ctx);
  SSL_CTX_get_cert_store: { args: ["ptr"], ret: "ptr" },
  // int SSL_CTX_set_default_verify_paths(SSL_CTX *ctx);
  SSL_CTX_set_default_verify_paths: { args: ["ptr"], ret: "i32" },
  // int SSL_CTX_use_certificate(SSL_CTX *ctx, X509 *x);  (takes its own reference)
  SSL_CTX_use_certificate: { args: ["ptr", "ptr"], ret: "i32" },
  // int SSL_CTX_use_PrivateKey(SSL_CTX *ctx, EVP_PKEY *pkey);  (takes its own reference)
  SSL_CTX_use_PrivateKey: { args: ["ptr", "ptr"], ret: "i32" },
  // int SSL_CTX_check_private_key(const SSL_CTX *ctx);
  SSL_CTX_check_private_key: { args: ["ptr"], ret: "i32" },
  // int SSL_CTX_set_cipher_list(SSL_CTX *ctx, const char *str);
  SSL_CTX_set_cipher_list: { args: ["ptr", "buf"], ret: "i32" },
  // int SSL_CTX_set_ciphersuites(SSL_CTX *ctx, const char *str);
  SSL_CTX_set_ciphersuites: { args: ["ptr", "buf"], ret: "i32" },
  // int SSL_CTX_add_client_CA(SSL_CTX *ctx, X509 *cacert);
  SSL_CTX_add_client_CA: { args: ["ptr", "ptr"], ret: "i32" },
  // int SSL_get_ex_data_X509_STORE_CTX_idx(void);
  SSL_get_ex_data_X509_STORE_CTX_idx: { args: [], ret: "i32" },

  // SSL *SSL_new(SSL_CTX *ctx);
  SSL_new: { args: ["ptr"], ret: "ptr" },
  // void SSL_free(SSL *ssl);  (also frees the BIOs given to SSL_set_bio)
  SSL_free: { args: ["ptr"], ret: "void" },
  // void SSL_set_bio(SSL *ssl, BIO *rbio, BIO *wbio);  (takes ownership of both)
  SSL_set_bio: { args: ["ptr", "ptr", "ptr"], ret: "void" },
  // void SSL_set0_rbio(SSL *s, BIO *rbio);  (takes ownership; frees the previous read BIO)
  SSL_set0_rbio: { args: ["ptr", "ptr"], ret: "void" },
  // void SSL_set0_wbio(SSL *s, BIO *wbio);  (takes ownership; frees the previous write BIO,
  // re-chaining the handshake's buffering BIO if one is pushed)
  SSL_set0_wbio: { args: ["ptr", "ptr"], ret: "void" },
  // void SSL_set_connect_state(SSL *ssl);
  SSL_set_connect_state: { args: ["ptr"], ret: "void" },
  // void SSL_set_accept_state(SSL *ssl);
  SSL_set_accept_state: { args: ["ptr"], ret: "void" },
  // int SSL_do_handshake(SSL *ssl);
  SSL_do_handshake: { args: ["ptr"], ret: "i32" },
  // int SSL_read(SSL *ssl, void *buf, int num);
  SSL_read: { args: ["ptr", "buf", "i32"], ret: "i32" },
  // int SSL_peek(SSL *ssl, void *buf, int num);  (as SSL_read, but the data stays to be read)
  SSL_peek: { args: ["ptr", "buf", "i32"], ret: "i32" },
  // int SSL_write(SSL *ssl, const void *buf, int num);
  SSL_write: { args: ["ptr", "buf", "i32"], ret: "i32" },
  // int SSL_shutdown(SSL *ssl);
  SSL_shutdown: { args: ["ptr"], ret: "i32" },
  // int SSL_get_error(const SSL *ssl, int ret);
  SSL_get_error: { args: ["ptr", "i32"], ret: "i32" },
  // const char *SSL_get0_group_name(SSL *s);  (3.2+: the negotiated key exchange group's name)
  SSL_get0_group_name: { args: ["ptr"], ret: "ptr", optional: true },
  // const char *SSL_group_to_name(SSL *s, int id);  (3.0+; the name of a group NID)
  SSL_group_to_name: { args: ["ptr", "i32"], ret: "ptr", optional: true },
  // int SSL_get_shutdown(const SSL *ssl);  (SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN)
  SSL_get_shutdown: { args: ["ptr"], ret: "i32" },
  // long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg);
  SSL_ctrl: { args: ["ptr", "i32", "i64", "ptr"], ret: "i64" },
  // long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg);  (parg as bytes)
  SSL_ctrl_buf: { symbol: "SSL_ctrl", args: ["ptr", "i32", "i64", "buf"], ret: "i64" },
  // int SSL_set1_host(SSL *s, const char *hostname);
  SSL_set1_host: { args: ["ptr", "buf"], ret: "i32" },
  // void SSL_set_hostflags(SSL *s, unsigned int flags);
  SSL_set_hostflags: { args: ["ptr", "u32"], ret: "void" },
  // X509_VERIFY_PARAM *SSL_get0_param(SSL *ssl);
  SSL_get0_param: { args: ["ptr"], ret: "ptr" },
  // X509_VERIFY_PARAM *SSL_CTX_get0_param(SSL_CTX *ctx);  (borrowed; revocation.ts sets CRL flags)
  SSL_CTX_get0_param: { args: ["ptr"], ret: "ptr" },
  // long SSL_get_verify_result(const SSL *ssl);
  SSL_get_verify_result: { args: ["ptr"], ret: "i64" },
  // const char *SSL_get_version(const SSL *ssl);
  SSL_get_version: { args: ["ptr"], ret: "ptr" },
  // const SSL_CIPHER *SSL_get_current_cipher(const SSL *ssl);
  SSL_get_current_cipher: { args: ["ptr"], ret: "ptr" },
  // const char *SSL_CIPHER_get_name(const SSL_CIPHER *cipher);
  SSL_CIPHER_get_name: { args: ["ptr"], ret: "ptr" },
  // int SSL_session_reused(const SSL *s);
  SSL_session_reused: { args: ["ptr"], ret: "i32" },
  // X509 *SSL_get1_peer_certificate(const SSL *ssl);  (3.0; returns a new reference)
  SSL_get1_peer_certificate: { args: ["ptr"], ret: "ptr", optional: true },
  // X509 *SSL_get_peer_certificate(const SSL *ssl);  (1.1.1's name; also a new reference)
  SSL_get_peer_certificate: { args: ["ptr"], ret: "ptr", optional: true },
  // STACK_OF(X509) *SSL_get0_verified_chain(const SSL *s);  (borrowed)
  SSL_get0_verified_chain: { args: ["ptr"], ret: "ptr" },
  // int SSL_use_cert_and_key(SSL *ssl, X509 *x509, EVP_PKEY *pkey, STACK_OF(X509) *chain,
  //                          int override);  (takes its own references)
  SSL_use_cert_and_key: { args: ["ptr", "ptr", "ptr", "ptr", "i32"], ret: "i32" },
  // STACK_OF(X509_NAME) *SSL_get_client_CA_list(const SSL *s);  (borrowed)
  SSL_get_client_CA_list: { args: ["ptr"], ret: "ptr" },
  // const char *SSL_get_servername(const SSL *s, const int type);
  SSL_get_servername: { args: ["ptr", "i32"], ret: "ptr" },
  // int SSL_set_alpn_protos(SSL *ssl, const unsigned char *protos, unsigned int protos_len);
  // (returns 0 on success, unlike almost everything else)
  SSL_set_alpn_protos: { args: ["ptr", "buf", "u32"], ret: "i32" },
  // void SSL_get0_alpn_selected(const SSL *ssl, const unsigned char **data, unsigned int *len);
  SSL_get0_alpn_selected: { args: ["ptr", "buf", "buf"], ret: "void" },
  // X509 *SSL_get_certificate(const SSL *ssl);  (borrowed: the certificate this side sends)
  SSL_get_certificate: { args: ["ptr"], ret: "ptr" },
  // const char *SSL_state_string(const SSL *ssl);
  SSL_state_string: { args: ["ptr"], ret: "ptr" },
  // const char *SSL_state_string_long(const SSL *ssl);
  SSL_state_string_long: { args: ["ptr"], ret: "ptr" },
  // const char *SSL_alert_type_string_long(int value);
  SSL_alert_type_string_long: { args: ["i32"], ret: "ptr" },
  // const char *SSL_alert_desc_string_long(int value);
  SSL_alert_desc_string_long: { args: ["i32"], ret: "ptr" },

  // ---- PSK (SSL_CTX_set_psk_client_callback(3), SSL_CTX_set_psk_server_callback(3)) ----
  // void SSL_CTX_set_psk_use_session_callback(SSL_CTX *ctx, SSL_psk_use_session_cb_func cb);
  SSL_CTX_set_psk_use_session_callback: { args: ["ptr", "cb"], ret: "void" },
  // void SSL_CTX_set_psk_find_session_callback(SSL_CTX *ctx, SSL_psk_find_session_cb_func cb);
  SSL_CTX_set_psk_find_session_callback: { args: ["ptr", "cb"], ret: "void" },
  // void SSL_CTX_set_psk_client_callback(SSL_CTX *ctx, SSL_psk_client_cb_func cb);
  SSL_CTX_set_psk_client_callback: { args: ["ptr", "cb"], ret: "void" },
  // void SSL_CTX_set_psk_server_callback(SSL_CTX *ctx, SSL_psk_server_cb_func cb);
  SSL_CTX_set_psk_server_callback: { args: ["ptr", "cb"], ret: "void" },
  // int SSL_CTX_use_psk_identity_hint(SSL_CTX *ctx, const char *identity_hint);  (copied)
  SSL_CTX_use_psk_identity_hint: { args: ["ptr", "buf"], ret: "i32" },
  // int SSL_set_ciphersuites(SSL *s, const char *str);  (TLS 1.3 suites of this connection)
  SSL_set_ciphersuites: { args: ["ptr", "buf"], ret: "i32" },
  // int SSL_version(const SSL *s);  (the negotiated version, or the highest offered before)
  SSL_version: { args: ["ptr"], ret: "i32" },
  // SSL_SESSION *SSL_SESSION_new(void);
  SSL_SESSION_new: { args: [], ret: "ptr" },
  // void SSL_SESSION_free(SSL_SESSION *ses);
  SSL_SESSION_free: { args: ["ptr"], ret: "void" },
  // int SSL_SESSION_set1_master_key(SSL_SESSION *sess, const unsigned char *in, size_t len);
  // (copies; 0 when len exceeds the session's key buffer)
  SSL_SESSION_set1_master_key: { args: ["ptr", "buf", "usize"], ret: "i32" },
  // int SSL_SESSION_set_cipher(SSL_SESSION *s, const SSL_CIPHER *cipher);
  SSL_SESSION_set_cipher: { args: ["ptr", "ptr"], ret: "i32" },
  // int SSL_SESSION_set_protocol_version(SSL_SESSION *s, int version);
  SSL_SESSION_set_protocol_version: { args: ["ptr", "i32"], ret: "i32" },
  // const SSL_CIPHER *SSL_CIPHER_find(SSL *ssl, const unsigned char *ptr);  (ptr: the 2-byte
  // IANA id, big-endian; borrowed result, NULL when unknown)
  SSL_CIPHER_find: { args: ["ptr", "buf"], ret: "ptr" },

  // ---- Session resumption (SSL_CTX_sess_set_new_cb(3), d2i_SSL_SESSION(3),
  // SSL_CTX_set_num_tickets(3), SSL_CTX_set_tlsext_ticket_key_evp_cb(3)) ----
  // SSL_SESSION *d2i_SSL_SESSION(SSL_SESSION **a, const unsigned char **pp, long length);
  // (`pp`: an 8-byte cell holding the address of the DER; advanced past what was read)
  d2i_SSL_SESSION: { args: ["ptr", "buf", "i64"], ret: "ptr" },
  // int i2d_SSL_SESSION(SSL_SESSION *in, unsigned char **pp);  (pp NULL: the length only)
  i2d_SSL_SESSION: { args: ["ptr", "ptr"], ret: "i32" },
  // int i2d_SSL_SESSION(SSL_SESSION *in, unsigned char **pp);  (pp: an 8-byte cell holding a
  // buffer address, advanced past the bytes written)
  i2d_SSL_SESSION_buf: { symbol: "i2d_SSL_SESSION", args: ["ptr", "buf"], ret: "i32" },
  // int SSL_set_session(SSL *ssl, SSL_SESSION *session);  (takes its own reference)
  SSL_set_session: { args: ["ptr", "ptr"], ret: "i32" },
  // SSL_SESSION *SSL_get1_session(SSL *ssl);  (a new reference: SSL_SESSION_free it)
  SSL_get1_session: { args: ["ptr"], ret: "ptr" },
  // int SSL_SESSION_set1_id_context(SSL_SESSION *s, const unsigned char *sid_ctx,
  //                                 unsigned int sid_ctx_len);  (at most 32 bytes; copied)
  SSL_SESSION_set1_id_context: { args: ["ptr", "buf", "u32"], ret: "i32" },
  // const unsigned char *SSL_SESSION_get0_id_context(const SSL_SESSION *s, unsigned int *len);
  SSL_SESSION_get0_id_context: { args: ["ptr", "buf"], ret: "ptr" },
  // int SSL_set_session_id_context(SSL *ssl, const unsigned char *sid_ctx,
  //                                unsigned int sid_ctx_len);
  SSL_set_session_id_context: { args: ["ptr", "buf", "u32"], ret: "i32" },
  // int SSL_SESSION_has_ticket(const SSL_SESSION *s);
  SSL_SESSION_has_ticket: { args: ["ptr"], ret: "i32" },
  // SSL_SESSION *SSL_get_session(const SSL *ssl);  (borrowed)
  SSL_get_session: { args: ["ptr"], ret: "ptr" },
  // SSL_CTX *SSL_get_SSL_CTX(const SSL *ssl);  (borrowed: the context the SSL was made from)
  SSL_get_SSL_CTX: { args: ["ptr"], ret: "ptr" },
  // int SSL_is_server(const SSL *s);
  SSL_is_server: { args: ["ptr"], ret: "i32" },
  // const char *SSL_SESSION_get0_hostname(const SSL_SESSION *s);  (borrowed; may be NULL)
  SSL_SESSION_get0_hostname: { args: ["ptr"], ret: "ptr" },
  // int SSL_SESSION_set1_hostname(SSL_SESSION *s, const char *hostname);  (copied; NULL clears)
  SSL_SESSION_set1_hostname: { args: ["ptr", "buf"], ret: "i32" },
  // int SSL_SESSION_is_resumable(const SSL_SESSION *s);
  SSL_SESSION_is_resumable: { args: ["ptr"], ret: "i32" },
  // void SSL_CTX_sess_set_new_cb(SSL_CTX *ctx, int (*new_session_cb)(SSL *, SSL_SESSION *));
  SSL_CTX_sess_set_new_cb: { args: ["ptr", "cb"], ret: "void" },
  // int SSL_CTX_set_num_tickets(SSL_CTX *ctx, size_t num_tickets);  (TLS 1.3 servers)
  SSL_CTX_set_num_tickets: { args: ["ptr", "usize"], ret: "i32" },
  // int SSL_CTX_set_tlsext_ticket_key_evp_cb(SSL_CTX *ctx, int (*cb)(SSL *s,
  //     unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *ctx, EVP_MAC_CTX *hctx,
  //     int enc));  (3.0; 1.1.1 has only the HMAC_CTX form)
  SSL_CTX_set_tlsext_ticket_key_evp_cb: { args: ["ptr", "cb"], ret: "i32", optional: true },

  // ---- Keying material, Finished, KeyUpdate, signature algorithms (SSL_export_keying_material(3),
  // SSL_get_finished(3), SSL_key_update(3), SSL_get_peer_signature_nid(3)) ----
  // int SSL_export_keying_material(SSL *s, unsigned char *out, size_t olen, const char *label,
  //     size_t llen, const unsigned char *context, size_t contextlen, int use_context);
  SSL_export_keying_material: {
    args: ["ptr", "buf", "usize", "buf", "usize", "buf", "usize", "i32"],
    ret: "i32",
  },
  // size_t SSL_get_finished(const SSL *s, void *buf, size_t count);  (declared i32: the total
  // length of the last Finished sent, at most EVP_MAX_MD_SIZE; copies min(count, total))
  SSL_get_finished: { args: ["ptr", "buf", "usize"], ret: "i32" },
  // int SSL_key_update(SSL *s, int updatetype);  (TLS 1.3; sent by the next SSL_write,
  // SSL_read or SSL_do_handshake)
  SSL_key_update: { args: ["ptr", "i32"], ret: "i32" },
  // int SSL_free_buffers(SSL *ssl);  (frees the record buffers; 0 if something is buffered)
  SSL_free_buffers: { args: ["ptr"], ret: "i32" },
  // int SSL_has_pending(const SSL *s);  (decrypted bytes or unprocessed records buffered)
  SSL_has_pending: { args: ["ptr"], ret: "i32" },
  // int SSL_get_key_update_type(const SSL *s);  (the KeyUpdate waiting to be sent, or -1)
  SSL_get_key_update_type: { args: ["ptr"], ret: "i32" },
  // int SSL_get_peer_signature_type_nid(const SSL *s, int *pnid);  (the key type's NID, or
  // EVP_PKEY_RSA_PSS for either rsa_pss_* scheme)
  SSL_get_peer_signature_type_nid: { args: ["ptr", "buf"], ret: "i32" },
  // int SSL_get0_peer_signature_name(const SSL *s, const char **sigalg);  (3.5+: the IANA
  // name of the scheme the peer signed with; borrowed)
  SSL_get0_peer_signature_name: { args: ["ptr", "buf"], ret: "i32", optional: true },

  // ---- External server session cache and 0-RTT early data (SSL_CTX_sess_set_get_cb(3),
  // SSL_read_early_data(3)); all in 1.1.1, 3.0, 3.5 and 4.0 ----
  // void SSL_CTX_sess_set_get_cb(SSL_CTX *ctx, SSL_SESSION *(*get_session_cb)(SSL *,
  //     const unsigned char *data, int len, int *copy));
  SSL_CTX_sess_set_get_cb: { args: ["ptr", "cb"], ret: "void" },
  // void SSL_CTX_sess_set_remove_cb(SSL_CTX *ctx, void (*remove_session_cb)(SSL_CTX *ctx,
  //     SSL_SESSION *sess));
  SSL_CTX_sess_set_remove_cb: { args: ["ptr", "cb"], ret: "void" },
  // const unsigned char *SSL_SESSION_get_id(const SSL_SESSION *s, unsigned int *len);  (borrowed)
  SSL_SESSION_get_id: { args: ["ptr", "buf"], ret: "ptr" },
  // size_t SSL_client_hello_get0_session_id(SSL *s, const unsigned char **out);  (borrowed)
  SSL_client_hello_get0_session_id: { args: ["ptr", "buf"], ret: "usize" },
  // int SSL_CTX_set_max_early_data(SSL_CTX *ctx, uint32_t max_early_data);
  SSL_CTX_set_max_early_data: { args: ["ptr", "u32"], ret: "i32" },
  // int SSL_CTX_set_recv_max_early_data(SSL_CTX *ctx, uint32_t recv_max_early_data);
  SSL_CTX_set_recv_max_early_data: { args: ["ptr", "u32"], ret: "i32" },
  // uint32_t SSL_SESSION_get_max_early_data(const SSL_SESSION *s);
  SSL_SESSION_get_max_early_data: { args: ["ptr"], ret: "u32" },
  // void SSL_SESSION_get0_alpn_selected(const SSL_SESSION *s, const unsigned char **alpn,
  //     size_t *len);  (borrowed)
  SSL_SESSION_get0_alpn_selected: { args: ["ptr", "buf", "buf"], ret: "void" },
  // int SSL_write_early_data(SSL *s, const void *buf, size_t num, size_t *written);
  SSL_write_early_data: { args: ["ptr", "buf", "usize", "buf"], ret: "i32" },
  // int SSL_read_early_data(SSL *s, void *buf, size_t num, size_t *readbytes);
  SSL_read_early_data: { args: ["ptr", "buf", "usize", "buf"], ret: "i32" },
  // int SSL_get_early_data_status(const SSL *s);
  SSL_get_early_data_status: { args: ["ptr"], ret: "i32" },

  // ---- TLS 1.3 post-handshake client authentication (SSL_verify_client_post_handshake(3)) ----
  // void SSL_CTX_set_post_handshake_auth(SSL_CTX *ctx, int val);  (clients: offer it)
  SSL_CTX_set_post_handshake_auth: { args: ["ptr", "i32"], ret: "void" },
  // int SSL_verify_client_post_handshake(SSL *s);  (servers: queue a CertificateRequest)
  SSL_verify_client_post_handshake: { args: ["ptr"], ret: "i32" },
  // void SSL_set_verify(SSL *s, int mode, SSL_verify_cb cb);  (cb NULL keeps the context's)
  SSL_set_verify: { args: ["ptr", "i32", "cb"], ret: "void" },
  // size_t SSL_get_peer_finished(const SSL *s, void *buf, size_t count);  (the peer's latest
  // Finished; returns its full length, copies at most count bytes)
  SSL_get_peer_finished: { args: ["ptr", "buf", "usize"], ret: "usize" },

  // ---- DTLS (DTLS_method(3), DTLSv1_listen(3), SSL_CTX_set_cookie_generate_cb(3)) ----
  // const SSL_METHOD *DTLS_method(void);  (version-flexible: DTLS 1.2, and 1.3 where built in)
  DTLS_method: { args: [], ret: "ptr" },
  // int DTLSv1_listen(SSL *ssl, BIO_ADDR *peer);  (1 cookie verified, 0 retry, < 0 error)
  DTLSv1_listen: { args: ["ptr", "ptr"], ret: "i32" },
  // size_t DTLS_get_data_mtu(const SSL *s);  (the largest plaintext one record of the current
  // cipher carries within the MTU; 0 when unknown)
  DTLS_get_data_mtu: { args: ["ptr"], ret: "i32" },
  // void SSL_CTX_set_cookie_generate_cb(SSL_CTX *ctx, int (*app_gen_cookie_cb)(SSL *ssl,
  //     unsigned char *cookie, unsigned int *cookie_len));
  SSL_CTX_set_cookie_generate_cb: { args: ["ptr", "cb"], ret: "void" },
  // void SSL_CTX_set_cookie_verify_cb(SSL_CTX *ctx, int (*app_verify_cookie_cb)(SSL *ssl,
  //     const unsigned char *cookie, unsigned int cookie_len));
  SSL_CTX_set_cookie_verify_cb: { args: ["ptr", "cb"], ret: "void" },
  // int SSL_CTX_set_tlsext_use_srtp(SSL_CTX *ctx, const char *profiles);  (DTLS-SRTP, RFC 5764;
  // "SRTP_AES128_CM_SHA1_80:..."; NOTE: 0 on success, 1 on failure)
  SSL_CTX_set_tlsext_use_srtp: { args: ["ptr", "buf"], ret: "i32" },
  // SRTP_PROTECTION_PROFILE *SSL_get_selected_srtp_profile(SSL *s);  (borrowed; NULL when none;
  // struct { const char *name; unsigned long id; })
  SSL_get_selected_srtp_profile: { args: ["ptr"], ret: "ptr" },
} as const satisfies SymbolTable;

type ArgOf<T> = T extends "ptr" | "cb" ? Pointer | null
  : T extends "buf" ? ArrayBufferView | null
  : T extends "i64" | "u64" | "usize" ? number | bigint
  : number;

type RetOf<T extends NativeType> = T extends "ptr" ? Pointer | null
  : T extends "void" ? void
  : number;

type ArgsOf<A extends readonly NativeType[]> = { -readonly [K in keyof A]: ArgOf<A[K]> };

type Callable<D extends FunctionDef> = (...args: ArgsOf<D["args"]>) => RetOf<D["ret"]>;

/** The typed callable form of a symbol table (optional symbols may be `null`). */
export type Symbols<T extends SymbolTable> = {
  readonly [K in keyof T]: T[K] extends { optional: true } ? Callable<T[K]> | null
    : Callable<T[K]>;
};
