// LD_PRELOAD library for the `reverb` role (spiral_tf/distributed/listen.py): narrows a wildcard bind() to one address.
//
// Reverb 0.14's server listens on "[::]:port" (every interface) and has no host option. With
// SPIRAL_BIND_ADDRESS=<IPv4 or IPv6 literal> in the environment, a bind() to the wildcard address (0.0.0.0
// or ::) binds that address instead; every other bind() is passed through unchanged. An IPv4 address on
// the dual-stack IPv6 socket gRPC opens becomes its mapped form ::ffff:a.b.c.d, which serves that IPv4
// address only.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static bind_fn real_bind = NULL;
  if (real_bind == NULL) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
  const char *host = getenv("SPIRAL_BIND_ADDRESS");
  if (host == NULL || addr == NULL) return real_bind(fd, addr, len);

  struct in_addr v4;
  struct in6_addr v6;
  int host_is_v4 = inet_pton(AF_INET, host, &v4) == 1;
  int host_is_v6 = !host_is_v4 && inet_pton(AF_INET6, host, &v6) == 1;

  if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
    struct sockaddr_in narrowed = *(const struct sockaddr_in *)addr;
    if (narrowed.sin_addr.s_addr != htonl(INADDR_ANY)) return real_bind(fd, addr, len);
    if (!host_is_v4) {  // An IPv6 address cannot be served by an IPv4 socket: refuse, never widen.
      errno = EADDRNOTAVAIL;
      return -1;
    }
    narrowed.sin_addr = v4;
    return real_bind(fd, (const struct sockaddr *)&narrowed, sizeof narrowed);
  }
  if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 narrowed = *(const struct sockaddr_in6 *)addr;
    if (memcmp(&narrowed.sin6_addr, &in6addr_any, sizeof(struct in6_addr)) != 0) {
      return real_bind(fd, addr, len);
    }
    if (host_is_v4) {
      memset(&narrowed.sin6_addr, 0, sizeof narrowed.sin6_addr);
      narrowed.sin6_addr.s6_addr[10] = 0xff;
      narrowed.sin6_addr.s6_addr[11] = 0xff;
      memcpy(&narrowed.sin6_addr.s6_addr[12], &v4, 4);
    } else if (host_is_v6) {
      narrowed.sin6_addr = v6;
    } else {
      errno = EADDRNOTAVAIL;
      return -1;
    }
    return real_bind(fd, (const struct sockaddr *)&narrowed, sizeof narrowed);
  }
  return real_bind(fd, addr, len);
}
