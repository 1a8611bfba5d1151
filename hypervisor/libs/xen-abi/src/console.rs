//! PV console ring page (`io/console.h`): `struct xencons_interface`.
