//! Virtual GIC (v2/v3) distributor and redistributor models
#![cfg_attr(not(test), no_std)]
