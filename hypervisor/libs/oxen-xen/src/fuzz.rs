//! Randomized operation sequences with hostile arguments: nothing may
//! panic and the cross-domain invariants must hold after every step.

use alloc::vec::Vec;

use oxen_types::{DomId, Ipa, PhysAddr, VcpuId};
use xen_abi::grant_table::{GTF_READING, GTF_WRITING};

use crate::Peer;
use crate::evtchn::{
    self, ChannelState, DomainEvtchn, EventBitsModel, EvtchnConfig, GuestEventBits, Port,
    SendAction,
};
use crate::grant::{self, GrantConfig, GrantTable, MapRequest, VecGrantEntries};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Mostly small values, sometimes huge ones.
    fn arg(&mut self, small: u64) -> u32 {
        match self.below(10) {
            0 => u32::MAX - self.below(3) as u32,
            1 => self.next() as u32,
            _ => self.below(small) as u32,
        }
    }
}

/// Two distinct `&mut` elements of a slice.
fn two<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b);
    if a < b {
        let (l, r) = v.split_at_mut(b);
        (&mut l[a], &mut r[0])
    } else {
        let (l, r) = v.split_at_mut(a);
        (&mut r[0], &mut l[b])
    }
}

fn domids() -> [DomId; 3] {
    [DomId(0), DomId(1), DomId(2)]
}

fn check_evtchn_invariants(tabs: &[DomainEvtchn]) {
    for t in tabs {
        assert_eq!(t.channel(Port(0)).unwrap().state, ChannelState::Reserved);
        for (p, c) in t.ports_in_use() {
            assert!(p.0 < t.max_ports());
            assert!(c.notify.0 < t.nr_vcpus());
            match c.state {
                ChannelState::Interdomain {
                    remote,
                    remote_port,
                } => {
                    let r = &tabs[remote.0 as usize];
                    assert_eq!(
                        r.channel(remote_port).unwrap().state,
                        ChannelState::Interdomain {
                            remote: t.domid(),
                            remote_port: p
                        },
                        "mirror of {} {p}",
                        t.domid()
                    );
                }
                ChannelState::Virq { virq } => {
                    assert_eq!(t.virq_port(c.notify, virq), Some(p));
                }
                ChannelState::Reserved | ChannelState::Free => panic!("bad state at {p}"),
                _ => {}
            }
        }
    }
}

