#ifndef B2_CLINUX_SHIM_H
#define B2_CLINUX_SHIM_H
/* Linux-only headers that Swift's Glibc module does not export. No code. */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif
