//! xenstore wire protocol (`io/xs_wire.h`, Xen 4.17): message types, the
//! message header, error names, limits and the shared ring page layout.
