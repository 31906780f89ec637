/* SPDX-License-Identifier: MIT */
/**
 * @file gx_urcu.h
 * The one place that chooses the liburcu flavour: the default (memb) flavour,
 * because QSBR needs a hook on every loop iteration that Debian's libevent 2.1
 * does not offer.  Everything else includes this header, never <urcu*.h>.
 *
 * Rules (STYLE 4): readers wrap each lookup in rcu_read_lock/unlock and keep
 * no registry pointer across a callback or a GX_AGAIN (one exception, proved
 * where it is: gx_reg_pool_find()'s per-thread memo of the last pool, which
 * is checked again under the read lock before use); writers publish fully
 * built objects; whoever wins cds_lfht_del frees with call_rcu; workers never
 * call synchronize_rcu; rcu_barrier() before teardown.
 */
#ifndef GX_CORE_GX_URCU_H
#define GX_CORE_GX_URCU_H

#include <urcu.h>
#include <urcu/rculfhash.h>

#endif /* GX_CORE_GX_URCU_H */