#[test]
fn random_event_channel_sequences() {
    let (mut binds, mut closes, mut sends) = (0u32, 0u32, 0u32);
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let ids = domids();
        let mut tabs: Vec<DomainEvtchn> = ids
            .iter()
            .map(|&d| {
                DomainEvtchn::new(EvtchnConfig {
                    domid: d,
                    nr_vcpus: 2,
                    max_ports: 40,
                    global_virq_handler: d == DomId(0),
                })
            })
            .collect();
        let mut bits: Vec<EventBitsModel> = ids.iter().map(|_| EventBitsModel::new(2)).collect();
        for _ in 0..400 {
            let me = rng.below(3) as usize;
            let other = rng.below(3) as usize;
            let port = Port(rng.arg(48));
            let vcpu = VcpuId(rng.arg(3));
            match rng.below(12) {
                0 | 11 => {
                    let remote = DomId(rng.below(4) as u16);
                    let _ = tabs[me].alloc_unbound(ids[me], remote);
                }
                1 => {
                    // Mostly a port that is really offered to us.
                    let offered: Vec<Port> = tabs[other]
                        .ports_in_use()
                        .filter(|(_, c)| c.state == ChannelState::Unbound { remote: ids[me] })
                        .map(|(p, _)| p)
                        .collect();
                    let port = if !offered.is_empty() && rng.below(4) != 0 {
                        offered[rng.below(offered.len() as u64) as usize]
                    } else {
                        port
                    };
                    let res = if me == other {
                        evtchn::bind_interdomain(
                            &mut tabs[me],
                            Peer::Same,
                            ids[me],
                            port,
                            &mut bits[me],
                        )
                    } else {
                        let (l, r) = two(&mut tabs, me, other);
                        evtchn::bind_interdomain(l, Peer::Other(r), ids[other], port, &mut bits[me])
                    };
                    if let Ok(b) = res {
                        binds += 1;
                        assert!(bits[me].is_pending(b.port));
                    }
                }
                2 => {
                    let _ = tabs[me].bind_virq(rng.arg(26), vcpu);
                }
                3 => {
                    let _ = tabs[me].bind_ipi(vcpu);
                }
                4 | 5 => {
                    let res = match tabs[me].peer_domain(port) {
                        Some(peer) if peer != ids[me] => {
                            let (l, r) = two(&mut tabs, me, peer.0 as usize);
                            evtchn::close(l, port, Peer::Other(r), &mut bits[me])
                        }
                        _ => evtchn::close(&mut tabs[me], port, Peer::Same, &mut bits[me]),
                    };
                    if res.is_ok() {
                        closes += 1;
                        assert_eq!(tabs[me].channel(port).unwrap().state, ChannelState::Free);
                        assert!(!bits[me].is_pending(port));
                    }
                }
                6 | 7 => {
                    match tabs[me].send(match tabs[me].ports_in_use().nth(rng.below(8) as usize) {
                        Some((p, _)) if rng.below(4) != 0 => p,
                        _ => port,
                    }) {
                        Ok(SendAction::Remote {
                            dom,
                            from,
                            port: rp,
                        }) => {
                            let d = dom.0 as usize;
                            let _ = tabs[d].deliver_from(ids[me], from, rp, &mut bits[d]);
                            sends += 1;
                            assert!(bits[d].is_pending(rp));
                        }
                        Ok(SendAction::Local { port: lp }) => {
                            let _ = tabs[me].deliver(lp, &mut bits[me]);
                            assert!(bits[me].is_pending(lp));
                        }
                        Ok(SendAction::Dropped) | Err(_) => {}
                    }
                }
                8 => {
                    let _ = tabs[me].bind_vcpu(port, vcpu);
                }
                9 => {
                    bits[me].set_mask(port, rng.below(2) == 0);
                    let _ = tabs[me].unmask(port, &mut bits[me]);
                    let _ = tabs[me].raise_virq(vcpu, rng.arg(26), &mut bits[me]);
                }
                _ => {
                    let _ = bits[me].guest_upcall(vcpu, |_| rng.below(2) == 0);
                    let _ = tabs[me].status(port);
                }
            }
            check_evtchn_invariants(&tabs);
        }
    }
    // The sequences reach the interesting paths, not only error returns.
    assert!(
        binds > 50 && closes > 200 && sends > 50,
        "{binds} {closes} {sends}"
    );
}

