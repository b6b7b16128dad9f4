/* A sysctl's key as a path under /proc/sys, shared by the native runtime and a microVM's
 * agent (libc only: compiled into both). */
#ifndef RUNCELL_SYSCTL_PATH_H
#define RUNCELL_SYSCTL_PATH_H

#include <stddef.h>

/* The first len bytes of key ("net.ipv4.ip_forward" or "net/ipv4/conf/eth0.100/forwarding")
 * as a path relative to /proc/sys in out: dots become slashes unless the key has slashes
 * already (then dots belong to names, as in an interface called eth0.100). -1 if a
 * component is empty, "." or "..", a byte is a space or control character, or out is too
 * small: the result never leaves /proc/sys. */
int rc_sysctl_path(const char *key, size_t len, char *out, size_t size);

#endif
