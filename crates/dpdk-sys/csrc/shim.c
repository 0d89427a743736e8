#include "shim.h"

uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                               uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                               uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

int shim_anycast6_pktmbuf_alloc_bulk_len(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                         unsigned int count, uint16_t len)
{
	unsigned int i;
	int ret;

	if ((uint32_t)len + RTE_PKTMBUF_HEADROOM > rte_pktmbuf_data_room_size(mp))
		return -EINVAL;
	ret = rte_mempool_get_bulk(mp, (void **)mbufs, count);
	if (ret != 0)
		return ret;
	for (i = 0; i < count; i++) {
		struct rte_mbuf *m = mbufs[i];

		/* rte_pktmbuf_reset without its two stores to the mbuf's second cache line:
		 * refcnt 1, one segment and next = NULL hold for every mbuf in a pool
		 * (rte_mbuf_raw_alloc's contract, asserted below in RTE_ENABLE_ASSERT builds), and
		 * tx_offload is read only under the offload flags cleared here; a caller that
		 * requests a TX offload must set tx_offload itself. What the last user left in
		 * the first line is reset here, as rte_pktmbuf_alloc_bulk does. */
		__rte_mbuf_raw_sanity_check(m);
		m->data_off = RTE_MIN((uint16_t)RTE_PKTMBUF_HEADROOM, m->buf_len);
		m->nb_segs = 1;
		m->port = RTE_MBUF_PORT_INVALID;
		m->ol_flags &= RTE_MBUF_F_EXTERNAL;
		m->packet_type = 0;
		m->vlan_tci = 0;
		m->vlan_tci_outer = 0;
		m->data_len = len;
		m->pkt_len = len;
		/* The caller writes every packet next. */
		rte_prefetch0(rte_pktmbuf_mtod(m, char *));
	}
	return 0;
}

void shim_rte_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

void shim_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count)
{
	rte_pktmbuf_free_bulk(mbufs, count);
}

char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

void *shim_rte_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t shim_rte_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t shim_rte_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

uint16_t shim_rte_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

uint16_t shim_rte_pktmbuf_nb_segs(const struct rte_mbuf *m)
{
	return m->nb_segs;
}

uint16_t shim_rte_pktmbuf_port(const struct rte_mbuf *m)
{
	return m->port;
}

uint32_t shim_rte_pktmbuf_rss_hash(const struct rte_mbuf *m)
{
	return m->hash.rss;
}

uint64_t shim_rte_pktmbuf_ol_flags(const struct rte_mbuf *m)
{
	return m->ol_flags;
}

int shim_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m)
{
	return rte_pktmbuf_is_contiguous(m);
}

int shim_rte_pktmbuf_linearize(struct rte_mbuf *m)
{
	return rte_pktmbuf_linearize(m);
}

uint16_t shim_rte_pktmbuf_data_room_size(struct rte_mempool *mp)
{
	return rte_pktmbuf_data_room_size(mp);
}

uint16_t shim_rte_mbuf_refcnt_read(const struct rte_mbuf *m)
{
	return rte_mbuf_refcnt_read(m);
}

uint16_t shim_rte_mbuf_refcnt_update(struct rte_mbuf *m, int16_t value)
{
	return rte_mbuf_refcnt_update(m, value);
}

unsigned int shim_rte_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t shim_rte_rdtsc(void)
{
	return rte_rdtsc();
}

uint64_t shim_rte_get_tsc_hz(void)
{
	return rte_get_tsc_hz();
}

int shim_rte_errno(void)
{
	return rte_errno;
}

uint64_t shim_rte_eth_rss_ipv6_addresses(void)
{
	return RTE_ETH_RSS_IPV6 | RTE_ETH_RSS_FRAG_IPV6 | RTE_ETH_RSS_NONFRAG_IPV6_OTHER |
	       RTE_ETH_RSS_IPV6_EX;
}

uint64_t shim_rte_eth_rss_ipv6_5tuple(void)
{
	return shim_rte_eth_rss_ipv6_addresses() | RTE_ETH_RSS_NONFRAG_IPV6_TCP |
	       RTE_ETH_RSS_NONFRAG_IPV6_UDP | RTE_ETH_RSS_NONFRAG_IPV6_SCTP |
	       RTE_ETH_RSS_IPV6_TCP_EX | RTE_ETH_RSS_IPV6_UDP_EX;
}

uint64_t shim_rte_eth_tx_offload_mbuf_fast_free(void)
{
	return RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
}
