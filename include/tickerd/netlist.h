/*
 * netlist.h — lists of addresses and networks ("127.0.0.1", "::1",
 * "10.0.0.0/8", "2001:db8::/32") and whether a connection's peer is in one.
 *
 * Fixed size (NETLIST_MAX entries, no allocation), so a config can hold one
 * by value and a reload replaces it by assignment. IPv4 peers that arrive as
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, a dual-stack listener) match
 * the IPv4 entries.
 */
#ifndef TICKERD_NETLIST_H
#define TICKERD_NETLIST_H
#include <stddef.h>
#include <stdint.h>

#define NETLIST_MAX 32
/* Longest text form of a peer address (INET6_ADDRSTRLEN). */
#define NETLIST_ADDR_TEXT 46

typedef struct netlist_entry {
    uint8_t family; /* 4 or 6 */
    uint8_t bits;   /* prefix length */
    uint8_t addr[16];
} netlist_entry;

typedef struct netlist {
    netlist_entry e[NETLIST_MAX];
    uint32_t n;
} netlist;

/* Append "addr" or "addr/bits". 0, or -1 when text is not an address or
 * network, or the list is full (why: a static message). */
int netlist_add(netlist *l, const char *text, const char **why);
/* Is the peer of the connected socket fd in l? Its address as text goes to
 * peer (cap >= NETLIST_ADDR_TEXT) when not NULL ("" if unknown). A socket
 * without a peer address (a Unix socket) is in no list. */
int netlist_match_fd(const netlist *l, int fd, char *peer, size_t cap);
/* The peer address of fd as text ("" when unknown); IPv4-mapped shown as IPv4. */
void netlist_peer_text(int fd, char *peer, size_t cap);
/* The peer of fd as bytes: returns its family (4 or 6; an IPv4-mapped
 * address as 4, in addr[0..4)), 0 when it has none. */
int netlist_peer_addr(int fd, uint8_t addr[16]);
/* The address in text (no prefix length; an IPv4-mapped one as IPv4):
 * its family (4 or 6), 0 when it is not an address. */
int netlist_parse_addr(const char *text, uint8_t addr[16]);
/* Is the address (family 4 or 6, bytes as above) in l? */
int netlist_match_addr(const netlist *l, int family, const uint8_t addr[16]);
/* Text of an address as above (cap >= NETLIST_ADDR_TEXT). */
void netlist_addr_text(int family, const uint8_t addr[16], char *out, size_t cap);

#endif
