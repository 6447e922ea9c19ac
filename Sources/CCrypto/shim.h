// SHA-256 through the low-level interface: OpenSSL 3 deprecates it, but it hashes with the
// same code (the CPU's SHA extensions) without loading a provider, which the EVP interface
// does on first use (2 MB more resident in every process, its configuration read).
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
