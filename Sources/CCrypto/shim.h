#ifndef B2_CCRYPTO_SHIM_H
#define B2_CCRYPTO_SHIM_H
/* OpenSSL's libcrypto: digests through the EVP interface (hardware SHA where the CPU has it). */
#include <openssl/evp.h>
#endif
