// SPDX-License-Identifier: Apache-2.0
//
// esprit's XDP program: decides per frame whether the kernel or the fast path
// (an AF_XDP socket of the receive queue) gets it.
//
//   to the kernel (XDP_PASS)   ARP, non-IP ethertypes, IPv6 ND / link-local /
//                              multicast, IPv4 broadcast / multicast, IKE
//                              (UDP dst 500, UDP dst 4500 with the RFC 3948
//                              non-ESP marker or a NAT keepalive) and anything
//                              else addressed to a local address, including
//                              fragments of it (the kernel reassembles IKE);
//   to AF_XDP (redirect)       transit traffic (destination not local) and ESP
//                              addressed to a local address (IP protocol 50,
//                              or UDP dst 4500 whose first word, the SPI, is
//                              not zero: RFC 3948 §2.2), their fragments too
//                              (the fast path reassembles them).
//
// Userspace fills `local_v4` / `local_v6` with the gateway's own addresses and
// `xsks` with one AF_XDP socket per receive queue. A frame meant for the fast
// path on a queue with no socket is dropped, never passed to the kernel to
// forward in clear (DESIGN.md §7), and counted as V_NO_SOCKET and per queue
// in `no_socket`.
//
// Every verdict is counted in the per-CPU array `verdicts`; the indices are
// mirrored by `esprit_xdp::Verdict` in src/verdict.rs: keep them in step.
//
// Headers are declared here (not taken from <linux/*.h>) so the object builds
// with nothing but clang and libbpf's bpf_helpers.h.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ETH_P_IPV6 0x86DD
#define IPPROTO_UDP_ 17
#define IPPROTO_ESP_ 50
#define IPPROTO_ICMPV6_ 58
#define IKE_PORT 500
#define NATT_PORT 4500

enum verdict {
	V_PASS_ARP = 0,
	V_PASS_NON_IP = 1,
	V_PASS_IPV6_CONTROL = 2,
	V_PASS_IKE = 3,
	V_PASS_IKE_NATT = 4,
	V_PASS_LOCAL = 5,
	V_PASS_MALFORMED = 6,
	V_PASS_BCAST_MCAST = 7,
	V_REDIRECT_TRANSIT = 8,
	V_REDIRECT_ESP = 9,
	V_REDIRECT_ESP_UDP = 10,
	V_NO_SOCKET = 11,
	V_COUNT = 12,
};

struct eth_hdr {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
} __attribute__((packed));

struct ipv4_hdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__be16 check;
	__be32 saddr;
	__be32 daddr;
} __attribute__((packed));

struct ipv6_addr {
	__u8 b[16];
};

struct ipv6_hdr {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	struct ipv6_addr saddr;
	struct ipv6_addr daddr;
} __attribute__((packed));

struct udp_hdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__be16 check;
} __attribute__((packed));

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// Key: IPv4 address in network byte order.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} local_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct ipv6_addr);
	__type(value, __u8);
} local_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, V_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

// Frames dropped for want of a socket, by rx queue (the `xsks` index).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} no_socket SEC(".maps");

static __always_inline int count(__u32 v, int action)
{
	__u64 *c = bpf_map_lookup_elem(&verdicts, &v);
	if (c)
		*c += 1;
	return action;
}

static __always_inline int to_kernel(__u32 v)
{
	return count(v, XDP_PASS);
}

static __always_inline int to_fast_path(struct xdp_md *ctx, __u32 v)
{
	// Fails closed: no socket at this queue's index means XDP_DROP.
	__u32 queue = ctx->rx_queue_index;
	int action = bpf_redirect_map(&xsks, queue, XDP_DROP);
	if (action == XDP_REDIRECT)
		return count(v, XDP_REDIRECT);
	__u64 *n = bpf_map_lookup_elem(&no_socket, &queue);
	if (n)
		*n += 1;
	return count(V_NO_SOCKET, XDP_DROP);
}

// Local traffic on UDP: IKE to the kernel, ESP-in-UDP to the fast path.
// `udp` is known to be followed by at least 0 bytes; checks the 4 more it reads.
static __always_inline int local_udp(struct xdp_md *ctx, struct udp_hdr *udp, void *data_end)
{
	__u16 dport = bpf_ntohs(udp->dest);
	if (dport == IKE_PORT)
		return to_kernel(V_PASS_IKE);
	if (dport == NATT_PORT) {
		__u32 *marker = (void *)(udp + 1);
		// Shorter than a word: a NAT keepalive (one 0xff byte, RFC 3948 §2.3).
		if ((void *)(marker + 1) > data_end)
			return to_kernel(V_PASS_IKE_NATT);
		if (*marker == 0)
			return to_kernel(V_PASS_IKE_NATT);
		return to_fast_path(ctx, V_REDIRECT_ESP_UDP);
	}
	return to_kernel(V_PASS_LOCAL);
}

// Outer fragments of ESP-in-UDP datagrams to us: the datagrams whose first
// fragment was ESP-in-UDP (UDP 4500, SPI not zero), by (source, destination,
// identification); least recently used entries give way. ESP's own
// fragments (protocol 50) need no entry: they all go to the fast path.
struct frag_key {
	__be32 saddr;
	__be32 daddr;
	__be16 id;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct frag_key);
	__type(value, __u8);
} esp_udp_frags SEC(".maps");