#[test]
fn random_grant_sequences() {
    let (mut maps, mut unmaps) = (0u32, 0u32);
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
        let ids = domids();
        let mut tabs: Vec<GrantTable> = ids
            .iter()
            .map(|&d| {
                GrantTable::new(GrantConfig {
                    domid: d,
                    max_frames: 4,
                    max_maptrack: 64,
                })
            })
            .collect();
        let mut tainted: Vec<(usize, u32)> = Vec::new();
        let mut ents: Vec<VecGrantEntries> =
            ids.iter().map(|_| VecGrantEntries::new(512 * 4)).collect();
        for _ in 0..600 {
            let me = rng.below(3) as usize;
            let g = rng.below(3) as usize;
            let gref = if rng.below(8) == 0 {
                rng.arg(1100)
            } else {
                rng.below(24) as u32
            };
            match rng.below(8) {
                0 => {
                    let n = if rng.below(8) == 0 { 5 } else { 3 };
                    let to = DomId(rng.below(n) as u16);
                    // A well-behaved guest reuses only entries not in use; a
                    // hostile one scribbles over any entry (only hurting
                    // itself: those refs are exempt from the flag check).
                    let busy = ents[me].flags(gref) & (GTF_READING | GTF_WRITING) != 0;
                    if busy && rng.below(4) == 0 {
                        if let Some(e) = ents[me].entries.get_mut(gref as usize) {
                            e.flags = rng.next() as u16;
                            e.domid = rng.below(3) as u16;
                        }
                        tainted.push((me, gref));
                    } else if !busy {
                        ents[me].grant(gref, to, rng.next() as u32, rng.below(2) == 0);
                    }
                }
                1 => {
                    let _ = ents[me].revoke(gref);
                }
                2 => {
                    let _ = tabs[me].add_to_physmap(u64::from(rng.arg(6)), rng.below(1 << 20));
                }
                3 | 4 => {
                    let r = MapRequest {
                        host_addr: Ipa(rng.below(1 << 30) << 12),
                        flags: match rng.below(10) {
                            0..=5 => xen_abi::grant_table::GNTMAP_HOST_MAP,
                            6..=8 => {
                                xen_abi::grant_table::GNTMAP_HOST_MAP
                                    | xen_abi::grant_table::GNTMAP_READONLY
                            }
                            _ => rng.arg(32),
                        },
                        gref,
                        dom: ids[g],
                    };
                    let fail = rng.below(8) == 0;
                    let install = |t: &grant::MapTarget| {
                        if fail {
                            Err(grant::GrantError::BadPage)
                        } else {
                            Ok(PhysAddr(t.frame << 12))
                        }
                    };
                    let res = if me == g {
                        grant::map_grant_ref(&mut tabs[me], Peer::Same, &mut ents[g], &r, install)
                    } else {
                        let (m, gt) = two(&mut tabs, me, g);
                        grant::map_grant_ref(m, Peer::Other(gt), &mut ents[g], &r, install)
                    };
                    maps += u32::from(res.is_ok());
                }
                5 | 6 => {
                    let handle = if rng.below(6) == 0 {
                        rng.arg(70)
                    } else {
                        rng.below(12) as u32
                    };
                    let (granter, host) = match tabs[me].mapping(handle) {
                        Some(mp) if rng.below(6) != 0 => (mp.granter.0 as usize, mp.host_addr),
                        _ => (g, Ipa(rng.next())),
                    };
                    let fail = rng.below(8) == 0;
                    let remove = |_: &grant::Mapping| {
                        if fail {
                            Err(grant::GrantError::MappingFailed)
                        } else {
                            Ok(())
                        }
                    };
                    let res = if me == granter {
                        grant::unmap_grant_ref(
                            &mut tabs[me],
                            Peer::Same,
                            &mut ents[granter],
                            handle,
                            host,
                            remove,
                        )
                    } else {
                        let (m, gt) = two(&mut tabs, me, granter);
                        grant::unmap_grant_ref(
                            m,
                            Peer::Other(gt),
                            &mut ents[granter],
                            handle,
                            host,
                            remove,
                        )
                    };
                    unmaps += u32::from(res.is_ok());
                }
                _ => {
                    if let Ok(c) = grant::acquire_for_copy(
                        &mut tabs[g],
                        &mut ents[g],
                        gref,
                        ids[me],
                        rng.below(2) == 0,
                    ) {
                        grant::release_for_copy(&mut tabs[g], &mut ents[g], c).unwrap();
                    }
                }
            }
            // Invariants: every pin is backed by a mapping; the entry flags
            // mirror the pins; the maptrack stays within its bound.
            for (gi, gt) in tabs.iter().enumerate() {
                assert!(gt.query_size().0 <= 4);
                for r in 0..gt.nr_entries().min(1100) {
                    let flags = ents[gi].flags(r);
                    match gt.active(r) {
                        Some(a) => {
                            let maps: Vec<_> = tabs[a.holder.0 as usize]
                                .mappings()
                                .filter(|(_, m)| m.granter == ids[gi] && m.gref == r)
                                .map(|(_, m)| m.readonly)
                                .collect();
                            let ro = maps.iter().filter(|r| **r).count() as u32;
                            assert_eq!((a.pins_ro, a.pins_rw), (ro, maps.len() as u32 - ro));
                            if !tainted.contains(&(gi, r)) {
                                assert!(flags & GTF_READING != 0);
                                assert_eq!(flags & GTF_WRITING != 0, a.pins_rw > 0);
                            }
                        }
                        None if tainted.contains(&(gi, r)) => {}
                        None => assert_eq!(flags & (GTF_READING | GTF_WRITING), 0, "d{gi} ref {r}"),
                    }
                }
            }
            for t in &tabs {
                assert!(t.mapping_count() <= 64);
                assert_eq!(t.mappings().count() as u32, t.mapping_count());
            }
        }
    }
    assert!(maps > 60 && unmaps > 40, "{maps} {unmaps}");
}
