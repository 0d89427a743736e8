/*
 * Out-of-line wrappers for DPDK's static inline functions and macros, which have no symbol
 * in the shared libraries and so cannot be called from Rust directly.
 */
#ifndef ANYCAST6_DPDK_SHIM_H
#define ANYCAST6_DPDK_SHIM_H

#include <stdint.h>

#include <rte_config.h>
#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_prefetch.h>
#include <rte_version.h>

/* ethdev fast path */
uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                               uint16_t nb_pkts);
uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                               uint16_t nb_pkts);

/* mbuf allocation */
struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp);
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned int count);
/*
 * Allocates `count` mbufs (all or none) and gives each a single segment of `len` bytes at
 * the default headroom, contents unset: rte_pktmbuf_alloc_bulk and the length update of
 * rte_pktmbuf_append in one call, for generators that then write every byte. Returns 0,
 * -ENOENT when the pool is short, or -EINVAL when `len` does not fit after the headroom.
 */
int shim_anycast6_pktmbuf_alloc_bulk_len(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                         unsigned int count, uint16_t len);
void shim_rte_pktmbuf_free(struct rte_mbuf *m);
/* rte_pktmbuf_free_bulk is exported by librte_mbuf; re-exported here for symmetry */
void shim_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);

/* mbuf data window */
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
void *shim_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t shim_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_nb_segs(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_port(const struct rte_mbuf *m);
uint32_t shim_rte_pktmbuf_rss_hash(const struct rte_mbuf *m);
uint64_t shim_rte_pktmbuf_ol_flags(const struct rte_mbuf *m);
int shim_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m);
int shim_rte_pktmbuf_linearize(struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_data_room_size(struct rte_mempool *mp);

/* mbuf reference count */
uint16_t shim_rte_mbuf_refcnt_read(const struct rte_mbuf *m);
uint16_t shim_rte_mbuf_refcnt_update(struct rte_mbuf *m, int16_t value);

/* lcores, time, errors */
unsigned int shim_rte_lcore_id(void);
uint64_t shim_rte_rdtsc(void);
uint64_t shim_rte_get_tsc_hz(void);
int shim_rte_errno(void);

/* Values of function-like macros (RTE_BIT64(...)) that bindgen cannot evaluate. */
uint64_t shim_rte_eth_rss_ipv6_addresses(void);
uint64_t shim_rte_eth_rss_ipv6_5tuple(void);
uint64_t shim_rte_eth_tx_offload_mbuf_fast_free(void);

#endif
