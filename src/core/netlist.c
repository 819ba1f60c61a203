/* netlist.c — see netlist.h. */
#include "tickerd/netlist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int netlist_add(netlist *l, const char *text, const char **why)
{
    char host[NETLIST_ADDR_TEXT];
    const char *slash = strchr(text, '/');
    size_t hlen = slash ? (size_t)(slash - text) : strlen(text);
    *why = "not an IPv4 or IPv6 address, or address/prefix-length";
    if (hlen == 0 || hlen >= sizeof(host))
        return -1;
    memcpy(host, text, hlen);
    host[hlen] = 0;
    netlist_entry e;
    memset(&e, 0, sizeof(e));
    if (inet_pton(AF_INET, host, e.addr) == 1)
        e.family = 4;
    else if (inet_pton(AF_INET6, host, e.addr) == 1)
        e.family = 6;
    else
        return -1;
    unsigned max = e.family == 4 ? 32 : 128;
    e.bits = (uint8_t)max;
    if (slash) {
        char *end;
        unsigned long bits = strtoul(slash + 1, &end, 10);
        if (!slash[1] || *end || bits > max) {
            *why = "prefix length out of range (0-32 for IPv4, 0-128 for IPv6)";
            return -1;
        }
        e.bits = (uint8_t)bits;
    }
    if (l->n == NETLIST_MAX) {
        *why = "too many entries (at most 32)";
        return -1;
    }
    l->e[l->n++] = e;
    return 0;
}

/* The first bits of a and b are equal. */
static int prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole))
        return 0;
    if (!rest)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

/* fd's peer as family (4 or 6) and bytes, an IPv4-mapped address as IPv4.
 * 0 when it has none. */
static int peer_of(int fd, uint8_t addr[16])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len))
        return 0;
    if (ss.ss_family == AF_INET) {
        memcpy(addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        return 4;
    }
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            memcpy(addr, a6->s6_addr + 12, 4);
            return 4;
        }
        memcpy(addr, a6->s6_addr, 16);
        return 6;
    }
    return 0;
}

static void peer_text(int family, const uint8_t *addr, char *peer, size_t cap)
{
    if (!family || !inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, peer, (socklen_t)cap))
        peer[0] = 0;
}

void netlist_peer_text(int fd, char *peer, size_t cap)
{
    uint8_t addr[16];
    peer_text(peer_of(fd, addr), addr, peer, cap);
}

int netlist_match_addr(const netlist *l, int family, const uint8_t addr[16])
{
    for (uint32_t i = 0; family && i < l->n; i++)
        if (l->e[i].family == family && prefix_equal(l->e[i].addr, addr, l->e[i].bits))
            return 1;
    return 0;
}

int netlist_match_fd(const netlist *l, int fd, char *peer, size_t cap)
{
    uint8_t addr[16];
    int family = peer_of(fd, addr);
    if (peer)
        peer_text(family, addr, peer, cap);
    return netlist_match_addr(l, family, addr);
}

int netlist_peer_addr(int fd, uint8_t addr[16])
{
    memset(addr, 0, 16);
    return peer_of(fd, addr);
}

int netlist_parse_addr(const char *text, uint8_t addr[16])
{
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, text, addr) == 1)
        return 4;
    if (inet_pton(AF_INET6, text, addr) != 1)
        return 0;
    if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)addr)) {
        memmove(addr, addr + 12, 4);
        memset(addr + 4, 0, 12);
        return 4;
    }
    return 6;
}

void netlist_addr_text(int family, const uint8_t addr[16], char *out, size_t cap)
{
    peer_text(family, addr, out, cap);
}