// A UDP fragment to us. Only the first fragment has the ports: an
// ESP-in-UDP first fragment goes to the fast path, which reassembles the
// datagram before ESP processing (RFC 4303 §3.4.1), and leaves its identity
// for the later fragments to follow it. Every other fragment (IKE's above
// all: large IKE messages arrive fragmented) goes to the kernel, which
// reassembles it for controld's socket. A later fragment that arrives
// before its first one goes to the kernel: that datagram is lost, in both
// places, to their reassembly timeouts.
static __always_inline int local_fragment(struct xdp_md *ctx, struct ipv4_hdr *ip, __u32 ihl,
					  void *data_end)
{
	if (ip->protocol != IPPROTO_UDP_)
		return to_kernel(V_PASS_LOCAL);
	struct frag_key key = { .saddr = ip->saddr, .daddr = ip->daddr, .id = ip->id, .pad = 0 };
	if (bpf_ntohs(ip->frag_off) & 0x1fff) {
		if (bpf_map_lookup_elem(&esp_udp_frags, &key))
			return to_fast_path(ctx, V_REDIRECT_ESP_UDP);
		return to_kernel(V_PASS_LOCAL);
	}
	struct udp_hdr *udp = (void *)ip + ihl;
	__u32 *marker = (void *)(udp + 1);
	if ((void *)(marker + 1) > data_end)
		return to_kernel(V_PASS_MALFORMED);
	if (bpf_ntohs(udp->dest) == NATT_PORT && *marker != 0) {
		__u8 one = 1;
		bpf_map_update_elem(&esp_udp_frags, &key, &one, BPF_ANY);
		return to_fast_path(ctx, V_REDIRECT_ESP_UDP);
	}
	// An IKE datagram reusing an identification: its fragments are not ours.
	bpf_map_delete_elem(&esp_udp_frags, &key);
	return to_kernel(V_PASS_LOCAL);
}

static __always_inline int handle_ipv4(struct xdp_md *ctx, void *l3, void *data_end)
{
	struct ipv4_hdr *ip = l3;
	if ((void *)(ip + 1) > data_end)
		return to_kernel(V_PASS_MALFORMED);
	if ((ip->ver_ihl >> 4) != 4)
		return to_kernel(V_PASS_MALFORMED);
	__u32 ihl = (ip->ver_ihl & 0x0f) * 4;
	if (ihl < sizeof(*ip))
		return to_kernel(V_PASS_MALFORMED);

	__u32 daddr = ip->daddr;
	// 224.0.0.0/4 and the limited broadcast belong to the kernel.
	if ((bpf_ntohl(daddr) & 0xf0000000) == 0xe0000000 || daddr == 0xffffffff)
		return to_kernel(V_PASS_BCAST_MCAST);

	if (!bpf_map_lookup_elem(&local_v4, &daddr))
		return to_fast_path(ctx, V_REDIRECT_TRANSIT);

	if (ip->protocol == IPPROTO_ESP_)
		return to_fast_path(ctx, V_REDIRECT_ESP);
	// A fragment (MF set or offset non-zero) to us: see local_fragment.
	if (bpf_ntohs(ip->frag_off) & 0x3fff)
		return local_fragment(ctx, ip, ihl, data_end);
	if (ip->protocol != IPPROTO_UDP_)
		return to_kernel(V_PASS_LOCAL);

	struct udp_hdr *udp = l3 + ihl;
	if ((void *)(udp + 1) > data_end)
		return to_kernel(V_PASS_MALFORMED);
	return local_udp(ctx, udp, data_end);
}

static __always_inline int handle_ipv6(struct xdp_md *ctx, void *l3, void *data_end)
{
	struct ipv6_hdr *ip = l3;
	if ((void *)(ip + 1) > data_end)
		return to_kernel(V_PASS_MALFORMED);

	// Link-local (fe80::/10) on either side, and multicast destinations
	// (ND's solicited-node addresses among them) stay with the kernel.
	if ((ip->saddr.b[0] == 0xfe && (ip->saddr.b[1] & 0xc0) == 0x80) ||
	    (ip->daddr.b[0] == 0xfe && (ip->daddr.b[1] & 0xc0) == 0x80) || ip->daddr.b[0] == 0xff)
		return to_kernel(V_PASS_IPV6_CONTROL);

	if (ip->nexthdr == IPPROTO_ICMPV6_) {
		__u8 *type = (void *)(ip + 1);
		if ((void *)(type + 1) > data_end)
			return to_kernel(V_PASS_MALFORMED);
		// RS, RA, NS, NA, Redirect (RFC 4861 §4).
		if (*type >= 133 && *type <= 137)
			return to_kernel(V_PASS_IPV6_CONTROL);
	}

	struct ipv6_addr daddr = ip->daddr;
	if (!bpf_map_lookup_elem(&local_v6, &daddr))
		return to_fast_path(ctx, V_REDIRECT_TRANSIT);

	// Extension headers are not walked: anything but ESP or plain UDP to us
	// goes to the kernel.
	if (ip->nexthdr == IPPROTO_ESP_)
		return to_fast_path(ctx, V_REDIRECT_ESP);
	if (ip->nexthdr != IPPROTO_UDP_)
		return to_kernel(V_PASS_LOCAL);

	struct udp_hdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end)
		return to_kernel(V_PASS_MALFORMED);
	return local_udp(ctx, udp, data_end);
}

SEC("xdp")
int esprit_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	struct eth_hdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return to_kernel(V_PASS_MALFORMED);

	__u16 proto = bpf_ntohs(eth->proto);
	if (proto == ETH_P_IP)
		return handle_ipv4(ctx, eth + 1, data_end);
	if (proto == ETH_P_IPV6)
		return handle_ipv6(ctx, eth + 1, data_end);
	if (proto == ETH_P_ARP)
		return to_kernel(V_PASS_ARP);
	// VLAN tags (0x8100 / 0x88a8) are not handled yet: the kernel gets them.
	return to_kernel(V_PASS_NON_IP);
}

// No GPL-only helper is used, so the project's own licence can be declared.
char _license[] SEC("license") = "Apache-2.0";
