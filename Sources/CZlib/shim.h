#ifndef B2_CZLIB_SHIM_H
#define B2_CZLIB_SHIM_H
#include <zlib.h>

/* deflateInit2 and inflateInit2 are macros (they pass the version and struct size): wrap them. */
static inline int b2_deflateInit2(z_streamp s, int level, int windowBits, int memLevel) {
    return deflateInit2(s, level, Z_DEFLATED, windowBits, memLevel, Z_DEFAULT_STRATEGY);
}
static inline int b2_inflateInit2(z_streamp s, int windowBits) { return inflateInit2(s, windowBits); }
#endif
