//! Dom0 access to the hypervisor (libxenctrl, libxencall, libxenforeignmemory, libxenevtchn roles). Being written; see docs/toolstack.md.
