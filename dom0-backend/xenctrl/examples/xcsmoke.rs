//! `xcsmoke`: drive every xenctrl call against the running hypervisor, in
//! the order `xl create` uses them, on a throw-away paused domain that is
//! destroyed at the end (also on failure). One line per step
//! (`xcsmoke: <step>: ok ...` / `FAIL ...`), then `xcsmoke: PASS n/n` or
//! `xcsmoke: FAIL k/n`; exit status 0 only if every step passed.
//! Runs unchanged in Dom0 on Xen 4.17 and on oxen, to compare the two.

#[cfg(target_os = "linux")]
mod smoke {
    use xenctrl::xen_abi::domctl as dc;
    use xenctrl::xen_abi::event_channel::{
        EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_UNBOUND, VIRQ_DOM_EXC,
    };
    use xenctrl::xen_abi::hvm::HVM_PARAM_STORE_PFN;
    use xenctrl::xen_abi::hypercall::ShutdownReason;
    use xenctrl::xen_abi::memory::XENMEM_RESOURCE_GRANT_TABLE;
    use xenctrl::{Error, Evtchn, ForeignMap, Result, Xc, XenbusBackend};

    struct Run {
        passed: u32,
        failed: u32,
    }

    impl Run {
        fn step<T>(
            &mut self,
            name: &str,
            r: Result<T>,
            show: impl FnOnce(&T) -> String,
        ) -> Option<T> {
            match r {
                Ok(v) => {
                    println!("xcsmoke: {name}: ok {}", show(&v));
                    self.passed += 1;
                    Some(v)
                }
                Err(e) => {
                    println!("xcsmoke: {name}: FAIL {e}");
                    self.failed += 1;
                    None
                }
            }
        }

        fn check(&mut self, name: &str, ok: bool, detail: String) {
            let r = if ok {
                Ok(())
            } else {
                Err(Error::Invalid {
                    op: "check",
                    what: detail.clone(),
                })
            };
            self.step(name, r, |_| detail);
        }
    }

    const RAM_GFN: u64 = 0x40000;
    const MAGIC_GFN: u64 = 0x39000;

    pub fn main() -> i32 {
        let mut run = Run {
            passed: 0,
            failed: 0,
        };
        let Some(xc) = run.step("open", Xc::open(), |_| String::new()) else {
            return 1;
        };
        run.step("xen_version", xc.xen_version(), |v| {
            format!("{}.{}", v.0, v.1)
        });
        run.step("capabilities", xc.xen_capabilities(), |s| format!("{s:?}"));
        run.step("extraversion", xc.xen_extraversion(), |s| format!("{s:?}"));
        run.step("pagesize", xc.xen_pagesize(), |v| v.to_string());
        run.step("compile_info", xc.xen_compile_info(), |c| format!("{c:?}"));
        run.step("changeset", xc.xen_changeset(), |s| format!("{s:?}"));
        run.step("commandline", xc.xen_commandline(), |s| format!("{s:?}"));
        run.step("build_id", xc.xen_build_id(), |b| {
            format!("{} bytes", b.len())
        });
        let phys = run.step("physinfo", xc.physinfo(), |p| {
            format!(
                "nr_cpus={} max_cpu_id={} nr_nodes={} cpu_khz={} caps={:#x} total_pages={} free_pages={}",
                p.nr_cpus, p.max_cpu_id, p.nr_nodes, p.cpu_khz, p.capabilities, p.total_pages, p.free_pages
            )
        });
        run.step("sched_id", xc.sched_id(), |v| v.to_string());
        run.step("cpupool_info", xc.cpupool_info(0), |p| format!("{p:?}"));
        run.step("cpupool_freeinfo", xc.cpupool_freeinfo(), |m| {
            format!("{:?}", xenctrl::xc::bitmap_cpus(m))
        });
        run.step("cputopoinfo", xc.cputopoinfo(), |v| format!("{v:?}"));
        run.step("numainfo", xc.numainfo(), |v| format!("{v:?}"));
        run.step(
            "readconsole",
            xc.readconsole(false, false, 0, 16384),
            |(b, i)| format!("{} bytes, index {i}", b.len()),
        );
        let list = run.step("getdomaininfolist", xc.domain_getinfolist(0, 1024), |l| {
            l.iter()
                .map(|d| format!("d{} {} {}MiB", d.domid, d.xl_state(), d.mem_mib()))
                .collect::<Vec<_>>()
                .join(", ")
        });
        if let Some(l) = &list {
            run.check(
                "dom0 listed",
                l.first().is_some_and(|d| d.domid == 0),
                format!("{} domains", l.len()),
            );
        }
        run.step("getdomaininfo 0", xc.domain_getinfo(0), |d| {
            format!("{d:?}")
        });
        match XenbusBackend::open() {
            Ok(x) => run.check("xenbus_backend", true, format!("port {}", x.port())),
            Err(e) => println!("xcsmoke: xenbus_backend: skipped ({e})"),
        }

        let max_grant_version = match &phys {
            Some(p)
                if p.capabilities & xenctrl::xen_abi::sysctl::XEN_SYSCTL_PHYSCAP_GNTTAB_V2 != 0 =>
            {
                2
            }
            _ => 1,
        };
        let mut cfg = dc::CreateDomain {
            flags: dc::XEN_DOMCTL_CDF_HVM | dc::XEN_DOMCTL_CDF_HAP,
            max_vcpus: 1,
            max_evtchn_port: 1023,
            max_grant_frames: -1,
            max_maptrack_frames: -1,
            grant_opts: max_grant_version,
            handle: *b"xcsmoke-xcsmoke!",
            ..Default::default()
        };
        let Some(domid) = run.step(
            "createdomain",
            xc.domain_create_with(dc::DOMID_INVALID, &mut cfg),
            |d| {
                format!(
                    "domid {d}, gic_version {}, clock_frequency {}",
                    cfg.arch.gic_version, cfg.arch.clock_frequency
                )
            },
        ) else {
            return finish(&run);
        };
        domain_steps(&mut run, &xc, domid);
        shutdown_steps(&mut run, &xc, domid);
        // Whatever happened above, leave no domain behind.
        if let Ok(Some(_)) = xc.domain_info(domid) {
            run.step("destroydomain (cleanup)", xc.destroy(domid), |_| {
                String::new()
            });
        }
        match xc.destroy(domid) {
            Err(e) if e.xen_errno() == Some(xenctrl::xen_abi::Errno::ESRCH) => {
                run.check("destroy of a gone domain is ESRCH", true, e.to_string())
            }
            Err(e) => run.check("destroy of a gone domain is ESRCH", false, e.to_string()),
            Ok(()) => run.check(
                "destroy of a gone domain is ESRCH",
                false,
                "succeeded".into(),
            ),
        }
        finish(&run)
    }

