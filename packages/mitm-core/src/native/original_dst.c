/*
 * Reads the pre-NAT destination of a TCP connection that iptables REDIRECT/DNAT sent to us:
 * getsockopt(SO_ORIGINAL_DST) for IPv4 and IP6T_SO_ORIGINAL_DST for IPv6 (both served by nf_conntrack).
 * Exposed to JS as originalDst(fd) -> { address, port, family } and throws an Error whose `code` is
 * the errno name (ENOENT when conntrack has no entry, EBADF/ENOTSOCK for a bad descriptor, ...).
 */
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>; those kernel headers clash with
 * the libc socket headers, so the two stable ABI constants are repeated here. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

static const char *errno_code(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case ENOTCONN: return "ENOTCONN";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    default: return "EUNKNOWN";
  }
}

static napi_value throw_errno(napi_env env, const char *syscall, int err) {
  char message[160];
  snprintf(message, sizeof message, "%s failed: %s", syscall, strerror(err));
  napi_throw_error(env, errno_code(err), message);
  return NULL;
}

static napi_status set_string(napi_env env, napi_value object, const char *key, const char *value) {
  napi_value js;
  napi_status status = napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &js);
  if (status != napi_ok) return status;
  return napi_set_named_property(env, object, key, js);
}

static napi_status set_int(napi_env env, napi_value object, const char *key, int32_t value) {
  napi_value js;
  napi_status status = napi_create_int32(env, value, &js);
  if (status != napi_ok) return status;
  return napi_set_named_property(env, object, key, js);
}

static napi_value make_result(napi_env env, const char *address, int port, int family) {
  napi_value result;
  if (napi_create_object(env, &result) != napi_ok || set_string(env, result, "address", address) != napi_ok ||
      set_int(env, result, "port", port) != napi_ok || set_int(env, result, "family", family) != napi_ok) {
    napi_throw_error(env, "EUNKNOWN", "cannot build result object");
    return NULL;
  }
  return result;
}

static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, "EINVAL", "originalDst(fd) needs a file descriptor");
    return NULL;
  }
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "EINVAL", "fd must be a non-negative integer");
    return NULL;
  }

  /* The local address tells which table to ask: an IPv4 connection accepted on a dual-stack IPv6 socket
   * (local address ::ffff:a.b.c.d) was NATed by iptables, not ip6tables. */
  struct sockaddr_storage local;
  socklen_t local_len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0) return throw_errno(env, "getsockname", errno);

  int ipv4 = local.ss_family == AF_INET;
  if (local.ss_family == AF_INET6) {
    ipv4 = IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr);
  } else if (local.ss_family != AF_INET) {
    return throw_errno(env, "getsockname", EAFNOSUPPORT);
  }

  char text[INET6_ADDRSTRLEN];
  if (ipv4) {
    struct sockaddr_in dst;
    socklen_t len = sizeof dst;
    memset(&dst, 0, sizeof dst);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) != 0) return throw_errno(env, "getsockopt(SO_ORIGINAL_DST)", errno);
    if (inet_ntop(AF_INET, &dst.sin_addr, text, sizeof text) == NULL) return throw_errno(env, "inet_ntop", errno);
    return make_result(env, text, ntohs(dst.sin_port), 4);
  }
  struct sockaddr_in6 dst6;
  socklen_t len6 = sizeof dst6;
  memset(&dst6, 0, sizeof dst6);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst6, &len6) != 0) {
    return throw_errno(env, "getsockopt(IP6T_SO_ORIGINAL_DST)", errno);
  }
  if (inet_ntop(AF_INET6, &dst6.sin6_addr, text, sizeof text) == NULL) return throw_errno(env, "inet_ntop", errno);
  return make_result(env, text, ntohs(dst6.sin6_port), 6);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "originalDst", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