    fn domain_steps(run: &mut Run, xc: &Xc, domid: u16) {
        let info = run.step("getdomaininfo new", xc.domain_getinfo(domid), |d| {
            format!("{d:?}")
        });
        if let Some(Some(d)) = &info {
            run.check(
                "new domain paused",
                d.domid == domid && d.paused,
                d.xl_state(),
            );
        }
        run.step(
            "setdomainhandle",
            xc.set_domain_handle(domid, b"xcsmoke-handle-2"),
            |_| String::new(),
        );
        run.step("max_vcpus", xc.max_vcpus(domid, 1), |_| String::new());
        run.step("max_mem", xc.max_mem(domid, 16 * 1024 + 1024), |_| {
            String::new()
        });
        let store = run.step(
            "alloc_unbound store",
            xc.evtchn_alloc_unbound(domid, 0),
            |p| format!("port {p}"),
        );
        run.step(
            "alloc_unbound console",
            xc.evtchn_alloc_unbound(domid, 0),
            |p| format!("port {p}"),
        );
        run.step(
            "set_paging_mempool_size",
            xc.set_paging_mempool_size(domid, 2560 << 10),
            |_| String::new(),
        );
        run.step(
            "get_paging_mempool_size",
            xc.get_paging_mempool_size(domid),
            |v| v.to_string(),
        );
        run.step(
            "hvm_set_param callback_irq",
            xc.hvm_set_param(domid, 0, 0x0200_0000_0000_021F),
            |_| String::new(),
        );
        run.step("set_address_size", xc.set_address_size(domid, 64), |_| {
            String::new()
        });
        let gfns: Vec<u64> = (0..16).map(|i| RAM_GFN + i).collect();
        let done = run.step(
            "populate_physmap 16x4K",
            xc.populate_physmap(domid, 0, &gfns),
            |n| format!("{n} done"),
        );
        run.check("populate count", done == Some(16), format!("{done:?}"));
        run.step(
            "populate_physmap 1x2M",
            xc.populate_physmap(domid, 9, &[RAM_GFN + 512]),
            |n| format!("{n} done"),
        );
        let magic: Vec<u64> = (0..4).map(|i| MAGIC_GFN + i).collect();
        run.step(
            "populate_physmap magic",
            xc.populate_physmap(domid, 0, &magic),
            |n| format!("{n} done"),
        );

        // Foreign map: write, unmap, map again, read back.
        let pattern: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
        if let Some(mut m) = run.step(
            "foreign map 2 pages",
            ForeignMap::map(xc, domid, &gfns[..2]),
            |m| format!("{} pages", m.pages()),
        ) {
            m.copy_from_slice(&pattern);
        }
        if let Some(m) = run.step(
            "foreign map again",
            ForeignMap::map(xc, domid, &gfns[..2]),
            |_| String::new(),
        ) {
            run.check("foreign data survives", m[..] == pattern[..], String::new());
        }
        match ForeignMap::map(xc, domid, &[RAM_GFN, 0x7000_0000]) {
            Err(
                e @ Error::ForeignPage {
                    gfn: 0x7000_0000, ..
                },
            ) => run.check("foreign map hole", true, e.to_string()),
            Err(e) => run.check("foreign map hole", false, format!("wrong error: {e}")),
            Ok(_) => run.check("foreign map hole", false, "mapped a hole".into()),
        }
        // The guest's first instruction: `b .` (so unpausing it just spins).
        if let Some(mut m) = run.step(
            "write guest code",
            ForeignMap::map(xc, domid, &[RAM_GFN]),
            |_| String::new(),
        ) {
            m[0..4].copy_from_slice(&0x1400_0000u32.to_le_bytes());
        }
        run.step("cacheflush", xc.cacheflush(domid, RAM_GFN, 16), |_| {
            String::new()
        });

        // Grant table frame 0 through acquire_resource.
        match ForeignMap::map_resource(xc, domid, u32::from(XENMEM_RESOURCE_GRANT_TABLE), 0, 0, 1) {
            Ok(mut g) => {
                // grant_entry_v1[0] = {permit_access, domid 0, frame 0x39000}
                g[0..2].copy_from_slice(&1u16.to_le_bytes());
                g[2..4].copy_from_slice(&0u16.to_le_bytes());
                g[4..8].copy_from_slice(&(MAGIC_GFN as u32).to_le_bytes());
                run.check("grant table via mmap_resource", true, String::new());
            }
            Err(e) => run.check("grant table via mmap_resource", false, e.to_string()),
        }

        // HVM params.
        run.step(
            "hvm_set_param store_pfn",
            xc.hvm_set_param(domid, HVM_PARAM_STORE_PFN, MAGIC_GFN + 1),
            |_| String::new(),
        );
        let v = run.step(
            "hvm_get_param store_pfn",
            xc.hvm_get_param(domid, HVM_PARAM_STORE_PFN),
            |v| format!("{v:#x}"),
        );
        run.check(
            "hvm param round trip",
            v == Some(MAGIC_GFN + 1),
            format!("{v:?}"),
        );

        // Event channels: status, then bind from Dom0 and notify.
        if let Some(port) = store {
            let s = run.step(
                "evtchn_status unbound",
                xc.evtchn_status(domid, port),
                |s| format!("{s:?}"),
            );
            if let Some(s) = s {
                run.check(
                    "status is unbound to dom0",
                    s.status == EVTCHNSTAT_UNBOUND && s.u_dom == 0,
                    format!("status {}", s.status),
                );
            }
            if let Some(ev) = run.step("evtchn open", Evtchn::open(), |_| String::new()) {
                if let Some(local) =
                    run.step("bind_interdomain", ev.bind_interdomain(domid, port), |p| {
                        format!("local {p}")
                    })
                {
                    if let Some(s) =
                        run.step("evtchn_status bound", xc.evtchn_status(domid, port), |s| {
                            format!("{s:?}")
                        })
                    {
                        run.check(
                            "status is interdomain",
                            s.status == EVTCHNSTAT_INTERDOMAIN && s.u_dom == 0 && s.u_word == local,
                            format!("status {} remote port {}", s.status, s.u_word),
                        );
                    }
                    run.step("notify", ev.notify(local), |_| String::new());
                    run.step("pending after bind", ev.pending(), |p| format!("{p:?}"));
                    run.step("unbind", ev.unbind(local), |_| String::new());
                }
                run.step("bind_unbound", ev.bind_unbound(domid), |p| {
                    format!("local {p}")
                });
            }
        }

        // vCPU 0 context as libxl sets it.
        let mut ctx = dc::VcpuGuestContext {
            flags: dc::VGCF_ONLINE,
            sctlr: dc::SCTLR_GUEST_INIT,
            ..Default::default()
        };
        ctx.user_regs.pc64 = RAM_GFN << 12;
        ctx.user_regs.x[0] = (RAM_GFN + 8) << 12;
        ctx.user_regs.cpsr = dc::PSR_GUEST64_INIT;
        run.step(
            "setvcpucontext",
            xc.set_vcpu_context(domid, 0, &ctx),
            |_| String::new(),
        );
        if let Some(c) = run.step("getvcpucontext", xc.get_vcpu_context(domid, 0), |c| {
            format!(
                "pc {:#x} x0 {:#x} cpsr {:#x}",
                c.user_regs.pc64, c.user_regs.x[0], c.user_regs.cpsr
            )
        }) {
            run.check(
                "vcpu context round trip",
                c.user_regs.pc64 == ctx.user_regs.pc64,
                String::new(),
            );
        }
        run.step("getvcpuinfo", xc.get_vcpu_info(domid, 0), |v| {
            format!("{v:?}")
        });
        run.step(
            "getvcpuaffinity",
            xc.get_vcpu_affinity(domid, 0),
            |(h, s)| {
                format!(
                    "hard {:?} soft {:?}",
                    xenctrl::xc::bitmap_cpus(h),
                    xenctrl::xc::bitmap_cpus(s)
                )
            },
        );
        let sched = xc.sched_id().unwrap_or(dc::XEN_SCHEDULER_CREDIT2);
        run.step("sched getinfo", xc.sched_credit_get(domid, sched), |c| {
            format!("{c:?}")
        });
        run.step(
            "sched putinfo",
            xc.sched_credit_set(
                domid,
                sched,
                &dc::SchedCredit {
                    weight: 256,
                    cap: 0,
                },
            ),
            |_| String::new(),
        );
        let info = run.step("getdomaininfo built", xc.domain_getinfo(domid), |d| {
            format!("{d:?}")
        });
        if let Some(Some(d)) = info {
            run.check(
                "tot_pages",
                d.tot_pages >= 16 + 512 + 4,
                format!("{} pages", d.tot_pages),
            );
        }
        run.step("unpause", xc.unpause(domid), |_| String::new());
        run.step("pause", xc.pause(domid), |_| String::new());
    }

    /// Wait up to 5 s for `port` to fire on `ev`; true if it did.
    fn wait_port(ev: &Evtchn, port: u32) -> bool {
        for _ in 0..500 {
            match ev.pending() {
                Ok(Some(p)) => {
                    let _ = ev.unmask(p);
                    if p == port {
                        return true;
                    }
                }
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(10)),
                Err(_) => return false,
            }
        }
        false
    }

    /// remote_shutdown with reason crash: the domain stays listed as `s`+`c`
    /// and VIRQ_DOM_EXC fires in Dom0 (what xenstored's @releaseDomain and
    /// xl's monitor rely on); destroy fires it again and the domain goes.
    fn shutdown_steps(run: &mut Run, xc: &Xc, domid: u16) {
        let Some(ev) = run.step("evtchn open (virq)", Evtchn::open(), |_| String::new()) else {
            return;
        };
        let virq = run.step("bind_virq DOM_EXC", ev.bind_virq(VIRQ_DOM_EXC), |p| {
            format!("local {p}")
        });
        while let Ok(Some(p)) = ev.pending() {
            let _ = ev.unmask(p);
        }
        run.step(
            "remote_shutdown crash",
            xc.domain_shutdown(domid, 3),
            |_| String::new(),
        );
        if let Some(port) = virq {
            run.check(
                "VIRQ_DOM_EXC after shutdown",
                wait_port(&ev, port),
                String::new(),
            );
        }
        if let Some(Some(d)) = run.step("getdomaininfo shut down", xc.domain_info(domid), |d| {
            format!("{d:?}")
        }) {
            run.check(
                "shut down as crash",
                d.shutdown && d.shutdown_reason() == Some(ShutdownReason::Crash),
                format!("{} flags {:#x}", d.xl_state(), d.flags),
            );
        }
        run.step("destroydomain", xc.destroy(domid), |_| String::new());
        if let Some(port) = virq {
            run.check(
                "VIRQ_DOM_EXC after destroy",
                wait_port(&ev, port),
                String::new(),
            );
        }
        run.step(
            "getdomaininfo destroyed",
            xc.domain_info(domid),
            |d| match d {
                Some(d) => format!("still listed: {} flags {:#x}", d.xl_state(), d.flags),
                None => "gone".to_string(),
            },
        );
    }

    fn finish(run: &Run) -> i32 {
        let n = run.passed + run.failed;
        if run.failed == 0 {
            println!("xcsmoke: PASS {n}/{n}");
            0
        } else {
            println!("xcsmoke: FAIL {}/{n}", run.failed);
            1
        }
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    std::process::exit(smoke::main());
    #[cfg(not(target_os = "linux"))]
    {
        eprintln!("xcsmoke: needs Linux (Dom0)");
        std::process::exit(1);
    }
}
